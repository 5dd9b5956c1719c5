import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LabError, listLabs } from '../../../src/lab/load.js';

const LABS_DIR = fileURLToPath(new URL('../../../labs/', import.meta.url));

describe('shipped labs', () => {
  it('every file in labs/ loads: valid YAML, schema, conditions, template names, id = file name', async () => {
    const problems: string[] = [];
    const labs = await listLabs(LABS_DIR, { onError: (e: LabError) => problems.push(e.message) });
    expect(problems).toEqual([]);
    expect(labs.length).toBeGreaterThan(0);
  });
});
