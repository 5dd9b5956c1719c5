/**
 * The CLI as the one owner of exit, without a terminal: `lab <id>` falls back to a drill with
 * every drill option the person gave, and a signal to a running drill exits 128 + its number
 * with nothing left behind; after a SIGKILL, which no process survives to clean up after,
 * the run's socket directory is found as a dead run's and removed by cleanup.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureBuilt,
  isStateEvent,
  jsonLines,
  pidsMatching,
  runCli,
  runtimeDirsIn,
  SLOW_POSTCOPY_LAB,
  spawnCli,
  tempDir,
  waitFor,
  waitForJsonLine,
  writeLab,
} from '../helpers/sim.js';
import { cleanupRuntimeDirs, findRuntimeDirs } from '../../src/util/runtime-dir.js';

const dirs: string[] = [];
beforeAll(ensureBuilt, 240_000);
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function newDir(): string {
  const d = tempDir('pcl-exit-');
  dirs.push(d);
  return d;
}

describe('postcopy-lab lab <id> without a terminal', () => {
  it('runs as a drill with every drill option: --seed, --timeout, --record, --json', async () => {
    const dir = newDir();
    const file = writeLab(dir, 'slow-postcopy', SLOW_POSTCOPY_LAB);
    const record = path.join(dir, 'run.jsonl');
    const r = await runCli(['lab', file, '--json', '--seed', '7', '--timeout', '3', '--record', record, '--verbose'], dir);
    // The slow lab needs minutes: --timeout 3 ended it, which only happens if it was passed on.
    expect(r.code).toBe(1);
    const summary = jsonLines(r.stdout).find((l) => l.type === 'summary') as { failure?: { message?: string } } | undefined;
    expect(summary?.failure?.message).toMatch(/--timeout 3s/);
    const head = JSON.parse(fs.readFileSync(record, 'utf8').split('\n')[0]) as Record<string, unknown>;
    expect(head).toMatchObject({ type: 'run', seed: 7 });
    expect(runtimeDirsIn(dir)).toEqual([]);
  }, 120_000);

  it('honours --no-record: no event log under the state directory', async () => {
    const dir = newDir();
    const file = writeLab(dir, 'slow-postcopy', SLOW_POSTCOPY_LAB);
    const r = await runCli(['lab', file, '--json', '--timeout', '2', '--no-record'], dir);
    expect(r.code).toBe(1);
    expect(fs.existsSync(path.join(dir, 'state', 'postcopy-lab', 'runs'))).toBe(false);
  }, 120_000);

  it('refuses a bad drill option as a drill would (exit 2, naming the option)', async () => {
    const dir = newDir();
    const file = writeLab(dir, 'slow-postcopy', SLOW_POSTCOPY_LAB);
    const r = await runCli(['lab', file, '--seed', 'many'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--seed: 'many' must be a number/);
    // --timeout takes seconds or a duration like --learner-delay's; anything else names both forms.
    const t = await runCli(['drill', file, '--timeout', 'soon'], dir);
    expect(t.code).toBe(2);
    expect(t.stderr).toContain("--timeout: 'soon' must be seconds from 1 to 86400 or a duration like 90s or 30m");
  });

  it('takes --timeout as a duration too: 2s gives up as --timeout 2 does', async () => {
    const dir = newDir();
    const file = writeLab(dir, 'slow-postcopy', SLOW_POSTCOPY_LAB);
    const r = await runCli(['drill', file, '--json', '--timeout', '2s', '--no-record'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('the drill did not finish within --timeout');
  }, 120_000);
});

describe('signals to a running drill', () => {
  it.each([
    ['SIGHUP', 129],
    ['SIGINT', 130],
  ] as const)('%s exits %i; its VMs, relay and runtime directory are gone', async (signal, code) => {
    const dir = newDir();
    const file = writeLab(dir, 'slow-postcopy', SLOW_POSTCOPY_LAB);
    const proc = spawnCli(['drill', file, '--json', '--no-record'], dir, 120_000);
    await waitForJsonLine(proc, (o) => isStateEvent(o, 'destination', 'postcopy-active'), 60_000);
    const running = await pidsMatching(dir);
    expect(running.length).toBeGreaterThanOrEqual(3);
    proc.kill(signal);
    const r = await proc;
    expect(r.exitCode).toBe(code);
    await waitFor(async () => (await pidsMatching(dir)).length === 0, 'no process of the run to remain');
    expect(runtimeDirsIn(dir)).toEqual([]);
  }, 120_000);
});

describe('after SIGKILL of a drill', () => {
  it('its runtime directory stays, is known as a dead run\'s, and cleanup removes it', async () => {
    const dir = newDir();
    const file = writeLab(dir, 'slow-postcopy', SLOW_POSTCOPY_LAB);
    const proc = spawnCli(['drill', file, '--json', '--no-record'], dir, 120_000);
    await waitForJsonLine(proc, (o) => isStateEvent(o, 'destination', 'postcopy-active'), 60_000);
    const [live] = await findRuntimeDirs([dir]);
    expect(live).toMatchObject({ ownerPid: proc.pid, active: true });
    // A live run's directory is not touched.
    expect((await cleanupRuntimeDirs([dir])).removed).toEqual([]);
    proc.kill('SIGKILL');
    await proc;
    // The VMs and relay notice their parent is gone and exit; nobody removes the directory.
    await waitFor(async () => (await pidsMatching(dir)).length === 0, 'no process of the run to remain');
    expect(runtimeDirsIn(dir)).toHaveLength(1);
    expect(await findRuntimeDirs([dir])).toEqual([{ ...live, active: false }]);
    const result = await cleanupRuntimeDirs([dir]);
    expect(result).toEqual({ removed: [live!.path], errors: [] });
    expect(runtimeDirsIn(dir)).toEqual([]);
  }, 120_000);
});
