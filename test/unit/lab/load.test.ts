import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeCondition, evaluateCondition } from '../../../src/lab/condition.js';
import { findLab, LabError, listLabs, loadLab, loadLabText } from '../../../src/lab/load.js';
import type { Lab } from '../../../src/lab/schema.js';

// Line numbers matter below: each line of GOOD is referred to by its number.
const GOOD = [
  /*  1 */ 'id: link-cut',
  /*  2 */ 'title: Cut the link during postcopy, then recover',
  /*  3 */ 'summary: One line shown in the lab picker.',
  /*  4 */ 'backends: [sim, qemu]',
  /*  5 */ 'setup:',
  /*  6 */ '  memory: 256M',
  /*  7 */ '  vcpus: 4',
  /*  8 */ '  workload: hotset',
  /*  9 */ '  capabilities: { postcopy-ram: true, return-path: true }',
  /* 10 */ '  parameters: { max-postcopy-bandwidth: 50M, downtime-limit: 300 }',
  /* 11 */ '  link: [ { kind: latency, ms: 5 } ]',
  /* 12 */ '  seed: 7',
  /* 13 */ 'steps:',
  /* 14 */ '  - title: Start the destination listening',
  /* 15 */ '    text: |',
  /* 16 */ '      Listen first.',
  /* 17 */ '    hints: ["Use migrate-incoming", "With the incoming address"]',
  /* 18 */ '    do:',
  /* 19 */ '      - qmp: destination',
  /* 20 */ '        execute: migrate-incoming',
  /* 21 */ '        arguments: { uri: "${incoming.listen}" }',
  /* 22 */ '    until: destination.status == "setup"',
  /* 23 */ '  - title: Break it',
  /* 24 */ '    text: Cut.',
  /* 25 */ '    hints: [cut]',
  /* 26 */ '    do:',
  /* 27 */ '      - link: { kind: cut, direction: both }',
  /* 28 */ '      - wait: 2s',
  /* 29 */ "      - wait-until: 'destination.pages.received > 100'",
  /* 30 */ '        timeout: 10s',
  /* 31 */ '      - link: restore',
  /* 32 */ '      - qmp: source',
  /* 33 */ '        execute: migrate-pause',
  /* 34 */ '        oob: true',
  /* 35 */ '        expect-error: not in postcopy',
  /* 36 */ '    until: source.status in ["postcopy-paused", "postcopy-recover"]',
  /* 37 */ '    timeout: 30s',
  /* 38 */ 'expect:',
  /* 39 */ '  - \'source.status == "completed"\'',
  /* 40 */ '  - \'destination.status == "completed"\'',
  /* 41 */ 'summary-text: |',
  /* 42 */ '  Done.',
].join('\n');

const FILE = 'labs/link-cut.yaml';

/** GOOD with line `n` (1-based) replaced by `text` (which may hold several lines, or none). */
function withLine(n: number, text: string | null): string {
  const lines = GOOD.split('\n');
  lines.splice(n - 1, 1, ...(text === null ? [] : [text]));
  return lines.join('\n');
}

function labError(yaml: string, file = FILE): LabError {
  try {
    loadLabText(yaml, file);
  } catch (e) {
    expect(e).toBeInstanceOf(LabError);
    return e as LabError;
  }
  throw new Error('loaded without error');
}

describe('loadLabText: a good lab', () => {
  let lab: Lab;
  beforeAll(() => {
    lab = loadLabText(GOOD, FILE);
  });

  it('normalizes sizes to bytes, durations to ms, and fills defaults', () => {
    expect(lab.id).toBe('link-cut');
    expect(lab.backends).toEqual(['sim', 'qemu']);
    expect(lab.setup).toEqual({
      memoryBytes: 256 * 2 ** 20,
      pageSize: 4096,
      vcpus: 4,
      workload: 'hotset',
      hotset: { fraction: 0.1, share: 0.9 },
      dirtyRate: 1000,
      readRate: 10000,
      capabilities: { 'postcopy-ram': true, 'return-path': true },
      parameters: { 'max-postcopy-bandwidth': 50 * 2 ** 20, 'downtime-limit': 300 },
      interactiveParameters: {},
      link: [{ kind: 'latency', ms: 5 }],
      seed: 7,
    });
    expect(lab.summaryText).toBe('Done.\n');
  });

  it('builds typed actions and parsed conditions that keep their text', () => {
    const [s0, s1] = lab.steps;
    expect(s0!.index).toBe(0);
    expect(s0!.hints).toEqual(['Use migrate-incoming', 'With the incoming address']);
    expect(s0!.timeoutMs).toBe(60_000);
    expect(s0!.actions).toEqual([
      { type: 'qmp', side: 'destination', execute: 'migrate-incoming', arguments: { uri: '${incoming.listen}' }, oob: false },
    ]);
    expect(s0!.until.source).toBe('destination.status == "setup"');
    expect(s1!.timeoutMs).toBe(30_000);
    const types = s1!.actions.map((a) => a.type);
    expect(types).toEqual(['link', 'wait', 'wait-until', 'restore', 'qmp']);
    expect(s1!.actions[0]).toEqual({ type: 'link', fault: { kind: 'cut', direction: 'both' } });
    expect(s1!.actions[1]).toEqual({ type: 'wait', ms: 2000 });
    const waitUntil = s1!.actions[2]!;
    expect(waitUntil.type === 'wait-until' && [describeCondition(waitUntil.condition), waitUntil.timeoutMs]).toEqual([
      'destination.pages.received > 100',
      10_000,
    ]);
    expect(s1!.actions[4]).toEqual({ type: 'qmp', side: 'source', execute: 'migrate-pause', arguments: {}, oob: true, expectError: 'not in postcopy' });
    expect(evaluateCondition(s1!.until, { source: { status: 'postcopy-paused' } }).value).toBe(true);
    expect(lab.expect.map((c) => c.source)).toEqual(['source.status == "completed"', 'destination.status == "completed"']);
  });

  it('fills the setup defaults of a minimal lab', () => {
    const minimal = loadLabText(
      ['id: m', 'title: T', 'summary: S', 'setup: { memory: 64M }', 'steps:', '  - { title: A, text: B, hints: [h], until: "true" }', 'expect: ["true"]', 'summary-text: x'].join('\n'),
      'm.yaml',
    );
    expect(minimal.backends).toEqual(['sim']);
    expect(minimal.setup).toEqual({
      memoryBytes: 64 * 2 ** 20,
      pageSize: 4096,
      vcpus: 2,
      workload: 'random',
      dirtyRate: 1000,
      readRate: 10000,
      capabilities: {},
      parameters: {},
      interactiveParameters: {},
      link: [],
    });
    expect(minimal.steps[0]!.actions).toEqual([]);
  });

  it('accepts units in link fault fields', () => {
    const lab2 = loadLabText(withLine(11, '  link: [ { kind: latency, ms: 1s, jitterMs: 20ms }, { kind: bandwidth, bytesPerSec: 10M }, { kind: flap, upMs: 2s, downMs: 500ms, mode: blackhole, count: 3 } ]'), FILE);
    expect(lab2.setup.link).toEqual([
      { kind: 'latency', ms: 1000, jitterMs: 20 },
      { kind: 'bandwidth', bytesPerSec: 10 * 2 ** 20 },
      { kind: 'flap', upMs: 2000, downMs: 500, mode: 'blackhole', count: 3 },
    ]);
  });
});

describe('loadLabText: errors name file, line, column, field and what was expected', () => {
  it.each([
    // [description, yaml, first line of the message]
    [
      'a condition syntax error',
      withLine(22, '    until: destination.status = "setup"'),
      `${FILE}:22:12: steps[0].until: unexpected token '=' at column 20 (expected a comparison like a == b)`,
    ],
    [
      'an unknown key, with a suggestion',
      withLine(22, '    untill: destination.status == "setup"'),
      `${FILE}:14:5: steps[0].until: required field is missing (expected a condition like destination.status == "completed")\n` +
        `${FILE}:22:5: steps[0].untill: unknown field 'untill' (did you mean 'until'?)`,
    ],
    [
      'a missing top-level field',
      withLine(41, null).replace('  Done.', ''),
      `${FILE}:1:1: summary-text: required field is missing (expected the text shown at the end)`,
    ],
    ['a duplicate key', withLine(24, '    text: Cut.\n    text: Again.'), `${FILE}:25:5: steps[1].text: duplicate key 'text' (each key may appear once in a mapping)`],
    ['a YAML syntax error', withLine(17, '    hints: ["a", "b"'), `${FILE}:18:5: steps[0].hints[1]: YAML syntax error:`],
    ['a plain value with ": " in it', withLine(2, 'title: Cut: then recover'), `${FILE}:2:8: title: YAML syntax error: a plain value cannot contain ': ' (expected quotes around it, like "Cut: then recover")`],
    ['an id that is not the file name', withLine(1, 'id: link-cutt'), `${FILE}:1:5: id: id 'link-cutt' does not match the file name link-cut.yaml (expected id: link-cut)`],
    ['an id with capitals', withLine(1, 'id: Link-Cut'), `${FILE}:1:5: id: expected an id of lower-case letters, digits and dashes, like link-cut-recovery, got 'Link-Cut'`],
    [
      'an unknown template variable',
      withLine(21, '        arguments: { uri: "${incoming.lisen}" }'),
      `${FILE}:21:27: steps[0].do[0].arguments.uri: unknown template variable '\${incoming.lisen}' (expected one of \${incoming.listen}, \${incoming.connect}, \${recover.listen}, \${recover.connect}, \${source.ram-file}, \${guest.ram-bytes}, \${libvirt.domain}, \${libvirt.dest-uri}, \${setup.memory}, \${setup.page-size}, \${setup.vcpus}, \${setup.workload}, \${setup.dirty-rate}, \${setup.read-rate}, or \${param.NAME} for a parameter the lab sets) (did you mean '\${incoming.listen}'?)`,
    ],
    [
      'a missed step without its text',
      withLine(37, "    timeout: 30s\n    missed: { when: 'source.status == \"postcopy-active\"' }"),
      `${FILE}:38:13: steps[1].missed.text: required field is missing (expected what went otherwise, and the way back`,
    ],
    [
      'a missed condition over a field that is not in the Snapshot',
      withLine(37, "    timeout: 30s\n    missed: { when: 'source.stauts == \"postcopy-active\"', text: Went through. }"),
      `${FILE}:38:21: steps[1].missed.when: unknown field 'stauts' in source.stauts (did you mean 'status'?)`,
    ],
    [
      "a step's own counter read in the lab's final expect",
      withLine(40, "  - 'this-step.destination.pages.recoveries >= 1'"),
      `${FILE}:40:5: expect[1]: this-step.destination.pages.recoveries: 'this-step' is a step's own: it may be read in a step's until, its wait-until and its missed.when`,
    ],
    [
      'a misspelt counter after this-step',
      withLine(36, "    until: 'this-step.destination.pages.recoverys >= 1'"),
      `${FILE}:36:12: steps[1].until: unknown field 'recoverys' in destination.pages.recoverys (did you mean 'recoveries'?) (after this-step)`,
    ],
    ['a bad size', withLine(6, '  memory: 256Q'), `${FILE}:6:11: setup.memory: expected a size like 4096, 64K, 256M or 1G (binary units), got '256Q'`],
    ['a duration without unit', withLine(28, '      - wait: 2'), `${FILE}:28:15: steps[1].do[1].wait: expected a duration like 500ms, 2s or 1m, got 2 (a bare number is ambiguous: write 2ms or 2s)`],
    ['a misspelt action', withLine(28, '      - wiat: 2s'), `${FILE}:28:9: steps[1].do[1].wiat: unknown field 'wiat' (did you mean 'wait'?)`],
    [
      'an unknown action key',
      withLine(28, '      - kill: destination'),
      `${FILE}:28:9: steps[1].do[1].kill: unknown action 'kill' (an action is one of qmp, link, vm, virsh, wait, wait-until)`,
    ],
    [
      'two actions in one item',
      withLine(28, '      - { wait: 2s, link: restore }'),
      `${FILE}:28:9: steps[1].do[1]: an action has exactly one of qmp, link, vm, virsh, wait, wait-until; this one has link and wait (make each its own list item)`,
    ],
    [
      'a condition path that is not in the Snapshot',
      withLine(29, "      - wait-until: 'destination.pages.recieved > 100'"),
      `${FILE}:29:21: steps[1].do[2].wait-until: unknown field 'recieved' in destination.pages.recieved (did you mean 'received'?)`,
    ],
    [
      'a condition root that is not in the Snapshot',
      withLine(40, "  - 'dest.status == \"completed\"'"),
      `${FILE}:40:5: expect[1]: unknown name 'dest' in dest.status (expected one of t, source, destination, link; did you mean 'destination'?)`,
    ],
    [
      'an unquoted condition starting with !',
      withLine(22, '    until: !destination.alive'),
      `${FILE}:22:12: steps[0].until: YAML reads '!destination.alive' as a tag (expected text: quote a value that starts with !, like '!destination.alive')`,
    ],
    ['an empty until', withLine(22, '    until:'), `${FILE}:22:11: steps[0].until: expected a condition like destination.status == "completed" (quote it if it starts with ! or [), got nothing (an empty value)`],
    ['no hints', withLine(25, '    hints: []'), `${FILE}:25:12: steps[1].hints: expected a list of hints, with at least one item`],
    ['an unknown fault kind', withLine(27, '      - link: { kind: cutt }'), `${FILE}:27:23: steps[1].do[0].link.kind: expected a fault kind: one of up, cut, blackhole, down, latency, loss, bandwidth, flap, got 'cutt' (did you mean 'cut'?)`],
    ['an unknown fault field', withLine(27, '      - link: { kind: cut, dir: both }'), `${FILE}:27:28: steps[1].do[0].link.dir: unknown field 'dir' (did you mean 'direction'?)`],
    ['a fault the fault model refuses, at its field', withLine(27, '      - link: { kind: loss, percent: 150 }'), `${FILE}:27:38: steps[1].do[0].link.percent: loss percent must be from 0 to 100 percent, got 150`],
    ['a flap count that is not whole', withLine(27, '      - link: { kind: flap, upMs: 1s, downMs: 1s, count: 1.5 }'), `${FILE}:27:58: steps[1].do[0].link.count: flap count must be a whole number, got 1.5`],
    ['a bad link string', withLine(31, '      - link: restor'), `${FILE}:31:15: steps[1].do[3].link: expected a link fault like { kind: cut, direction: both } (kind: up, cut, blackhole, down, latency, loss, bandwidth, flap), or "restore", got 'restor' (did you mean 'restore'?)`],
    ['a bad side', withLine(32, '      - qmp: sorce'), `${FILE}:32:14: steps[1].do[4].qmp: expected the side to send to: source, destination, got 'sorce' (did you mean 'source'?)`],
    ['a bad workload', withLine(8, '  workload: randon'), `${FILE}:8:13: setup.workload: expected one of sequential, random, hotset, got 'randon' (did you mean 'random'?)`],
    ['vcpus out of range', withLine(7, '  vcpus: 65'), `${FILE}:7:10: setup.vcpus: expected a whole number of vCPUs from 1 to 64, got 65`],
    ['a page size that is not a power of two', withLine(7, '  page-size: 3000'), `${FILE}:7:14: setup.page-size: expected a power of two from 512 to 65536, got 3000`],
    ['memory not a whole number of pages', withLine(6, '  memory: 6000'), `${FILE}:6:11: setup.memory: expected a whole number of 4096-byte pages (at least one), got 6000 bytes`],
    ['hotset without the hotset workload', withLine(8, '  hotset: { fraction: 0.2, share: 0.8 }'), `${FILE}:8:11: setup.hotset: hotset is only used with workload: hotset (this lab's workload is random)`],
    ['a capability that is not a boolean', withLine(9, '  capabilities: { postcopy-ram: yes }'), `${FILE}:9:33: setup.capabilities.postcopy-ram: expected true or false, got 'yes'`],
    ['a bad size parameter', withLine(10, '  parameters: { max-postcopy-bandwidth: fast }'), `${FILE}:10:41: setup.parameters.max-postcopy-bandwidth: expected a size like 4096, 64K, 256M or 1G (binary units), got 'fast'`],
    ['a duplicate backend', withLine(4, 'backends: [sim, sim]'), `${FILE}:4:11: backends: backend 'sim' is listed twice`],
    ['a missing setup', withLine(6, null).replace('setup:\n', '').replace(/^ {2}(vcpus|workload|capabilities|parameters|link|seed).*\n/gm, ''), `${FILE}:1:1: setup: required field is missing (expected a setup mapping with at least memory)`],
  ])('%s', (_what, yaml, message) => {
    const e = labError(yaml);
    expect(e.message.slice(0, message.length)).toBe(message);
    // The first problem's position is on the error itself, for the CLI.
    const [, line, column] = /^[^:]+:(\d+):(\d+):/.exec(message)!;
    expect([e.file, e.line, e.column]).toEqual([FILE, Number(line), Number(column)]);
  });

  it('reports every problem, in file order, with the first on the error fields', () => {
    const yaml = withLine(28, '      - wait: 2').replace('  memory: 256M', '  memory: 256Q').replace('title: Break it', 'titel: Break it');
    const e = labError(yaml);
    expect(e.issues.map((i) => `${i.line}:${i.field}`)).toEqual(['6:setup.memory', '23:steps[1].titel', '23:steps[1].title', '28:steps[1].do[1].wait']);
    expect(e.field).toBe('setup.memory');
    expect(e.message.split('\n')).toHaveLength(4);
  });

  it('names an empty file, and a file that is not a mapping', () => {
    expect(labError('').message).toBe(`${FILE}:1:1: the file is empty (expected a lab: a mapping with id, title, summary, setup, steps, expect and summary-text)`);
    expect(labError('- a\n- b\n').message).toBe(`${FILE}:1:1: expected a lab: a mapping with id, title, summary, setup, steps, expect and summary-text, got a list`);
  });

  it('refuses alias bombs', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]', 'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]'].join('\n');
    expect(labError(bomb).message).toContain('cannot read the YAML');
  });

  it('keeps a "__proto__" parameter an ordinary key', () => {
    const lab = loadLabText(withLine(10, '  parameters: { __proto__: 5, downtime-limit: 300 }'), FILE);
    expect(Object.getPrototypeOf(lab.setup.parameters)).toBe(Object.prototype);
    expect(Object.entries(lab.setup.parameters)).toEqual([
      ['__proto__', 5],
      ['downtime-limit', 300],
    ]);
    expect(labError(withLine(10, '  parameters: { __proto__: { polluted: 1 } }')).message).toContain('setup.parameters.__proto__: expected a number, a string or true/false, got a mapping');
  });

  it('skips the id check when the name is not a .yaml file', () => {
    expect(loadLabText(GOOD, '<stdin>').id).toBe('link-cut');
  });
});

describe('files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postcopy-lab-labs-'));
    await writeFile(join(dir, 'link-cut.yaml'), GOOD);
    await writeFile(join(dir, 'broken.yaml'), withLine(1, 'id: broken').replace('  memory: 256M', '  memory: lots'));
    await writeFile(join(dir, 'notes.txt'), 'not a lab');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loadLab reads a file and names it in errors', async () => {
    expect((await loadLab(join(dir, 'link-cut.yaml'))).title).toBe('Cut the link during postcopy, then recover');
    await expect(loadLab(join(dir, 'broken.yaml'))).rejects.toThrow(`${join(dir, 'broken.yaml')}:6:11: setup.memory:`);
    await expect(loadLab(join(dir, 'nope.yaml'))).rejects.toThrow(`${join(dir, 'nope.yaml')}: no such file`);
  });

  it('listLabs throws for a broken lab, or reports and skips it with onError', async () => {
    await expect(listLabs(dir)).rejects.toBeInstanceOf(LabError);
    const errors: LabError[] = [];
    const labs = await listLabs(dir, { onError: (e) => errors.push(e) });
    expect(labs).toEqual([
      { id: 'link-cut', title: 'Cut the link during postcopy, then recover', summary: 'One line shown in the lab picker.', path: join(dir, 'link-cut.yaml'), backends: ['sim', 'qemu'] },
    ]);
    expect(errors.map((e) => e.line)).toEqual([6]);
  });

  it('findLab takes an id or a path, and suggests an id', async () => {
    expect((await findLab('link-cut', dir)).id).toBe('link-cut');
    expect((await findLab(join(dir, 'link-cut.yaml'), '/nonexistent')).id).toBe('link-cut');
    await expect(findLab('link-cat', dir)).rejects.toThrow("no lab 'link-cat' (did you mean 'link-cut'?); labs here: broken, link-cut");
  });
});
