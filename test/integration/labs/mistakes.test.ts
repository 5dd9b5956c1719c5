/**
 * The usual mistakes, through the real session (sim VMs as separate processes, the relay link,
 * real TCP), interactive as a person drives a lab: a cut during precopy blocks the step with a
 * reason and a retry brings the lab to the end; a cut right after switchover shows the recovery
 * commands, a resume before the link is restored is refused, and recovering from the console works; a `migrate` past the link is refused; a
 * rewind replays the earlier steps on fresh VMs.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadLabText } from '../../../src/lab/load.js';
import { recoveryCommands } from '../../../src/lab/reach.js';
import { LabSession } from '../../../src/lab/runner.js';
import { RelayLink } from '../../../src/link/relay.js';
import { SimBackend } from '../../../src/driver/sim-backend.js';
import type { RunSummary } from '../../../src/types.js';
import { ensureBuilt, waitFor } from '../../helpers/sim.js';

/** link-cut-recovery's steps on a small, fast guest that still never converges in precopy. */
const LAB = `
id: mistakes
title: Mistakes
summary: link-cut-recovery, small.
backends: [sim]
setup:
  memory: 64M
  vcpus: 2
  workload: random
  dirty-rate: 4000
  read-rate: 20000
  capabilities: { postcopy-ram: true, return-path: true, events: true }
  parameters: { max-bandwidth: 32M, max-postcopy-bandwidth: 32M }
steps:
  - title: Listen
    text: Listen.
    hints: [watch]
    do:
      - qmp: destination
        execute: migrate-incoming
        arguments: { uri: "\${incoming.listen}" }
    until: 'destination.status == "setup"'
  - title: Migrate
    text: Migrate.
    hints: [watch]
    do:
      - qmp: source
        execute: migrate
        arguments: { uri: "\${incoming.connect}" }
      - wait-until: 'source.ram.transferred > 8000000'
        timeout: 30s
    until: 'source.status == "active" && source.ram.transferred > 8000000'
  - title: Switch to postcopy
    text: Switch.
    hints: [watch]
    do:
      - qmp: source
        execute: migrate-start-postcopy
    until: 'source.status == "postcopy-active" && destination.status == "postcopy-active" && destination.pages.received > 2000'
  - title: Let it finish
    text: Finish.
    hints: [watch]
    until: 'source.status == "completed" && destination.status == "completed"'
    timeout: 60s
expect:
  - 'destination.pages.verified == true'
summary-text: Done.
`;

const lab = loadLabText(LAB, 'mistakes.yaml');
/** The same, its step 2 (migrate) waiting for precopy long enough for a person's mistakes in it. */
const waits = loadLabText(
  LAB.replace('id: mistakes', 'id: switch-early').replace("until: 'source.status == \"active\" && source.ram.transferred > 8000000'", "until: 'source.status == \"active\" && source.ram.dirty-sync-count >= 100000'"),
  'switch-early.yaml',
);
let session: LabSession | null = null;

function open(emulate?: '7.2'): LabSession {
  session = new LabSession(lab, { mode: 'interactive', seed: 7, pollMs: 100, makeLink: (runtimeDir) => new RelayLink({ runtimeDir }), ...(emulate ? { backend: new SimBackend(emulate) } : {}) });
  return session;
}

const stepIs = (s: LabSession, i: number) => s.getState().currentStep === i && s.getState().steps[i]!.status === 'active' && !s.getState().replaying;

beforeAll(ensureBuilt, 240_000);
afterEach(async () => {
  await session?.stop();
  session = null;
});

/** A started session whose person has done steps 1 and 2 (listen, migrate): step 3 (switch to postcopy) is current. */
async function atSwitchoverStep(emulate?: '7.2'): Promise<{ s: LabSession; run: Promise<RunSummary> }> {
  const s = open(emulate);
  await s.start();
  const run = s.run();
  await s.showMe();
  await waitFor(() => stepIs(s, 1), 'step 2');
  await s.showMe();
  await waitFor(() => stepIs(s, 2), 'step 3');
  return { s, run };
}

describe('mistakes, through the real session', () => {
  it('cut in precopy: the step says why it can no longer happen, the session goes on, r (retry) replays on the same VMs and the lab completes', async () => {
    const { s, run } = await atSwitchoverStep();
    // The mistake: a cut before migrate-start-postcopy.
    await s.applyLink({ kind: 'cut' });
    const blocked = await waitFor(() => s.getState().blocked, 'blocked', 15_000);
    expect(blocked).toMatchObject({ cause: 'migration-failed', step: 3, retry: true });
    expect(blocked.message).toMatch(/^The cut came during precopy: the migration failed and the guest kept running on the source — nothing was lost/);
    expect(s.getState().finished).toBeNull();
    expect(s.retry()).toBe(true);
    // Steps 1 and 2 again, for the person, on the same VMs; then step 3 is theirs.
    await waitFor(() => s.getState().replaying, 'replaying');
    await waitFor(() => stepIs(s, 2) && s.getState().snapshot?.source.status === 'active', 'step 3 again', 40_000);
    expect(s.getState().blocked).toBeNull();
    await s.showMe();
    const summary: RunSummary = await run;
    expect(summary.failure).toBeUndefined();
    expect(summary).toMatchObject({ ok: true, verified: true });
  }, 120_000);

  it('cut in precopy in the step that starts it: u, then show me listens on the destination first and migrates again (a newcomer found s failing every time)', async () => {
    session = new LabSession(waits, { mode: 'interactive', seed: 7, pollMs: 100, makeLink: (runtimeDir) => new RelayLink({ runtimeDir }) });
    const s = session;
    await s.start();
    const run = s.run();
    await s.showMe();
    await waitFor(() => stepIs(s, 1), 'step 2');
    await s.showMe();
    await waitFor(() => s.getState().snapshot?.source.status === 'active', 'precopy');
    await s.applyLink({ kind: 'cut' });
    await waitFor(() => s.getState().snapshot?.source.status === 'failed' && s.getState().snapshot?.destination.status === 'failed', 'both failed', 15_000);
    // Not a dead end: the step starts a migration, so it waits for the person.
    expect(s.getState().blocked ?? null).toBeNull();
    await s.restoreLink();
    await waitFor(() => s.getState().snapshot?.link.up === true, 'the link up on screen');
    await s.showMe();
    await waitFor(() => s.getState().snapshot?.source.status === 'active' && s.getState().snapshot?.destination.status === 'active', 'migrating again', 15_000).catch((e) => {
      throw new Error(`${(e as Error).message}; ${JSON.stringify([s.getState().snapshot?.source.status, s.getState().snapshot?.destination.status])}; ${s.getState().events.slice(-12).map((x) => `${x.kind} ${x.side ?? ''} ${x.text}`).join(' | ')}`);
    });
    expect(s.getState().events.some((e) => e.kind === 'hint' && /^show me: destination: migrate-incoming \{"uri": "tcp:[^"]+"\} first \(it listens no more\); then /.test(e.text))).toBe(true);
    expect(s.getState().currentStep).toBe(1);
    void run;
  }, 120_000);

  it('cut right after switchover (the sim as QEMU 7.2): both sides pause, the recovery commands carry the real addresses, a resume over the cut or before the destination listens is refused, and recovering from the console completes the lab', async () => {
    const { s, run } = await atSwitchoverStep('7.2');
    await s.showMe();
    await waitFor(() => s.getState().snapshot?.destination.status === 'postcopy-active', 'postcopy');
    await s.applyLink({ kind: 'cut' });
    await waitFor(
      () => s.getState().snapshot?.source.status === 'postcopy-paused' && s.getState().snapshot?.destination.status === 'postcopy-paused',
      'both paused',
    );
    const cmds = recoveryCommands(s.getState().snapshot, s.getState().addresses ?? {});
    expect(cmds).not.toBeNull();
    expect(cmds![0]!.line).toBe(`migrate-recover {"uri": "${s.getState().addresses!['recover.listen']}"}`);
    expect(s.getState().blocked ?? null).toBeNull(); // paused is recoverable, not a dead end
    // The usual mistake: recovering before restoring the link. The resume is refused, saying
    // to press u (QEMU 7.2's source would hang in postcopy-recover), and nothing moves.
    const early = await s.qmpLine(cmds![1]!.side, cmds![1]!.line);
    expect(early.ok).toBe(false);
    expect(early.text).toMatch(/refused by the lab: the link is cut, so the resume would not get through .*press u to restore the link, then resume$/);
    await new Promise((res) => setTimeout(res, 300));
    expect(s.getState().snapshot?.source.status).toBe('postcopy-paused');
    await s.restoreLink();
    // The next one: the resume before migrate-recover. Through the relay it would be accepted and
    // reset, and a 7.2 source would stay in postcopy-recover for good: refused, naming the command.
    const beforeListen = await s.qmpLine(cmds![1]!.side, cmds![1]!.line);
    expect(beforeListen.ok).toBe(false);
    expect(beforeListen.text).toContain(`the destination is not listening for the recovery yet, and a QEMU 7.2 source whose resume finds no listener stays in postcopy-recover for good: first, on the destination, ${cmds![0]!.line}`);
    expect(s.getState().snapshot?.source.status).toBe('postcopy-paused');
    for (const c of cmds!) expect(await s.qmpLine(c.side, c.line)).toMatchObject({ ok: true });
    const summary = await run;
    expect(summary).toMatchObject({ ok: true, verified: true });
    expect(summary.recoveries).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('a resume before migrate-recover (the sim as QEMU 8.2+): taken, with a note that it will fall back and what comes first; the source does fall back, and the pair in order completes', async () => {
    const { s, run } = await atSwitchoverStep();
    await s.showMe();
    await waitFor(() => s.getState().snapshot?.destination.status === 'postcopy-active', 'postcopy');
    await s.applyLink({ kind: 'cut' });
    await waitFor(() => s.getState().snapshot?.source.status === 'postcopy-paused' && s.getState().snapshot?.destination.status === 'postcopy-paused', 'both paused');
    await s.restoreLink();
    await waitFor(() => s.getState().snapshot?.link.up === true, 'the link up on screen');
    const cmds = recoveryCommands(s.getState().snapshot, s.getState().addresses ?? {})!;
    const early = await s.qmpLine('source', cmds[1]!.line);
    expect(early).toEqual({
      ok: true,
      text: `{}\n(the destination is not listening for the recovery yet: this resume finds no one and the source goes back to postcopy-paused; first, on the destination, ${cmds[0]!.line}, then resume again)`,
    });
    await waitFor(() => s.getState().events.some((e) => e.side === 'source' && /postcopy-recover -> postcopy-paused/.test(e.text)), 'the source back to postcopy-paused', 15_000);
    expect(await s.qmpLine('destination', cmds[0]!.line)).toMatchObject({ ok: true });
    // The screen's paused lines drop the destination's command once it is taken.
    expect(s.getState().recoverListening).toBe(true);
    expect(await s.qmpLine('source', cmds[1]!.line)).toEqual({ ok: true, text: '{}' });
    expect(await run).toMatchObject({ ok: true, verified: true });
    expect(s.getState().recoverListening).toBe(false);
  }, 120_000);

  it('migrate past the link (to the destination’s own listener) is refused with the address to use; nothing is sent', async () => {
    const s = open();
    await s.start();
    void s.run();
    await s.showMe();
    await waitFor(() => stepIs(s, 1), 'step 2');
    const a = s.getState().addresses!;
    const r = await s.qmpLine('source', `migrate {"uri": "${a['incoming.listen']}"}`);
    expect(r.ok).toBe(false);
    expect(r.text).toBe(
      `Error: refused by the lab: that address is the destination's own listener, so no fault of the lab would reach the migration; the lab's link is at ${a['incoming.connect']}: use migrate {"uri": "${a['incoming.connect']}"}`,
    );
    await new Promise((res) => setTimeout(res, 300));
    expect(s.getState().snapshot?.source.status).toBe('none');
    expect((await s.qmpLine('source', `migrate {"uri": "${a['incoming.connect']}"}`)).ok).toBe(true);
  }, 60_000);

  it('switching to postcopy while the step waits for precopy is refused, saying to wait; the migration stays in precopy', async () => {
    session = new LabSession(waits, { mode: 'interactive', seed: 7, pollMs: 100, makeLink: (runtimeDir) => new RelayLink({ runtimeDir }) });
    const s = session;
    await s.start();
    void s.run();
    await s.showMe();
    await waitFor(() => stepIs(s, 1), 'step 2');
    await s.showMe();
    await waitFor(() => s.getState().snapshot?.source.status === 'active', 'precopy');
    const r = await s.qmpLine('source', 'migrate-start-postcopy');
    expect(r.ok).toBe(false);
    expect(r.text).toMatch(/^Error: refused by the lab: step 2 waits for precopy \(.*dirty-sync-count >= 100000\), which has not happened yet; .*wait until step 2 is done, then switch$/);
    await new Promise((res) => setTimeout(res, 300));
    expect(s.getState().snapshot?.source.status).toBe('active');
  }, 60_000);

  it('rewind: fresh VMs replay the steps before the one asked for, then it waits for the person', async () => {
    const s = open();
    await s.start();
    void s.run({ startAt: 2 });
    await waitFor(() => s.getState().replaying, 'replaying');
    await waitFor(() => stepIs(s, 2), 'step 3 is the person’s', 40_000);
    expect(s.getState().steps.map((x) => x.status)).toEqual(['done', 'done', 'active', 'pending']);
    expect(s.getState().snapshot?.source.status).toBe('active');
  }, 60_000);
});

describe('a VM that is gone, in a step that starts a fresh one', () => {
  /** A small sim lab with these steps (YAML, indented as under `steps:`). */
  const small = (id: string, steps: string) =>
    loadLabText(
      `id: ${id}
title: ${id}
summary: A test lab.
backends: [sim]
setup: { memory: 16M, vcpus: 1, workload: random, dirty-rate: 100, capabilities: { events: true } }
steps:
${steps}expect:
  - 'destination.alive == true'
summary-text: Done.
`,
      `${id}.yaml`,
    );
  /** Step 1 of a lab whose step 2 finds a spent destination: a migration to completion. */
  const MIGRATE = `  - title: Migrate
    text: To completion.
    hints: [s]
    do:
      - qmp: destination
        execute: migrate-incoming
        arguments: { uri: "\${incoming.listen}" }
      - qmp: source
        execute: migrate
        arguments: { uri: "\${incoming.connect}" }
    until: 'destination.status == "completed"'
`;
  /** A person's session on `lab`, running, its first step done by show me unless `first` is false. */
  async function playing(lab: ReturnType<typeof small>, first = true): Promise<LabSession> {
    const s = new LabSession(lab, { mode: 'interactive', seed: 7, pollMs: 100, makeLink: (runtimeDir) => new RelayLink({ runtimeDir }) });
    session = s;
    await s.start();
    void s.run();
    if (first) {
      await s.showMe();
      await waitFor(() => stepIs(s, 1), 'step 2');
    }
    return s;
  }
  const listenLine = (s: LabSession) => `migrate-incoming {"uri": "${s.getState().addresses?.['incoming.listen']}"}`;

  const GONE = small(
    'gone',
    `  - title: Lose the destination
    text: It exits, as QEMU's does after a failed precopy.
    hints: [s]
    do:
      - vm: destination
        do: kill
    until: 'destination.alive == false'
  - title: A fresh destination
    text: The lab starts one.
    hints: [s]
    do:
      - vm: destination
        do: restart
    until: 'destination.alive == true && destination.status == "none"'
`,
  );

  it('a console line to it says which key starts the fresh one (QEMU 10.0: "not running" and nothing more)', async () => {
    const s = await playing(GONE);
    const r = await s.qmpLine('destination', 'query-status');
    expect(r).toEqual({ ok: false, text: 'Error: the destination VM is not running\n(this step starts a fresh destination: s (show me) does it, and then the rest of the step)' });
    // The other side is not gone, and is answered as ever.
    expect((await s.qmpLine('source', 'query-status')).ok).toBe(true);
  }, 60_000);

  const SPENT = small(
    'spent',
    `${MIGRATE}  - title: Fresh VMs
    text: The lab restarts both.
    hints: [s]
    do:
      - vm: source
        do: restart
      - vm: destination
        do: restart
    until: 'destination.status == "none" && source.status == "none"'
`,
  );

  it('migrate-incoming to a destination that has had its one incoming migration says which key starts a fresh one', async () => {
    const s = await playing(SPENT);
    const r = await s.qmpLine('destination', listenLine(s));
    expect(r).toEqual({ ok: false, text: 'Error: The incoming migration has already been started (GenericError)\n(this step starts a fresh destination: s (show me) does it, and then the rest of the step)' });
  }, 60_000);

  it('a migration command without its address says the console fills it in', async () => {
    const s = await playing(SPENT, false);
    const r = await s.qmpLine('destination', 'migrate-incoming');
    expect(r.ok).toBe(false);
    expect(r.text).toMatch(/'uri'/);
    expect(r.text).toMatch(/\n\(the address is this run's: type migrate-incoming, a space, and Tab fills it in\)$/);
    // With an address, wrong or right, no such note.
    expect((await s.qmpLine('destination', 'query-status')).text).not.toMatch(/Tab fills/);
  }, 60_000);

  const AGAIN = small(
    'again',
    `${MIGRATE}  - title: Again, to a fresh destination
    text: The lab restarts the destination; listen on it.
    hints: [s]
    do:
      - vm: destination
        do: restart
      - qmp: destination
        execute: migrate-incoming
        arguments: { uri: "\${incoming.listen}" }
    until: 'destination.status == "setup"'
`,
  );

  it('migrate-incoming typed to a spent destination in a step that starts a fresh one goes to a fresh one, and the step goes on', async () => {
    const s = await playing(AGAIN);
    expect(s.getState().snapshot?.destination.status).toBe('completed');
    const r = await s.qmpLine('destination', listenLine(s));
    expect(r).toEqual({ ok: true, text: '{}\n(sent to a fresh destination: the last one has completed)' });
    expect(s.getState().events.some((e) => e.kind === 'info' && /^a fresh destination for your migrate-incoming: the last one has completed/.test(e.text))).toBe(true);
    // The fresh destination listens: the step is done (this test lab then ends unverified).
    await waitFor(() => s.getState().steps[1]!.status === 'done', 'step 2 done');
  }, 60_000);
});

