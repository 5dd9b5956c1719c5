import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LabError, listLabs, loadLab } from '../../../src/lab/load.js';

const LABS_DIR = fileURLToPath(new URL('../../../labs/', import.meta.url));

describe('shipped labs', () => {
  it('every file in labs/ loads: valid YAML, schema, conditions, template names, id = file name', async () => {
    const problems: string[] = [];
    const labs = await listLabs(LABS_DIR, { onError: (e: LabError) => problems.push(e.message) });
    expect(problems).toEqual([]);
    expect(labs.length).toBeGreaterThan(0);
  });
});

describe("shipped labs' hints", () => {
  it('give the address of every migration command a step sends to an address (a learner cannot guess a port)', async () => {
    const labs = await Promise.all((await listLabs(LABS_DIR)).map((l) => loadLab(l.path)));
    const missing: string[] = [];
    for (const lab of labs) {
      for (const step of lab.steps) {
        for (const a of step.actions) {
          if (a.type !== 'qmp' || a.expectError !== undefined) continue;
          const uri = a.arguments.uri;
          if (typeof uri !== 'string' || !uri.includes('${')) continue;
          // Some hint names the command with that very template.
          if (!step.hints.some((h) => h.includes(a.execute) && h.includes(uri))) missing.push(`${lab.id} step ${step.index + 1}: ${a.execute} ${uri}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });
});
