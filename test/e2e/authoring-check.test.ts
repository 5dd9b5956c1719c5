/**
 * The lab authoring check (rustlings' `dev check`), part one: every shipped lab has the words a
 * person needs (a title, a summary, each step's text and at least one hint, a closing summary).
 * Part two, every step's `until` false when the step begins and true after its `do`, is checked
 * on the drill every lab already runs through the CLI (test/integration/labs/drills.test.ts,
 * from the step events in its JSON), so no lab runs twice for it.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { listLabs, loadLab } from '../../src/lab/load.js';
import type { Lab } from '../../src/lab/schema.js';

const LABS_DIR = fileURLToPath(new URL('../../labs', import.meta.url));
const labs: Lab[] = await Promise.all((await listLabs(LABS_DIR)).map((l) => loadLab(l.path)));
const simLabs = labs.filter((l) => l.backends.includes('sim'));

describe('every shipped lab has the words a person needs', () => {
  it('finds the shipped labs', () => {
    expect(labs.length).toBeGreaterThanOrEqual(6);
    expect(simLabs.map((l) => l.id)).toContain('link-cut-recovery');
  });
  for (const lab of labs) {
    it(`${lab.id}: title, summary, each step's text and hints, and a closing summary`, () => {
      expect(lab.title.trim(), 'title').not.toBe('');
      expect(lab.summary.trim(), 'summary').not.toBe('');
      expect(lab.summaryText.trim(), 'summary-text').not.toBe('');
      expect(lab.steps.length, 'steps').toBeGreaterThan(0);
      for (const s of lab.steps) {
        const where = `step ${s.index + 1} '${s.title}'`;
        expect(s.title.trim(), `${where}: title`).not.toBe('');
        expect(s.text.trim(), `${where}: text`).not.toBe('');
        expect(s.hints.length, `${where}: hints`).toBeGreaterThanOrEqual(1);
        for (const h of s.hints) expect(h.trim(), `${where}: a hint`).not.toBe('');
      }
    });
  }
});
