/**
 * The lab authoring check (rustlings' `dev check`): every shipped lab has the words a person
 * needs (a title, a summary, each step's text and at least one hint, a closing summary), and,
 * run as a drill through the one runner (LabSession, mode 'drill', the relay link, the sim),
 * every step's `until` is false when the step begins and true after its `do`. A step whose
 * condition already held at its start teaches nothing: that is a bug in the lab, not here.
 *
 * Drills also run in test/integration/labs (through the CLI); here they run in-process, two at
 * a time, because what this checks is in the runner's step events (`data.untilAtStart`), read from its event stream.
 */
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { listLabs, loadLab } from '../../src/lab/load.js';
import type { Lab } from '../../src/lab/schema.js';
import { LabSession } from '../../src/lab/runner.js';
import { RelayLink } from '../../src/link/relay.js';
import type { RunSummary } from '../../src/types.js';
import { ensureBuilt, limiter } from '../helpers/sim.js';

const LABS_DIR = fileURLToPath(new URL('../../labs', import.meta.url));
const labs: Lab[] = await Promise.all((await listLabs(LABS_DIR)).map((l) => loadLab(l.path)));
const simLabs = labs.filter((l) => l.backends.includes('sim'));

const twoAtATime = limiter(2);

interface StepEventData {
  index: number;
  untilAtStart?: boolean;
  done?: boolean;
}

/** Runs `lab` as a drill; returns the summary and every step event, in order. */
async function drill(lab: Lab): Promise<{ summary: RunSummary; steps: StepEventData[]; log: string[] }> {
  const session = new LabSession(lab, { mode: 'drill', seed: lab.setup.seed ?? 1, makeLink: (runtimeDir) => new RelayLink({ runtimeDir }) });
  // Every event as it happens (the state's list is bounded; the stream is not).
  const steps: StepEventData[] = [];
  const log: string[] = [];
  const unsubscribe = session.onEvent((e) => {
    log.push(`${e.t} ${e.kind} ${e.side ?? ''} ${e.text}`);
    if (e.kind === 'step') steps.push(e.data as StepEventData);
  });
  const budget = lab.steps.reduce((ms, s) => ms + s.timeoutMs, 60_000);
  const timer = setTimeout(() => void session.stop('timeout'), budget);
  try {
    await session.start();
    const summary = await session.run();
    return { summary, steps, log };
  } finally {
    clearTimeout(timer);
    unsubscribe();
    await session.stop();
  }
}

beforeAll(ensureBuilt, 240_000);

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

describe('as a drill, every step of every sim lab starts false and ends true', () => {
  for (const lab of simLabs) {
    it.concurrent(
      lab.id,
      async () => {
        const { summary, steps, log } = await twoAtATime(() => drill(lab));
        const tail = `\nlast events:\n${log.slice(-15).join('\n')}`;
        expect(summary.ok, `${lab.id}: the drill failed: ${summary.failure?.message}${tail}`).toBe(true);
        // A lab whose outcome is a named failure ends in it: memory never verified, and the
        // step that was under way when it happened never finishes (every step still begins).
        const expected = lab.outcome?.failure;
        if (expected) expect(summary.expectedFailure?.reason, `${lab.id}: did not end in the outcome it declares${tail}`).toBe(expected);
        else expect(summary.verified, `${lab.id}: memory not verified${tail}`).toBe(true);
        const last = lab.steps.length - 1;
        for (const s of lab.steps) {
          const where = `${lab.id} step ${s.index + 1} '${s.title}'`;
          const began = steps.find((e) => e.index === s.index && e.done === undefined);
          const done = steps.find((e) => e.index === s.index && e.done === true);
          expect(began, `${where}: no 'step' event when it began${tail}`).toBeDefined();
          expect(began!.untilAtStart, `${where}: until '${s.until.source}' already held when the step began`).toBe(false);
          if (expected && s.index === last) continue;
          expect(done, `${where}: until '${s.until.source}' never held${tail}`).toBeDefined();
        }
      },
      180_000,
    );
  }
});
