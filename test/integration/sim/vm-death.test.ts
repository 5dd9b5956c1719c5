/**
 * A VM process killed in the middle of a drill (through the CLI): the drill stops, exits 1,
 * and says which side died and what that means, and nothing of the run is left behind.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureBuilt,
  isStateEvent,
  jsonLines,
  pidsMatching,
  runtimeDirsIn,
  SLOW_POSTCOPY_LAB,
  spawnCli,
  tempDir,
  waitFor,
  waitForJsonLine,
  writeLab,
} from '../../helpers/sim.js';

const dirs: string[] = [];
beforeAll(ensureBuilt, 240_000);
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function killDuringPostcopy(side: 'source' | 'destination') {
  const dir = tempDir('pcl-death-');
  dirs.push(dir);
  const file = writeLab(dir, 'slow-postcopy', SLOW_POSTCOPY_LAB);
  const proc = spawnCli(['drill', file, '--json', '--no-record'], dir, 120_000);
  await waitForJsonLine(proc, (o) => isStateEvent(o, 'destination', 'postcopy-active'), 60_000);
  // The VM of that side: its command line names its QMP socket inside the run's runtime dir.
  const [pid] = await pidsMatching(`${dir}/postcopy-lab-.*/${side}\\.qmp`);
  expect(pid, `no ${side} VM process found`).toBeGreaterThan(0);
  process.kill(pid, 'SIGKILL');
  const r = await proc;
  const lines = jsonLines(String(r.stdout));
  const summary = lines[lines.length - 1];
  expect(r.exitCode).toBe(1);
  expect(summary).toMatchObject({ type: 'summary', ok: false, verified: false });
  await waitFor(async () => (await pidsMatching(dir)).length === 0, 'no process of the run left', 10_000);
  expect(runtimeDirsIn(dir)).toEqual([]);
  const errors = lines.filter((l) => l.kind === 'error').map((l) => String(l.text));
  return { message: String((summary.failure as { message: string }).message), errors };
}

describe('a VM process dies during a drill', () => {
  it('destination killed during postcopy: the drill says the destination died and the guest is lost', async () => {
    const { message, errors } = await killDuringPostcopy('destination');
    expect(message).toMatch(/the destination VM process died \(killed by SIGKILL\)/);
    expect(message).toMatch(/The destination died during postcopy/);
    expect(message).toMatch(/The guest is lost/);
    expect(errors.some((e) => /the destination VM process exited unexpectedly \(signal SIGKILL\)/.test(e))).toBe(true);
  }, 120_000);

  it('source killed during postcopy: the drill says the source died and the pages it still had are gone', async () => {
    const { message } = await killDuringPostcopy('source');
    expect(message).toMatch(/the source VM process died \(killed by SIGKILL\)/);
    expect(message).toMatch(/The source died during postcopy/);
  }, 120_000);
});
