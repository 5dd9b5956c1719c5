/**
 * The lab format's recovery-file additions: the `vm: source, do: recovery-source` action, the
 * x-recovery capabilities and window parameter in setup (sim only), the snapshot fields of the
 * recovery file and the recovery source, a declared `outcome`, and how a run's end is judged
 * against it; and GuestWatch turning a recovery source's refusal into `recovery-incomplete`.
 */
import { describe, expect, it } from 'vitest';
import { backendProblem, simOnlyFeatures } from '../../../src/lab/backend-fit.js';
import { GuestWatch, judgeOutcome, RunFailure } from '../../../src/lab/failure.js';
import { LabError, loadLabText } from '../../../src/lab/load.js';
import type { SideSnapshot, Snapshot } from '../../../src/types.js';

function lab(head: string[] = [], step: string[] = [], tail: string[] = ['expect: [destination.pages.verified == true]']): string {
  return [
    'id: rf',
    'title: Recovery file',
    'summary: A lab with a recovery file.',
    ...head,
    'setup:',
    '  memory: 64M',
    '  capabilities: { postcopy-ram: true, x-recovery-file: true }',
    '  parameters: { x-recovery-file-window: 64K }',
    'steps:',
    '  - title: One',
    '    text: The text.',
    '    hints: [h]',
    ...step.map((l) => `    ${l}`),
    '    until: source.status == "completed"',
    ...tail,
    'summary-text: done',
  ].join('\n');
}

function loadError(yaml: string): string {
  try {
    loadLabText(yaml, 'labs/rf.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(LabError);
    return (e as Error).message;
  }
  throw new Error('loaded without error');
}

describe('setup: the recovery file capabilities and window', () => {
  it('are accepted, the window as a size, and make the lab sim only', () => {
    const l = loadLabText(lab([], ['do: [{ vm: source, do: recovery-source }]']), 'rf.yaml');
    expect(l.setup.capabilities['x-recovery-file']).toBe(true);
    expect(l.setup.parameters['x-recovery-file-window']).toBe(65536);
    expect(simOnlyFeatures(l)).toEqual(['capability x-recovery-file', 'parameter x-recovery-file-window', 'action { vm: source, do: recovery-source }']);
    expect(backendProblem(l, 'qemu')).toMatch(/runs on sim only .*: it uses capability x-recovery-file, parameter x-recovery-file-window, action \{ vm: source, do: recovery-source \}, the sim's own/);
    expect(backendProblem(l, 'sim')).toBeUndefined();
  });

  it('a bad window size is refused with the unit expected', () => {
    expect(loadError(lab().replace('x-recovery-file-window: 64K', 'x-recovery-file-window: lots'))).toMatch(/setup\.parameters\.x-recovery-file-window: .*size/);
  });
});

describe('the vm action recovery-source', () => {
  it('on the source', () => {
    const l = loadLabText(lab([], ['do:', '  - { vm: source, do: kill }', '  - { vm: source, do: recovery-source }']), 'rf.yaml');
    expect(l.steps[0]!.actions).toEqual([
      { type: 'vm', side: 'source', do: 'kill' },
      { type: 'vm', side: 'source', do: 'recovery-source' },
    ]);
  });

  it('on the destination is refused: it takes the source’s place', () => {
    expect(loadError(lab([], ['do:', '  - { vm: destination, do: recovery-source }']))).toMatch(
      /steps\[0\]\.do\[0\]\.vm: a recovery source takes the source's place: write \{ vm: source, do: recovery-source \}, got vm: destination/,
    );
  });
});

describe('conditions on the recovery file and the recovery source', () => {
  it('their fields are known paths', () => {
    const l = loadLabText(lab([], [], ["expect: ['source.recoveryFile.state == \"written\" && source.recoverySource.missing-pages > 0']"]), 'rf.yaml');
    expect(l.expect[0]!.source).toContain('source.recoveryFile.state');
  });

  it('a misspelt one is refused with a suggestion', () => {
    expect(loadError(lab([], [], ["expect: ['source.recoveryFile.stat == \"written\"']"]))).toMatch(/unknown field 'stat' in source\.recoveryFile\.stat \(did you mean 'state'\?\)/);
  });
});

describe('outcome: a failure the lab expects', () => {
  it('loads without expect', () => {
    const l = loadLabText(lab(['outcome: { failure: recovery-incomplete }'], [], []), 'rf.yaml');
    expect(l.outcome).toEqual({ failure: 'recovery-incomplete' });
    expect(l.expect).toEqual([]);
  });

  it.each([
    [['outcome: { failure: recovery-incomplete }'], ['expect: [source.alive]'], /expect: a lab whose outcome is a failure \(recovery-incomplete\) has no final expect/],
    [['outcome: { failure: timeout }'], [], /outcome\.failure: expected a failure reason: recovery-incomplete, guest-lost, vm-died, got 'timeout'/],
    [['outcome: { failure: recovery-incomplet }'], [], /\(did you mean 'recovery-incomplete'\?\)/],
    [[], [], /expect: required field is missing \(expected a list of final conditions, or an outcome/],
  ])('%j %j is refused', (head, tail, message) => {
    expect(loadError(lab(head, [], tail))).toMatch(message);
  });
});

describe('judgeOutcome', () => {
  const incomplete = new RunFailure('recovery cannot be complete: the destination lacks 3 pages', 'recovery-incomplete');

  it('no outcome: the run stands as it ended', () => {
    expect(judgeOutcome(undefined, null, true)).toEqual({ failure: null });
    expect(judgeOutcome(undefined, incomplete, false).failure).toBe(incomplete);
  });

  it('exactly the expected failure is a pass that names it', () => {
    expect(judgeOutcome({ failure: 'recovery-incomplete' }, incomplete, false)).toEqual({
      failure: null,
      expected: { reason: 'recovery-incomplete', message: incomplete.message },
    });
  });

  it('another failure fails, keeping its reason and saying what was expected', () => {
    const j = judgeOutcome({ failure: 'recovery-incomplete' }, new RunFailure('the source VM process died.', 'vm-died'), false);
    expect(j.expected).toBeUndefined();
    expect(j.failure?.reason).toBe('vm-died');
    expect(j.failure?.message).toBe("the source VM process died. The lab expects this run to end in 'recovery-incomplete' instead.");
  });

  it('a completion fails: the lab expected the failure', () => {
    const j = judgeOutcome({ failure: 'recovery-incomplete' }, null, true);
    expect(j.failure?.reason).toBe('expect');
    expect(j.failure?.message).toBe("the lab expects this run to end in 'recovery-incomplete', but the migration completed and every page verified");
  });
});

describe('GuestWatch and the recovery source', () => {
  const side = (s: Partial<SideSnapshot> & Pick<SideSnapshot, 'side' | 'status'>): SideSnapshot => ({ alive: true, runState: 'postmigrate', stalledMs: 0, ...s });
  const snap = (source: SideSnapshot): Snapshot => ({
    t: 0,
    source,
    destination: side({ side: 'destination', status: 'postcopy-paused' }),
    link: {} as Snapshot['link'],
  });
  const rs = { file: 'f', 'held-pages': 10, 'served-pages': 0, 'window-bytes': 0, 'missing-pages': 3, 'missing-first': [1, 2, 3] };

  it("a recovery source's refusal ends the run at once as recovery-incomplete, with its error-desc", () => {
    const error = 'recovery cannot be complete: the destination lacks 3 pages the recovery file does not hold (1, 2, 3)';
    const f = new GuestWatch().observe(snap(side({ side: 'source', status: 'failed', error, recoverySource: rs })));
    expect(f?.reason).toBe('recovery-incomplete');
    expect(f?.message).toBe(error);
    expect(f?.detail.seen).toMatchObject({ 'source.recoverySource.missing-pages': 3 });
  });

  it('any other error of a recovery source, or that text from a VM source, is not it', () => {
    expect(new GuestWatch().observe(snap(side({ side: 'source', status: 'postcopy-paused', error: 'recovery source: the original source is gone', recoverySource: rs })))).toBeNull();
    expect(new GuestWatch().observe(snap(side({ side: 'source', status: 'postcopy-paused', error: 'recovery cannot be complete: x' })))).toBeNull();
  });
});
