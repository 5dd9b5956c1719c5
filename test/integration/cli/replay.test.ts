/**
 * `postcopy-lab replay`: a run's JSONL record (what a bug report carries) prints back as the
 * drill showed it, with the run's own outcome as the exit code; a file that is not a record is
 * bad input naming the line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureBuilt, runCli, tempDir } from '../../helpers/sim.js';

describe('postcopy-lab replay', () => {
  it('prints a recorded drill: steps, commands, state changes and the summary', async () => {
    await ensureBuilt();
    const dir = tempDir('postcopy-replay-');
    const record = path.join(dir, 'run.jsonl');
    const drill = await runCli(['drill', 'precopy-failure', '--record', record], dir, 120_000);
    expect(drill.code, drill.stderr).toBe(0);
    const r = await runCli(['replay', record], dir, 30_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/replay of precopy-failure .*seed 1, link relay/);
    expect(r.stdout).toMatch(/▶ step 2\/3: Cut the link/);
    expect(r.stdout).toMatch(/source: active -> failed/);
    expect(r.stdout).toMatch(/destination: migrate-incoming \{"uri":"tcp:127\.0\.0\.1:\d+"\} -> \{\}/);
    expect(r.stdout).toMatch(/✓ precopy-failure: completed in \d+\.\d s, every page verified/);
    // The replay says the same as the drill did, line for line where the lines are events.
    const steps = (s: string) => s.split('\n').filter((l) => /[▶✓] step/.test(l)).map((l) => l.replace(/^\[[^\]]*\] /, ''));
    expect(steps(r.stdout)).toEqual(steps(drill.stdout));
  }, 150_000);

  it('a killed run (no summary) exits 1 and says so; a file that is not a record exits 2 naming the line', async () => {
    await ensureBuilt();
    const dir = tempDir('postcopy-replay-');
    const partial = path.join(dir, 'partial.jsonl');
    fs.writeFileSync(partial, JSON.stringify({ type: 'run', lab: 'x' }) + '\n' + JSON.stringify({ type: 'event', t: 5, kind: 'step', text: 'step 1/2: a' }) + '\n');
    const r = await runCli(['replay', partial], dir, 30_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/killed before it finished/);
    const bad = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(bad, JSON.stringify({ type: 'run', lab: 'x' }) + '\n{oops\n');
    const b = await runCli(['replay', bad], dir, 30_000);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/bad\.jsonl:2: not JSON/);
  }, 60_000);
});
