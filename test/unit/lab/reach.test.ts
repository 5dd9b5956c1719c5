/**
 * What the lab judges from a snapshot alone: whether the waiting step can still happen, the
 * recovery commands when both sides are paused, a `migrate` past the link, and what a fault the
 * step does not ask for would do now.
 */
import { describe, expect, it } from 'vitest';
import { breaksLink, bypassRefusal, consoleArguments, consoleReplyNote, unheardResumeNote, virshResumeBandwidthNote, earlyResumeRefusal, earlySwitchRefusal, listenFirst, recoveryFailureStrands, faultConsequence, faultsBeforeRecovery, faultsNotInPlace, faultTooEarly, preemptRefused, precopyRequired, recoveryCommands, recoverySides, restartAdvice, resumeRefusal, showMeRefusal, startsMigration, stepLinkFaults, unreachable, postcopyFlagMissing, virshResumeOverBrokenLink, vmOnlyLabel } from '../../../src/lab/reach.js';
import type { LabStep } from '../../../src/lab/schema.js';
import type { MigrationStatus, Snapshot } from '../../../src/types.js';
import { parseCondition } from '../../../src/lab/condition.js';
import { fakeDirection, fakeSide, fakeSnapshot } from '../../helpers/fake-session.js';

type Actions = Pick<LabStep, 'index' | 'actions'>;
const waitOnly: Actions = { index: 2, actions: [] };
const cutStep: Actions = { index: 3, actions: [{ type: 'link', fault: { kind: 'cut' } }] };
const retryStep: Actions = {
  index: 2,
  actions: [{ type: 'qmp', side: 'destination', execute: 'migrate-incoming', arguments: { uri: 'tcp:x' }, oob: false }],
};
const resumeStep: Actions = {
  index: 5,
  actions: [{ type: 'qmp', side: 'source', execute: 'migrate', arguments: { uri: 'tcp:x', resume: true }, oob: false }],
};

function snap(source: MigrationStatus, destination: MigrationStatus, over: Partial<Snapshot> = {}): Snapshot {
  return fakeSnapshot({
    source: fakeSide('source', { status: source, runState: source === 'failed' ? 'running' : 'postmigrate' }),
    destination: fakeSide('destination', { status: destination }),
    ...over,
  });
}

const POSTCOPY = 'source.status == "postcopy-active" && destination.status == "postcopy-active"';
const ADDR = {
  'incoming.listen': 'tcp:127.0.0.1:5001',
  'incoming.connect': 'tcp:127.0.0.1:5002',
  'recover.listen': 'tcp:127.0.0.1:5003',
  'recover.connect': 'tcp:127.0.0.1:5004',
};

describe('unreachable', () => {
  it('a cut in precopy: says the cut failed the migration, nothing was lost, the step needs postcopy; retry offered', () => {
    const cut = fakeSnapshot().link;
    const s = snap('failed', 'failed', { link: { ...cut, 'source-to-destination': fakeDirection({ state: 'cut' }), 'destination-to-source': fakeDirection({ state: 'cut' }) } });
    const u = unreachable(waitOnly, POSTCOPY, s);
    expect(u).toMatchObject({ cause: 'migration-failed', step: 3, retry: true });
    expect(u!.message).toBe(
      'The cut came during precopy: the migration failed and the guest kept running on the source — nothing was lost, but this step needs a migration in postcopy.',
    );
  });

  it('a step waiting for precopy after the person switched to postcopy can no longer happen; rewind, not retry', () => {
    const first = 'source.status == "active" && source.ram.dirty-sync-count >= 3';
    expect(precopyRequired(first)).toEqual(['source']);
    expect(precopyRequired('destination.status in ["setup", "active"] && link.up')).toEqual(['destination']);
    expect(precopyRequired('source.status == "active" || source.status == "postcopy-active"')).toEqual([]);
    expect(precopyRequired('source.status != "active"')).toEqual([]);
    expect(precopyRequired(POSTCOPY)).toEqual([]);
    const u = unreachable(waitOnly, first, snap('postcopy-active', 'postcopy-active'));
    expect(u).toMatchObject({ cause: 'switched-to-postcopy', step: 3, retry: false });
    expect(u!.message).toBe(
      'The migration switched to postcopy (source postcopy-active) before this step was done: the step watches precopy, and postcopy cannot go back to it.',
    );
    expect(unreachable(waitOnly, first, snap('active', 'active'))).toBeNull();
  });

  it('a failure with no fault on the link names both states; a dead VM means no retry on the same VMs', () => {
    const s = snap('failed', 'failed');
    expect(unreachable(waitOnly, 'source.ram.transferred > 1', s)!.message).toMatch(/^The migration failed during precopy \(source failed, destination failed\).*needs a migration in progress\.$/);
    const dead = snap('failed', 'failed', { destination: fakeSide('destination', { status: 'failed', alive: false }) });
    expect(unreachable(waitOnly, POSTCOPY, dead)!.retry).toBe(false);
  });

  it('a step that starts a migration itself is no dead end after a failure (precopy-failure’s retry step)', () => {
    expect(unreachable(retryStep, 'source.status == "active"', snap('failed', 'failed'))).toBeNull();
    expect(startsMigration(retryStep)).toBe(true);
    expect(startsMigration(resumeStep)).toBe(false);
  });

  it('completed: unreachable, rewind only', () => {
    const u = unreachable(cutStep, 'source.status == "postcopy-paused"', snap('completed', 'completed'));
    expect(u).toMatchObject({ cause: 'migration-completed', step: 4, retry: false });
    // In words, not the step's condition (a newcomer met 'source.status == "postcopy-active" && …').
    expect(u!.message).toBe('The migration completed before this step could happen: nothing was lost, but this step needs a migration in postcopy.');
  });

  it('a step that starts fresh VMs itself (postcopy-preempt) finds the migration before it ended, and is no dead end until its own do ran', () => {
    const fresh: Actions = { index: 1, actions: [{ type: 'vm', side: 'source', do: 'restart' }, { type: 'vm', side: 'destination', do: 'restart' }] };
    const until = 'source.status == "none" && destination.status == "none" && source.runState == "running"';
    expect(unreachable(fresh, until, snap('completed', 'completed'))).toBeNull();
    expect(unreachable(fresh, until, snap('failed', 'failed'))).toBeNull();
    expect(unreachable(fresh, until, snap('completed', 'completed'), { started: true })).toMatchObject({ cause: 'migration-completed' });
  });

  it('live, paused and recovering migrations are all still reachable (recovery is the lesson, not a dead end)', () => {
    for (const [s, d] of [
      ['active', 'active'],
      ['postcopy-active', 'postcopy-active'],
      ['postcopy-paused', 'postcopy-paused'],
      ['postcopy-recover', 'postcopy-recover'],
      ['none', 'setup'],
    ] as const) {
      expect(unreachable(waitOnly, POSTCOPY, snap(s, d)), `${s}/${d}`).toBeNull();
    }
  });
});

describe('recoveryCommands', () => {
  it('both paused: the two commands with the run’s real addresses', () => {
    expect(recoveryCommands(snap('postcopy-paused', 'postcopy-paused'), ADDR)).toEqual([
      { side: 'destination', line: 'migrate-recover {"uri": "tcp:127.0.0.1:5003"}' },
      { side: 'source', line: 'migrate {"uri": "tcp:127.0.0.1:5004", "resume": true}' },
    ]);
  });
  it('on the libvirt backend: the one virsh command, not the QMP pair libvirt refuses', () => {
    const lv = { ...ADDR, 'libvirt.domain': 'pcl-lv1', 'libvirt.dest-uri': 'qemu+tcp://10.0.0.2/system' };
    expect(recoveryCommands(snap('postcopy-paused', 'postcopy-paused'), lv)).toEqual([
      { side: 'source', line: 'virsh migrate --live --postcopy --postcopy-resume pcl-lv1 qemu+tcp://10.0.0.2/system' },
    ]);
    // The step's own resume, options and all (libvirt-double-failure's last: at full speed).
    const own = ['link: restore', 'wait 6s', 'source: virsh migrate --live --postcopy --postcopy-resume --postcopy-bandwidth 1024 pcl-lv1 qemu+tcp://10.0.0.2/system'];
    expect(recoveryCommands(snap('postcopy-paused', 'postcopy-paused'), lv, own)).toEqual([
      { side: 'source', line: 'virsh migrate --live --postcopy --postcopy-resume --postcopy-bandwidth 1024 pcl-lv1 qemu+tcp://10.0.0.2/system' },
    ]);
    // A step that migrates without resuming gives no line of its own.
    expect(recoveryCommands(snap('postcopy-paused', 'postcopy-paused'), lv, ['source: virsh migrate --live --postcopy pcl-lv1 x'])![0]!.line).toMatch(/--postcopy-resume pcl-lv1/);
  });
  it('otherwise none', () => {
    expect(recoveryCommands(snap('postcopy-paused', 'postcopy-recover'), ADDR)).toBeNull();
    expect(recoveryCommands(snap('postcopy-active', 'postcopy-active'), ADDR)).toBeNull();
    expect(recoveryCommands(null, ADDR)).toBeNull();
    // A killed source still reads postcopy-paused, but nothing can resume it.
    const gone = snap('postcopy-paused', 'postcopy-paused');
    expect(recoveryCommands({ ...gone, source: { ...gone.source, alive: false } }, ADDR)).toBeNull();
  });
});

describe('unheardResumeNote', () => {
  const both: Actions = {
    index: 6,
    actions: [{ type: 'qmp', side: 'destination', execute: 'migrate-recover', arguments: { uri: 'tcp:x' }, oob: false }, ...resumeStep.actions],
  };
  const resume = 'migrate {"uri": "tcp:127.0.0.1:5004", "resume": true}';
  const paused = snap('postcopy-paused', 'postcopy-paused');
  it('says, under a resume the source took before the destination listens, that it will fall back and what comes first', () => {
    expect(unheardResumeNote('source', resume, { ok: true }, both, paused, false, 'tcp:127.0.0.1:5003')).toBe(
      '(the destination is not listening for the recovery yet: this resume finds no one and the source goes back to postcopy-paused; first, on the destination, migrate-recover {"uri": "tcp:127.0.0.1:5003"}, then resume again)',
    );
    expect(unheardResumeNote('source', `{"execute": "migrate", "arguments": {"uri": "tcp:x", "resume": true}}`, { ok: true }, both, paused, false)).toMatch(/not listening/);
  });
  it('says nothing once the destination listens, for another command, after an error, or where the step resumes the source alone on purpose', () => {
    expect(unheardResumeNote('source', resume, { ok: true }, both, paused, true)).toBeNull();
    expect(unheardResumeNote('source', 'migrate {"uri": "tcp:x"}', { ok: true }, both, paused, false)).toBeNull();
    expect(unheardResumeNote('source', 'migrate-recover {"uri": "tcp:x", "resume": true}', { ok: true }, both, paused, false)).toBeNull();
    expect(unheardResumeNote('source', resume, { ok: false }, both, paused, false)).toBeNull();
    expect(unheardResumeNote('source', resume, { ok: true }, both, snap('postcopy-paused', 'postcopy-recover'), false)).toBeNull();
    // double-failure's "Reconnect too early": the early resume is the lesson.
    expect(unheardResumeNote('source', resume, { ok: true }, resumeStep, paused, false)).toBeNull();
  });
});

describe('virshResumeBandwidthNote', () => {
  const step: Actions = {
    index: 4,
    actions: [{ type: 'virsh', side: 'source', args: ['migrate', '--live', '--postcopy', '--postcopy-resume', '--postcopy-bandwidth', '1024', 'pcl-guest', 'qemu+tcp://x/system'] }],
  };
  it("says a resume at another bandwidth than the step's runs at it, and how to change it while it runs", () => {
    expect(virshResumeBandwidthNote('virsh migrate --live --postcopy --postcopy-resume --postcopy-bandwidth 1 pcl-guest qemu+tcp://x/system', step, 'pcl-guest')).toBe(
      '(this step resumes at --postcopy-bandwidth 1024 MiB/s; this one runs at 1 MiB/s: virsh migrate-setspeed pcl-guest 1024 --postcopy changes it while it runs)',
    );
    expect(virshResumeBandwidthNote('virsh migrate --live --postcopy --postcopy-resume pcl-guest qemu+tcp://x/system', step, 'pcl-guest')).toMatch(/runs at the last bandwidth libvirt kept/);
  });
  it("says nothing at the step's bandwidth, for a line that does not resume, or in a step without a bandwidth of its own", () => {
    expect(virshResumeBandwidthNote('virsh migrate --live --postcopy --postcopy-resume --postcopy-bandwidth 1024 pcl-guest x', step, 'pcl-guest')).toBeNull();
    expect(virshResumeBandwidthNote('virsh migrate --live --postcopy pcl-guest x', step, 'pcl-guest')).toBeNull();
    expect(virshResumeBandwidthNote('virsh migrate --live --postcopy --postcopy-resume pcl-guest x', resumeStep, 'pcl-guest')).toBeNull();
  });
});

describe('bypassRefusal', () => {
  it('a source migrate to the destination’s own listener is refused with the link’s address to use', () => {
    expect(bypassRefusal('source', { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:5001' } }, ADDR)).toBe(
      "that address is the destination's own listener, so no fault of the lab would reach the migration; the lab's link is at tcp:127.0.0.1:5002: use migrate {\"uri\": \"tcp:127.0.0.1:5002\"}",
    );
  });
  it('a resume past the link is pointed at the recovery address', () => {
    expect(bypassRefusal('source', { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:5003', resume: true } }, ADDR)).toMatch(
      /own listener.*use migrate \{"uri": "tcp:127\.0\.0\.1:5004", "resume": true\}$/,
    );
  });
  it('any other address is not the link', () => {
    expect(bypassRefusal('source', { execute: 'migrate', arguments: { uri: 'tcp:10.0.0.9:1' } }, ADDR)).toMatch(/^that address is not the lab's link/);
  });
  it('the link’s own addresses, other commands, the destination side, and a run without addresses pass', () => {
    expect(bypassRefusal('source', { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:5002' } }, ADDR)).toBeNull();
    expect(bypassRefusal('source', { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:5004', resume: true } }, ADDR)).toBeNull();
    expect(bypassRefusal('destination', { execute: 'migrate-incoming', arguments: { uri: 'tcp:127.0.0.1:5001' } }, ADDR)).toBeNull();
    expect(bypassRefusal('source', { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:5001' } }, {})).toBeNull();
    expect(bypassRefusal('destination', { execute: 'migrate-recover', arguments: { uri: 'tcp:127.0.0.1:5003' } }, ADDR)).toBeNull();
    expect(bypassRefusal('destination', { execute: 'migrate-incoming', arguments: { uri: 'tcp:127.0.0.1:4445' } }, {})).toBeNull();
    expect(bypassRefusal('destination', { execute: 'query-migrate' }, ADDR)).toBeNull();
    // Listening on every address at the link's port is found too.
    expect(bypassRefusal('destination', { execute: 'migrate-incoming', arguments: { uri: 'tcp:0.0.0.0:5001' } }, ADDR)).toBeNull();
    expect(bypassRefusal('destination', { execute: 'migrate-incoming', arguments: { uri: 'tcp:[::]:5001' } }, ADDR)).toBeNull();
    expect(bypassRefusal('destination', { execute: 'migrate-incoming', arguments: { uri: 'tcp:0.0.0.0:5003' } }, ADDR)).not.toBeNull();
  });
  it('a destination listening where the link does not forward is refused with the address to use', () => {
    expect(bypassRefusal('destination', { execute: 'migrate-incoming', arguments: { uri: 'tcp:127.0.0.1:4445' } }, ADDR)).toBe(
      "the lab's link forwards the source's connection to tcp:127.0.0.1:5001, so a destination listening at tcp:127.0.0.1:4445 would never be found (the source's migrate would fail); use migrate-incoming {\"uri\": \"tcp:127.0.0.1:5001\"}",
    );
    // The incoming address is not the recovery's: the link forwards the recovery elsewhere.
    expect(bypassRefusal('destination', { execute: 'migrate-recover', arguments: { uri: 'tcp:127.0.0.1:5001' } }, ADDR)).toMatch(
      /use migrate-recover \{"uri": "tcp:127\.0\.0\.1:5003"\}$/,
    );
  });
});

describe("a step's own fault before its recovery", () => {
  const hole = { kind: 'blackhole' as const, direction: 'destination-to-source' as const };
  const recover = { type: 'qmp' as const, side: 'destination' as const, execute: 'migrate-recover', arguments: { uri: 'tcp:127.0.0.1:1' } };
  it('is the breaking faults before the first recovery command, none without one', () => {
    const step = { actions: [{ type: 'restore' as const }, { type: 'link' as const, fault: hole }, recover, { type: 'link' as const, fault: { kind: 'cut' as const } }] } as unknown as Pick<LabStep, 'actions'>;
    expect(faultsBeforeRecovery(step)).toEqual([hole]);
    expect(faultsBeforeRecovery(cutStep)).toEqual([]);
  });
  it('is in place when every direction it breaks shows it', () => {
    const s = snap('postcopy-paused', 'postcopy-paused');
    expect(faultsNotInPlace(s, [hole])).toEqual([hole]);
    s.link['destination-to-source'] = fakeDirection({ state: 'blackhole' });
    expect(faultsNotInPlace(s, [hole])).toEqual([]);
    expect(faultsNotInPlace(s, [{ kind: 'blackhole' }])).toEqual([{ kind: 'blackhole' }]);
  });
});

describe('faults a step does not ask for', () => {
  it('breaksLink: a fault action yes, a restore or lifting a cap no', () => {
    expect(breaksLink(cutStep)).toBe(true);
    expect(breaksLink({ actions: [{ type: 'restore' }] })).toBe(false);
    expect(breaksLink({ actions: [{ type: 'link', fault: { kind: 'up' } }] })).toBe(false);
  });
  it('names the consequence in the current state', () => {
    expect(faultConsequence({ kind: 'cut' }, snap('active', 'active'))).toBe('a cut now fails the migration (precopy)');
    expect(faultConsequence({ kind: 'cut' }, snap('postcopy-active', 'postcopy-active'))).toMatch(/pauses both sides \(postcopy-paused\)/);
    expect(faultConsequence({ kind: 'blackhole' }, snap('active', 'active'))).toMatch(/stalls the migration/);
    expect(faultConsequence({ kind: 'cut' }, snap('none', 'none'))).toMatch(/changes nothing/);
    // The source switched, the destination has not heard yet (the switchover queued behind precopy bytes).
    expect(faultConsequence({ kind: 'cut' }, snap('postcopy-active', 'active'))).toBe('a cut now, before the switchover has reached the destination (still active), fails its migration while the source pauses: the guest is lost');
    expect(faultConsequence({ kind: 'blackhole' }, snap('postcopy-active', 'active'))).toMatch(/holds the switchover on its way/);
    // Both sides paused, nothing under way: the fault meets the next recovery, it breaks none.
    expect(faultConsequence({ kind: 'cut' }, snap('postcopy-paused', 'postcopy-paused'))).toBe('a cut now keeps the next recovery from getting through until the link is restored (u)');
    expect(faultConsequence({ kind: 'cut' }, snap('postcopy-recover', 'postcopy-recover'))).toMatch(/breaks the recovery under way/);
  });
});

describe('show me over a broken link, and starting again after a failed migration', () => {
  const link = (s2d: string, d2s: string) => ({
    ...fakeSnapshot().link,
    'source-to-destination': fakeDirection({ state: s2d as never }),
    'destination-to-source': fakeDirection({ state: d2s as never }),
  });
  const startStep = (extra: LabStep['actions'] = []): Pick<LabStep, 'actions'> => ({ actions: [...extra, ...retryStep.actions] });

  it('refuses a step that would start a migration over a cut the person made, naming the key that restores it', () => {
    const s = snap('failed', 'failed', { link: link('cut', 'cut') });
    expect(showMeRefusal(startStep(), s)).toBe(
      'the link is cut: press u to restore it, then s (the migration this step starts would not get through)',
    );
    expect(showMeRefusal(resumeStep, snap('postcopy-paused', 'postcopy-paused', { link: link('up', 'blackhole') }))).toMatch(
      /^the link is blackholed \(destination to source\): press u/,
    );
  });

  it('runs the step as written when the link is up, when its own do sets the link first, or when it expects an error', () => {
    expect(showMeRefusal(startStep(), snap('failed', 'failed'))).toBeNull();
    const cutNow = snap('failed', 'failed', { link: link('cut', 'cut') });
    expect(showMeRefusal(startStep([{ type: 'restore' }]), cutNow)).toBeNull();
    expect(showMeRefusal(startStep([{ type: 'link', fault: { kind: 'blackhole', direction: 'destination-to-source' } }]), cutNow)).toBeNull();
    const expecting = { actions: [{ ...resumeStep.actions[0]!, expectError: 'Connection refused' }] } as Pick<LabStep, 'actions'>;
    expect(showMeRefusal(expecting, cutNow)).toBeNull();
    expect(showMeRefusal(waitOnly, cutNow)).toBeNull();
  });

  it('after a cut in precopy, a step that starts a migration says to restore the link and start again', () => {
    const active = { startsMigration: true, status: 'active' as const };
    const s = snap('failed', 'failed', { link: link('cut', 'cut') });
    expect(restartAdvice(active, s)).toBe(
      'The cut came during precopy: the migration failed, nothing was lost: u restores the link; then start again (s shows you how).',
    );
    // Its destination failed too and listens no more (the sim's stays): migrate-incoming first,
    // which show me sends too (listenFirst).
    expect(restartAdvice(active, snap('failed', 'failed'), { 'incoming.listen': 'tcp:127.0.0.1:7001' })).toBe(
      'The migration failed, nothing was lost: the destination has failed too and listens no more: on the destination migrate-incoming {"uri": "tcp:127.0.0.1:7001"} first, then migrate again (s does both).',
    );
    expect(restartAdvice(active, snap('failed', 'active'))).toBe('The migration failed, nothing was lost: start it again (s shows you how).');
    // migrate sent before migrate-incoming: said as such.
    expect(restartAdvice(active, snap('failed', 'none'))).toBe(
      'The migration failed: the destination was not listening yet (migrate-incoming comes first), nothing was lost: start the destination listening, then migrate again (s shows you how).',
    );
    // A spent destination (its incoming migration failed or was cancelled) in a step that starts a
    // fresh one: not "start it again", which sent migrate to it and failed once more.
    const fresh = { ...active, startsFreshDestination: true };
    expect(restartAdvice(fresh, snap('cancelled', 'failed'))).toBe(
      'The migration was cancelled, nothing was lost: a fresh destination comes first (this one has failed and listens no more; s shows you how).',
    );
    expect(restartAdvice(fresh, snap('failed', 'cancelled'))).toContain('a fresh destination comes first (this one was cancelled and listens no more');
    expect(restartAdvice(fresh, snap('failed', 'none'))).toContain('migrate-incoming comes first');
    expect(restartAdvice(active, snap('cancelled', 'failed'))).toContain('nothing was lost: the destination has failed too and listens no more: on the destination migrate-incoming first');
    expect(restartAdvice(active, snap('none', 'none', { link: link('cut', 'cut') }))).toBe(
      'The link is cut: a migration started now would not get through. u restores it.',
    );
  });

  it('show me sends migrate-incoming first where the step migrates but an earlier step listened, and the destination listens no more', () => {
    const migrateOnly = { actions: [{ type: 'qmp', side: 'source', execute: 'migrate', arguments: { uri: '${incoming.connect}' }, oob: false }] } as unknown as Pick<LabStep, 'actions'>;
    const listen = { type: 'qmp', side: 'destination', execute: 'migrate-incoming', arguments: { uri: '${incoming.listen}' }, oob: false };
    expect(listenFirst(migrateOnly, snap('failed', 'failed'))).toEqual(listen);
    expect(listenFirst(migrateOnly, snap('failed', 'cancelled'))).toEqual(listen);
    expect(listenFirst(migrateOnly, snap('none', 'none'))).toEqual(listen);
    // Listening, or migrating: nothing first.
    expect(listenFirst(migrateOnly, snap('none', 'setup'))).toBeNull();
    expect(listenFirst(migrateOnly, snap('active', 'active'))).toBeNull();
    // Gone (QEMU's exits when its incoming migration fails): no command can reach it.
    const gone = snap('failed', 'failed');
    gone.destination = { ...gone.destination, alive: false };
    expect(listenFirst(migrateOnly, gone)).toBeNull();
    // A step that listens itself, starts a fresh destination, or only resumes: its own commands.
    expect(listenFirst({ actions: [listen, ...migrateOnly.actions] } as Pick<LabStep, 'actions'>, snap('failed', 'failed'))).toBeNull();
    expect(listenFirst({ actions: [{ type: 'vm', side: 'destination', do: 'restart' }, ...migrateOnly.actions] } as Pick<LabStep, 'actions'>, snap('failed', 'failed'))).toBeNull();
    expect(listenFirst(resumeStep, snap('failed', 'failed'))).toBeNull();
  });

  it('says nothing while a migration runs, in a step that does not start one, or when a VM is gone', () => {
    const active = { startsMigration: true, status: 'active' as const };
    expect(restartAdvice(active, snap('active', 'active'))).toBeNull();
    expect(restartAdvice(active, snap('none', 'none'))).toBeNull();
    expect(restartAdvice({ startsMigration: false, status: 'active' }, snap('failed', 'failed'))).toBeNull();
    expect(restartAdvice({ startsMigration: true, status: 'pending' }, snap('failed', 'failed'))).toBeNull();
    const dead = snap('failed', 'failed', { destination: fakeSide('destination', { status: 'failed', alive: false }) });
    expect(restartAdvice(active, dead)).toBeNull();
  });
});

describe('unreachable when the destination process is gone', () => {
  it("a step that starts a migration but no fresh destination can no longer happen once QEMU's destination exited", () => {
    const gone = snap('failed', 'failed', { destination: fakeSide('destination', { status: 'failed', alive: false }) });
    const u = unreachable(retryStep, 'source.status == "postcopy-paused"', gone);
    expect(u).toMatchObject({ cause: 'migration-failed', step: 3, retry: false });
    expect(u!.message).toContain("(source failed, destination failed), the destination's process exited and the guest kept running on the source");
    // Alive (the sim's failed destination), the person may start again: no dead end.
    expect(unreachable(retryStep, 'source.status == "postcopy-paused"', snap('failed', 'failed'))).toBeNull();
    // A step that starts a fresh destination itself is no dead end either.
    const fresh: Actions = { index: 2, actions: [{ type: 'vm', side: 'destination', do: 'restart' }, ...retryStep.actions] };
    expect(unreachable(fresh, 'source.status == "postcopy-paused"', gone)).toBeNull();
  });
});

describe('preemptRefused', () => {
  const paused = (refusedSecond: number) => ({ ...snap('postcopy-paused', 'postcopy-paused'), link: { ...snap('postcopy-paused', 'postcopy-paused').link, refusedSecond } });
  it('is both sides paused after the destination refused a second connection during the current step', () => {
    expect(preemptRefused({ snapshot: paused(1), currentStep: 2, stepStart: { step: 2, refusedSecond: 0 } })).toBe(true);
    // One refused before the step began is not this step's; nor is one with a side still running.
    expect(preemptRefused({ snapshot: paused(1), currentStep: 2, stepStart: { step: 2, refusedSecond: 1 } })).toBe(false);
    expect(preemptRefused({ snapshot: paused(1), currentStep: 3, stepStart: { step: 2, refusedSecond: 0 } })).toBe(false);
    const active = { ...paused(1), destination: fakeSide('destination', { status: 'postcopy-active' }) };
    expect(preemptRefused({ snapshot: active, currentStep: 2, stepStart: { step: 2, refusedSecond: 0 } })).toBe(false);
    expect(preemptRefused({ snapshot: paused(0), currentStep: 2, stepStart: { step: 2, refusedSecond: 0 } })).toBe(false);
  });
});

describe('faultTooEarly', () => {
  const until = 'source.status == "postcopy-paused" && destination.status == "postcopy-paused"';
  it('is a link-breaking fault in precopy during a step that waits for postcopy', () => {
    expect(faultTooEarly({ until }, { kind: 'cut' }, snap('active', 'active'))).toBe(true);
    expect(faultTooEarly({ until }, { kind: 'blackhole' }, snap('setup', 'setup'))).toBe(true);
    expect(faultTooEarly({ until }, { kind: 'cut' }, snap('postcopy-active', 'postcopy-active'))).toBe(false);
    expect(faultTooEarly({ until }, { kind: 'latency' } as never, snap('active', 'active'))).toBe(false);
    expect(faultTooEarly({ until: 'source.status == "failed"' }, { kind: 'cut' }, snap('active', 'active'))).toBe(false);
  });
});

describe('unreachable once the step has started its own migration', () => {
  it('a failure is no longer excused by the step starting a migration: its own start has run (a drill, show me)', () => {
    const s = snap('failed', 'failed');
    expect(unreachable(retryStep, 'source.status == "active"', s)).toBeNull();
    expect(unreachable(retryStep, 'source.status == "active"', s, { started: true })).toMatchObject({ cause: 'migration-failed', step: 3 });
    expect(unreachable(retryStep, 'source.status == "active"', snap('active', 'active'), { started: true })).toBeNull();
  });
});

describe('stepLinkFaults', () => {
  it('the breaking kinds a step applies itself, once each; a restore or a shaping fault is none', () => {
    expect(stepLinkFaults(cutStep)).toEqual(['cut']);
    const mixed = {
      actions: [
        { type: 'link', fault: { kind: 'blackhole', direction: 'destination-to-source' } },
        { type: 'link', fault: { kind: 'latency', ms: 5 } },
        { type: 'restore' },
        { type: 'link', fault: { kind: 'blackhole' } },
      ],
    } as unknown as Pick<LabStep, 'actions'>;
    expect(stepLinkFaults(mixed)).toEqual(['blackhole']);
    expect(stepLinkFaults(waitOnly)).toEqual([]);
  });
});

describe('postcopyFlagMissing', () => {
  it("turns libvirt's VIR_MIGRATE_POSTCOPY refusal into the way on, and says nothing of other errors", () => {
    const refusal = 'Error: virsh migrate-postcopy pcl-guest failed: Requested operation is not valid: switching to post-copy requires migration to be started with VIR_MIGRATE_POSTCOPY flag';
    expect(postcopyFlagMissing(refusal, 'pcl-guest')).toBe(
      '(this migration was started without --postcopy: virsh domjobabort pcl-guest on the source cancels it, nothing lost in precopy; then start it again with virsh migrate --live --postcopy …)',
    );
    expect(postcopyFlagMissing('Error: domain not found')).toBeNull();
  });
});

describe('virshResumeOverBrokenLink', () => {
  it("says why libvirt's resume failed when the link is broken, and nothing otherwise", () => {
    const line = 'virsh migrate --live --postcopy --postcopy-resume pcl-guest qemu+tcp://10.213.0.2/system';
    const cut = fakeSnapshot({ link: { ...fakeSnapshot().link, up: false, 'source-to-destination': fakeDirection({ state: 'cut' }), 'destination-to-source': fakeDirection({ state: 'cut' }) } });
    const refused = "error: unable to connect to server at '10.213.0.2:16509': Connection refused";
    expect(virshResumeOverBrokenLink(line, cut, false, refused)).toBe('(the link is cut: u restores it, then run this again)');
    expect(virshResumeOverBrokenLink(line, fakeSnapshot(), false, refused)).toBeNull();
    expect(virshResumeOverBrokenLink('virsh migrate --live --postcopy pcl-guest qemu+tcp://x/system', cut, false, refused)).toBeNull();
    expect(virshResumeOverBrokenLink(line, null, false, refused)).toBeNull();
    // libvirt-blackhole's lesson: refused because the postcopy has not failed; not the link's doing.
    expect(virshResumeOverBrokenLink(`${line} --p2p`, cut, false, 'error: post-copy migration of domain pcl-guest has not failed')).toBeNull();
    // Started in the background (over a blackhole nothing refuses it): it will wait, and says so.
    const hole = fakeSnapshot({ link: { ...fakeSnapshot().link, up: false, 'source-to-destination': fakeDirection({ state: 'blackhole' }), 'destination-to-source': fakeDirection({ state: 'blackhole' }) } });
    expect(virshResumeOverBrokenLink(line, hole, true)).toMatch(/^\(the link is blackholed: this virsh waits to reach the other side across it, minutes until TCP gives up/);
  });
});

describe('vmOnlyLabel', () => {
  it('names what s does in a step of VM actions alone, and nothing for any other step', () => {
    const restartBoth: Actions = { index: 1, actions: [{ type: 'vm', side: 'source', do: 'restart' }, { type: 'vm', side: 'destination', do: 'restart' }] };
    expect(vmOnlyLabel(restartBoth)).toBe('restart both VMs');
    expect(vmOnlyLabel({ actions: [{ type: 'vm', side: 'source', do: 'kill' }] })).toBe('kill source');
    expect(vmOnlyLabel({ actions: [{ type: 'vm', side: 'source', do: 'recovery-source' }] })).toBe('start recovery source');
    expect(vmOnlyLabel({ actions: [{ type: 'vm', side: 'source', do: 'kill' }, { type: 'vm', side: 'source', do: 'start' }] })).toBe('do the VM steps');
    // A restart followed by a command the person can type: show me, as in any step.
    expect(vmOnlyLabel({ actions: [...restartBoth.actions, ...retryStep.actions] })).toBeUndefined();
    expect(vmOnlyLabel(waitOnly)).toBeUndefined();
    expect(vmOnlyLabel(cutStep)).toBeUndefined();
  });
});

describe('recoverySides', () => {
  it("the sides a step's own recovery commands go to: a fresh migrate or a destination migrate counts for none", () => {
    const qmp = (side: string, execute: string, args: Record<string, unknown> = {}) => ({ type: 'qmp', side, execute, arguments: args, oob: false });
    const step = (...actions: unknown[]) => ({ actions }) as unknown as Pick<LabStep, 'actions'>;
    expect(recoverySides(step({ type: 'restore' }, qmp('source', 'migrate', { uri: 'tcp:x', resume: true })))).toEqual(['source']);
    expect(recoverySides(step(qmp('destination', 'migrate-recover', { uri: 'tcp:x' }), qmp('source', 'migrate', { uri: 'tcp:y', resume: true })))).toEqual(['destination', 'source']);
    expect(recoverySides(step(qmp('source', 'migrate', { uri: 'tcp:x' }), qmp('destination', 'migrate-incoming', { uri: 'tcp:y' })))).toEqual([]);
    expect(recoverySides(waitOnly)).toEqual([]);
  });
});

describe('consoleArguments', () => {
  const addresses = { 'incoming.listen': 'tcp:a:1', 'incoming.connect': 'tcp:a:2', 'recover.listen': 'tcp:a:3', 'recover.connect': 'tcp:a:4' };
  it("gives each address command this run's address on its own side, and resume once the source is paused", () => {
    expect(consoleArguments('migrate-incoming', 'destination', null, addresses)).toBe('{"uri": "tcp:a:1"}');
    expect(consoleArguments('migrate-recover', 'destination', null, addresses)).toBe('{"uri": "tcp:a:3"}');
    expect(consoleArguments('migrate', 'source', snap('active', 'active'), addresses)).toBe('{"uri": "tcp:a:2"}');
    expect(consoleArguments('migrate', 'source', snap('postcopy-paused', 'postcopy-paused'), addresses)).toBe('{"uri": "tcp:a:4", "resume": true}');
  });
  it('gives nothing on the wrong side, for other commands, or without addresses (libvirt)', () => {
    expect(consoleArguments('migrate', 'destination', null, addresses)).toBeNull();
    expect(consoleArguments('migrate-recover', 'source', null, addresses)).toBeNull();
    expect(consoleArguments('query-migrate', 'source', null, addresses)).toBeNull();
    expect(consoleArguments('migrate', 'source', null, {})).toBeNull();
    const saved = { 'source.ram-file': '/run/x/source.ram', 'guest.ram-bytes': '67108864' };
    expect(consoleArguments('pmemsave', 'source', null, saved)).toBe('{"val": 0, "size": 67108864, "filename": "/run/x/source.ram"}');
    expect(consoleArguments('pmemsave', 'destination', null, saved)).toBeNull();
    expect(consoleArguments('pmemsave', 'source', null, addresses)).toBeNull();
  });
  it("notes under an error for a command typed bare that Tab fills in this run's arguments", () => {
    const saved = { ...addresses, 'source.ram-file': '/run/x/source.ram', 'guest.ram-bytes': '67108864' };
    const missing = { ok: false, text: "Parameter 'val' is missing (GenericError)" };
    expect(consoleReplyNote('source', 'pmemsave', missing, undefined, null, saved)).toBe("(the file and the size are this run's: type pmemsave, a space, and Tab fills it in)");
    expect(consoleReplyNote('source', 'pmemsave', missing, undefined, null, addresses)).toBeNull();
    const noUri = { ok: false, text: "need either 'uri' or 'channels' argument (GenericError)" };
    expect(consoleReplyNote('destination', 'migrate-incoming', noUri, undefined, null, saved)).toBe("(the address is this run's: type migrate-incoming, a space, and Tab fills it in)");
    expect(consoleReplyNote('source', 'query-status', { ok: false, text: "Parameter 'x' is missing" }, undefined, null, saved)).toBeNull();
    // Typed HMP-style, with an address of its own that the lab would refuse next.
    const hmp = { ok: false, text: 'Arguments must be a JSON object, not "tcp:0:4444": e.g. migrate-incoming {"uri": "tcp:0:4444"} (QMP takes named arguments, unlike HMP\'s positional ones).' };
    expect(consoleReplyNote('destination', 'migrate-incoming tcp:0:4444', hmp, undefined, null, saved)).toBe("(the address is this run's: type migrate-incoming, a space, and Tab fills it in)");
    expect(consoleReplyNote('destination', 'query-status tcp:0:4444', hmp, undefined, null, saved)).toBeNull();
    // A recovery's migrate typed without resume: QEMU says only that a migration is in progress.
    const inProgress = { ok: false, text: "There's a migration process in progress (GenericError)" };
    const pausedSnap = snap('postcopy-paused', 'postcopy-paused');
    expect(consoleReplyNote('source', 'migrate {"uri": "tcp:127.0.0.1:5004"}', inProgress, undefined, pausedSnap, saved)).toBe(
      '(the source is postcopy-paused: a recovery\'s migrate takes "resume": true; type migrate, a space, and Tab fills it in)',
    );
    expect(consoleReplyNote('source', 'migrate {"uri": "tcp:127.0.0.1:5004"}', inProgress, undefined, snap('active', 'active'), saved)).toBeNull();
    // The destination's query-migrate: where the counters are instead.
    expect(consoleReplyNote('destination', 'query-migrate', { ok: true, text: '{"status":"postcopy-active"}' }, undefined, null, saved)).toMatch(/are the source's: Shift-Tab\)$/);
    expect(consoleReplyNote('source', 'query-migrate', { ok: true, text: '{"status":"postcopy-active"}' }, undefined, null, saved)).toBeNull();
    expect(consoleReplyNote('destination', 'query-migrate', { ok: true, text: '{"status":"active","ram":{"total":1}}' }, undefined, null, saved)).toBeNull();
  });
});

describe('earlySwitchRefusal', () => {
  const firstPass = { index: 0, actions: [], until: parseCondition('source.status == "active" && source.ram.dirty-sync-count >= 3') } as unknown as Pick<LabStep, 'actions' | 'until' | 'index'>;
  const at = (syncs: number, status: MigrationStatus = 'active') => {
    const s = snap(status, status);
    s.source = { ...s.source, ram: { ...s.source.ram!, 'dirty-sync-count': syncs } };
    return s;
  };
  const start = { execute: 'migrate-start-postcopy' };
  it("refuses a switch while the step waits for precopy and its condition does not hold yet", () => {
    expect(earlySwitchRefusal(firstPass, 'source', start, at(1))).toMatch(/^step 1 waits for precopy \(source.status == "active" && source.ram.dirty-sync-count >= 3\).*wait until step 1 is done, then switch$/);
  });
  it('lets it through once the condition holds, in a step that switches itself, and anything else', () => {
    expect(earlySwitchRefusal(firstPass, 'source', start, at(3))).toBeNull();
    expect(earlySwitchRefusal({ ...firstPass, actions: [{ type: 'qmp', side: 'source', execute: 'migrate-start-postcopy', arguments: {} }] } as never, 'source', start, at(1))).toBeNull();
    expect(earlySwitchRefusal(firstPass, 'source', { execute: 'query-migrate' }, at(1))).toBeNull();
    expect(earlySwitchRefusal(firstPass, 'destination', start, at(1))).toBeNull();
    // No migration yet: QEMU's own error says it.
    expect(earlySwitchRefusal(firstPass, 'source', start, at(0, 'none'))).toBeNull();
    const anyStep = { index: 2, actions: [], until: parseCondition('destination.status == "postcopy-active"') } as unknown as Pick<LabStep, 'actions' | 'until' | 'index'>;
    expect(earlySwitchRefusal(anyStep, 'source', start, at(1))).toBeNull();
  });
});

describe('earlyResumeRefusal', () => {
  const resume = { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:5004', resume: true } };
  const paused = snap('postcopy-paused', 'postcopy-paused');
  it('refuses a resume before the destination listens where it would strand the source (QEMU before 8.2), naming the command', () => {
    expect(earlyResumeRefusal('source', resume, paused, false, '7.2', 'tcp:127.0.0.1:5003')).toBe(
      'the destination is not listening for the recovery yet, and a QEMU 7.2 source whose resume finds no listener stays in postcopy-recover for good: first, on the destination, migrate-recover {"uri": "tcp:127.0.0.1:5003"}',
    );
    // Said of a stand-in source (qemu-recovery-file's, ours): the order only, no claim about QEMU.
    const standIn = snap('postcopy-paused', 'postcopy-paused');
    standIn.source = { ...standIn.source, recoverySource: { 'held-pages': 10 } as never };
    expect(earlyResumeRefusal('source', resume, standIn, false, '7.2', 'tcp:127.0.0.1:5003')).toBe(
      'the destination is not listening for the recovery yet, and the resume needs a listener: first, on the destination, migrate-recover {"uri": "tcp:127.0.0.1:5003"}',
    );
    expect(recoveryFailureStrands('7.2.22')).toBe(true);
    expect(recoveryFailureStrands('8.1')).toBe(true);
  });
  it('lets it through once the destination listens, from 8.2 on (double-failure resumes too early on purpose), and for other commands', () => {
    expect(earlyResumeRefusal('source', resume, paused, true, '7.2')).toBeNull();
    expect(earlyResumeRefusal('source', resume, paused, false, '8.2')).toBeNull();
    expect(earlyResumeRefusal('source', resume, paused, false, '10.0')).toBeNull();
    expect(earlyResumeRefusal('source', { execute: 'migrate', arguments: { uri: 'tcp:x' } }, paused, false, '7.2')).toBeNull();
    expect(earlyResumeRefusal('destination', { execute: 'migrate-recover', arguments: { uri: 'tcp:x' } }, paused, false, '7.2')).toBeNull();
    // The destination not paused (it crashed, or is recovering): not this rule's to judge.
    expect(earlyResumeRefusal('source', resume, snap('postcopy-paused', 'postcopy-recover'), false, '7.2')).toBeNull();
    expect(recoveryFailureStrands('not a version')).toBe(false);
  });
});

describe('resumeRefusal', () => {
  const resume = { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:5004', resume: true } };
  const broken = (state: 'cut' | 'blackhole' | 'down', back: 'up' | 'cut' | 'blackhole' | 'down' = state === 'down' ? 'down' : state) =>
    snap('postcopy-paused', 'postcopy-paused', { link: { ...fakeSnapshot().link, 'source-to-destination': fakeDirection({ state }), 'destination-to-source': fakeDirection({ state: back }) } });
  it('refuses a resume over a link the person left broken, saying to press u first (QEMU 7.2 would hang in postcopy-recover)', () => {
    const r = resumeRefusal(waitOnly, 'source', resume, broken('cut'));
    expect(r).toBe('the link is cut, so the resume would not get through (and a QEMU source before 8.2 would then stay in postcopy-recover for good): press u to restore the link, then resume');
    expect(resumeRefusal(waitOnly, 'source', resume, broken('blackhole', 'up'))).toMatch(/^the link is blackholed \(source to destination\), so/);
  });
  it('lets it through with the link up, for other commands, on the destination, and in a step that breaks the link itself', () => {
    expect(resumeRefusal(waitOnly, 'source', resume, snap('postcopy-paused', 'postcopy-paused'))).toBeNull();
    expect(resumeRefusal(waitOnly, 'source', { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:5002' } }, broken('cut'))).toBeNull();
    expect(resumeRefusal(waitOnly, 'destination', { execute: 'migrate-recover', arguments: { uri: 'tcp:127.0.0.1:5003' } }, broken('cut'))).toBeNull();
    // qemu-recover-hang, double-failure: the step blackholes the link, then resumes into it on purpose.
    const holeThenResume: Actions = { index: 2, actions: [{ type: 'link', fault: { kind: 'blackhole' } }, ...resumeStep.actions] };
    expect(resumeRefusal(holeThenResume, 'source', resume, broken('blackhole'))).toBeNull();
    expect(resumeRefusal(holeThenResume, 'source', resume, broken('up' as 'cut', 'blackhole'))).toBeNull();
  });
  it("refuses it in a step that breaks the link, when the break is not the step's own (c pressed where the step blackholes)", () => {
    const holeThenResume: Actions = { index: 2, actions: [{ type: 'link', fault: { kind: 'blackhole' } }, ...resumeStep.actions] };
    expect(resumeRefusal(holeThenResume, 'source', resume, broken('cut'))).toBe(
      "the link is cut, so the resume would not get through (and a QEMU source before 8.2 would then stay in postcopy-recover for good): press u to restore the link, set the step's own fault (blackhole), then resume",
    );
    expect(resumeRefusal(holeThenResume, 'source', resume, broken('blackhole', 'cut'))).toMatch(/^the link is blackholed \(source to destination\), cut \(back\), so/);
    const returnHole: Actions = { index: 2, actions: [{ type: 'link', fault: { kind: 'blackhole', direction: 'destination-to-source' } }, ...resumeStep.actions] };
    expect(resumeRefusal(returnHole, 'source', resume, broken('cut'))).toMatch(/set the step's own fault \(blackhole destination-to-source\), then resume$/);
  });
  it("refuses it over the step's own fault in a step that recovers nothing (blackhole's Pull the cable: b pressed after a cut, before the recovery)", () => {
    const pullCable: Actions = { index: 1, actions: [{ type: 'link', fault: { kind: 'blackhole' } }] };
    expect(resumeRefusal(pullCable, 'source', resume, broken('blackhole'))).toBe(
      'the link is blackholed, so the resume would not get through (and a QEMU source before 8.2 would then stay in postcopy-recover for good): press u to restore the link, then resume',
    );
  });
});
