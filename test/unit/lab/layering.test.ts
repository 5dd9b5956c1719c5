/**
 * The layers point one way: the lab layer uses the driver, the driver knows nothing of labs
 * (issue 8). A driver file importing from src/lab would make that cycle possible again.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DRIVER = fileURLToPath(new URL('../../../src/driver/', import.meta.url));

describe('layering', () => {
  it('no file in src/driver imports from src/lab', () => {
    const files = readdirSync(DRIVER).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(3);
    const offenders = files.filter((f) => /from '\.\.\/lab\//.test(readFileSync(DRIVER + f, 'utf8')));
    expect(offenders).toEqual([]);
  });
});
