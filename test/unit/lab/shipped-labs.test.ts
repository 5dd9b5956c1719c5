import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LabError, listLabs, loadLab } from '../../../src/lab/load.js';
import { evaluateCondition } from '../../../src/lab/condition.js';
import { stepState } from '../../../src/lab/snapshot-fields.js';
import type { MigrationStatus, PagesInfo } from '../../../src/types.js';
import { fakeSide, fakeSnapshot } from '../../helpers/fake-session.js';
import { hintCommand } from '../../../src/qmp/console.js';
import { QMP_COMMANDS } from '../../../src/ui/qmp-commands.js';

const LABS_DIR = fileURLToPath(new URL('../../../labs/', import.meta.url));

describe('shipped labs', () => {
  it('every file in labs/ loads: valid YAML, schema, conditions, template names, id = file name', async () => {
    const problems: string[] = [];
    const labs = await listLabs(LABS_DIR, { onError: (e: LabError) => problems.push(e.message) });
    expect(problems).toEqual([]);
    expect(labs.length).toBeGreaterThan(0);
  });
});

/** Every QMP command a shipped lab's steps send, with its lab and step: where a name in each message comes from. */
async function qmpActions() {
  const labs = await Promise.all((await listLabs(LABS_DIR)).map((l) => loadLab(l.path)));
  return labs.flatMap((lab) =>
    lab.steps.flatMap((step) => step.actions.flatMap((a) => (a.type === 'qmp' ? [{ a, step, where: `${lab.id} step ${step.index + 1}: ${a.execute}` }] : []))),
  );
}

describe("shipped labs' hints", () => {
  it('give the address of every migration command a step sends to an address (a learner cannot guess a port)', async () => {
    const missing: string[] = [];
    for (const { a, step, where } of await qmpActions()) {
      if (a.expectError !== undefined) continue;
      const uri = a.arguments.uri;
      if (typeof uri !== 'string' || !uri.includes('${')) continue;
      // Some hint names the command with that very template.
      if (!step.hints.some((h) => h.includes(a.execute) && h.includes(uri))) missing.push(`${where} ${uri}`);
    }
    expect(missing).toEqual([]);
  });

  it('let y copy every command a step sends with its arguments spelt out (the console knows its name)', async () => {
    const uncopyable: string[] = [];
    for (const { a, step, where } of await qmpActions()) {
      const hinted = step.hints.filter((h) => h.includes(a.execute));
      if (hinted.length === 0) continue;
      // A run fills the templates (an address, a size, a path); any value parses the same.
      const filled = hinted.map((h) => h.replace(/\$\{[^}]+\}/g, '1'));
      if (!filled.some((h) => hintCommand(h, QMP_COMMANDS) !== null)) uncopyable.push(where);
    }
    expect(uncopyable).toEqual([]);
  });
});

describe('steps about a recovery that fails', () => {
  const at = (status: MigrationStatus, attempts: number, recoveries: number) =>
    fakeSnapshot({
      source: fakeSide('source', { status, pages: { ...fakeSide('source').pages, 'recovery-attempts': attempts, recoveries } as PagesInfo }),
      destination: fakeSide('destination', { status: 'postcopy-paused' }),
    });
  it.each([
    ['double-failure', 'Reconnect too early', 'postcopy-recover'],
    ['qemu-recover-hang', 'Start a recovery that stalls in the handshake', 'postcopy-recover'],
  ])("%s's %s is not done by a recovery that went through and a cut after it", async (id, title, failing) => {
    const lab = await loadLab(`${LABS_DIR}${id}.yaml`);
    const step = lab.steps.find((s) => s.title === title)!;
    const base = at('postcopy-paused', 0, 0);
    const holds = (now: ReturnType<typeof at>) => evaluateCondition(step.until, stepState(now, base)).value;
    // Recovered (played: the missed recovery), then cut again: paused after one attempt, which completed.
    expect(holds(at('postcopy-active', 1, 1))).toBe(false);
    expect(holds(at('postcopy-paused', 1, 1))).toBe(false);
    // An attempt that did not complete: the step's own lesson.
    const lesson = id === 'double-failure' ? 'postcopy-paused' : failing;
    expect(holds(at(lesson as MigrationStatus, 2, 1))).toBe(true);
  });
});

