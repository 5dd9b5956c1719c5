import { describe, expect, it } from 'vitest';
import { notesFor, stepTextFor, versionProblem } from '../../../src/lab/backend-fit.js';
import { LabError, loadLabText } from '../../../src/lab/load.js';

/** A small lab with `head` lines at the top level and `step` lines in its one step. */
function lab(head: string[] = [], step: string[] = []): string {
  return [
    'id: versions',
    'title: Versions',
    'summary: A lab about versions.',
    'backends: [sim, qemu]',
    ...head,
    'setup: { memory: 64M }',
    'steps:',
    '  - title: One',
    '    text: The text.',
    '    hints: [h]',
    ...step.map((l) => `    ${l}`),
    '    until: source.status == "completed"',
    'expect: [destination.pages.verified == true]',
    'summary-text: done',
  ].join('\n');
}

function loadError(yaml: string): string {
  try {
    loadLabText(yaml, 'labs/versions.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(LabError);
    return (e as Error).message;
  }
  throw new Error('loaded without error');
}

describe('qemu: the versions a lab holds for', () => {
  it('no range: every version', () => {
    const l = loadLabText(lab(), 'versions.yaml');
    expect(l.qemu).toBeNull();
    expect(versionProblem(l, { kind: 'qemu', qemuVersion: '7.2' })).toBeUndefined();
  });

  it('a range as a string, and with the reason', () => {
    expect(loadLabText(lab(['qemu: ">=8.2"']), 'versions.yaml').qemu?.range.source).toBe('>=8.2');
    const l = loadLabText(lab(['qemu: { versions: ">=8.2", because: "7.2 hangs in postcopy-recover." }']), 'versions.yaml');
    expect(l.qemu?.because).toBe('7.2 hangs in postcopy-recover.');
  });

  it('QEMU outside the range: one sentence with the range, the version, why, and what to do', () => {
    const l = loadLabText(lab(['qemu: { versions: ">=8.2", because: "7.2 hangs in postcopy-recover." }']), 'versions.yaml');
    expect(versionProblem(l, { kind: 'qemu', qemuVersion: '10.0' })).toBeUndefined();
    expect(versionProblem(l, { kind: 'qemu', qemuVersion: '7.2' })).toBe(
      "lab 'versions' holds for QEMU >=8.2 only and this QEMU is 7.2: 7.2 hangs in postcopy-recover; pass --qemu with a QEMU in that range (postcopy-lab doctor lists the installed ones).",
    );
  });

  it('the sim emulating a version outside the range is told which one to emulate', () => {
    const l = loadLabText(lab(['qemu: ">=8.2"']), 'versions.yaml');
    expect(versionProblem(l, { kind: 'sim', qemuVersion: '7.2' })).toBe("lab 'versions' holds for QEMU >=8.2 only and the sim emulates QEMU 7.2; run it with --emulate 10.0.");
    expect(versionProblem(loadLabText(lab(['qemu: ">=11.0"']), 'versions.yaml'), { kind: 'sim', qemuVersion: '10.0' })).toMatch(/the sim emulates no version in that range \(it emulates 7\.2 and 10\.0\)\.$/);
  });

  it.each([
    ['qemu: ">=8"', /qemu: '>=8' in ">=8" is not a version clause \(a version is major\.minor: write >=8\.0\)/],
    ['qemu: 8.2', /qemu: expected a QEMU version range like ">=8\.2"/],
    ['qemu: { versions: ">=8.2", becuase: x }', /qemu\.becuase: unknown field 'becuase' \(did you mean 'because'\?\)/],
    ['qemu: { because: x }', /qemu\.versions: required field is missing/],
  ])('%s is refused with what was wrong', (line, message) => {
    expect(loadError(lab([line]))).toMatch(message);
  });
});

describe('notes: per-version step text', () => {
  const notes = ['notes:', '  "<9.1": "Stays in postcopy-recover."', '  ">=9.1": "Goes to postcopy-recover-setup first."', '  ">=7.2": "Every version here."'];

  it('only the notes for the version in use, after the text, each saying the version', () => {
    const step = loadLabText(lab([], notes), 'versions.yaml').steps[0]!;
    expect(notesFor(step, '7.2')).toEqual(['Stays in postcopy-recover.', 'Every version here.']);
    expect(notesFor(step, '10.0')).toEqual(['Goes to postcopy-recover-setup first.', 'Every version here.']);
    expect(stepTextFor(step, '10.0')).toBe('The text.\n\nOn QEMU 10.0: Goes to postcopy-recover-setup first.\n\nOn QEMU 10.0: Every version here.\n');
    expect(stepTextFor({ text: 'Plain.', notes: [] }, '7.2')).toBe('Plain.');
  });

  it.each([
    [['notes:', '  "8.2+": "x"'], /:11:15: steps\[0\]\.notes\["8\.2\+"\]: a note's key is a version range: '8\.2\+' in "8\.2\+" is not a version clause/],
    [['notes:', '  ">=8.2": 3'], /steps\[0\]\.notes\[">=8\.2"\]: expected the text of the note for QEMU >=8\.2, got 3/],
    [['notes: {}'], /steps\[0\]\.notes: expected a mapping of QEMU version range to text.*got an empty mapping/],
    [['notes:', '  ">=8.2": "at ${incomin.listen}"'], /steps\[0\]\.notes: unknown template variable/],
  ])('%j is refused with what was wrong', (step, message) => {
    expect(loadError(lab([], step))).toMatch(message);
  });

  it('expected-failures: the versions where a run ends in a known failure', () => {
    const l = loadLabText(lab(['expected-failures:', '  "<8.2": "the destination crashes (SIGSEGV)"']), 'versions.yaml');
    expect(l.expectedFailures.map((n) => [n.range.source, n.text])).toEqual([['<8.2', 'the destination crashes (SIGSEGV)']]);
  });
});

describe('the vm action', () => {
  it.each(['kill', 'start', 'restart'] as const)('%s a side', (op) => {
    const l = loadLabText(lab([], ['do:', `  - { vm: destination, do: ${op} }`]), 'versions.yaml');
    expect(l.steps[0]!.actions).toEqual([{ type: 'vm', side: 'destination', do: op }]);
  });

  it.each([
    ['  - { vm: destination, do: reboot }', /do: expected what to do to the process: kill, start, restart, recovery-source, got 'reboot'/],
    ['  - { vm: dest, do: restart }', /vm: expected the side whose VM process to act on: source, destination, got 'dest' \(did you mean 'destination'\?\)/],
    ['  - { vm: source }', /do: required field is missing/],
    ['  - { vm: source, do: kill, signal: 9 }', /signal: unknown field 'signal'/],
  ])('%s is refused', (line, message) => {
    expect(loadError(lab([], ['do:', line]))).toMatch(message);
  });
});
