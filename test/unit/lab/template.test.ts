import { describe, expect, it } from 'vitest';
import { checkTemplateVariables, expandTemplates, findTemplateVariables, setupTemplateValues, TemplateError } from '../../../src/lab/template.js';

const vars = {
  'incoming.listen': 'tcp:127.0.0.1:40123',
  'incoming.connect': 'tcp:127.0.0.1:40124',
  'recover.listen': 'tcp:127.0.0.1:40125',
  'recover.connect': 'tcp:127.0.0.1:40126',
};

describe('expandTemplates', () => {
  it('replaces variables deep inside arguments and leaves other values alone', () => {
    const args = {
      uri: '${incoming.listen}',
      resume: true,
      nested: { list: ['x ${recover.connect} y', 3, null], 'max-bandwidth': 10 },
    };
    expect(expandTemplates(args, vars)).toEqual({
      uri: 'tcp:127.0.0.1:40123',
      resume: true,
      nested: { list: ['x tcp:127.0.0.1:40126 y', 3, null], 'max-bandwidth': 10 },
    });
    // The input is not modified.
    expect(args.uri).toBe('${incoming.listen}');
  });

  it('allows several variables and spaces inside the braces', () => {
    expect(expandTemplates('${ incoming.listen },${recover.listen}', vars)).toBe('tcp:127.0.0.1:40123,tcp:127.0.0.1:40125');
  });

  it('writes a literal ${ for $${', () => {
    expect(expandTemplates('cost $${x} and $5', vars)).toBe('cost ${x} and $5');
  });

  it('throws TemplateError for an unknown variable or an unterminated ${', () => {
    expect(() => expandTemplates({ uri: '${incoming.lisen}' }, vars)).toThrow(TemplateError);
    expect(() => expandTemplates({ uri: '${incoming.lisen}' }, vars)).toThrow("unknown template variable '${incoming.lisen}'");
    expect(() => expandTemplates('${incoming.listen', vars)).toThrow('unterminated');
  });

  it('keeps a "__proto__" key an ordinary key', () => {
    const input = JSON.parse('{"__proto__": {"polluted": "${incoming.listen}"}}') as Record<string, unknown>;
    const out = expandTemplates(input, vars) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.hasOwn(out, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('checking variable names at load time', () => {
  it('finds every variable', () => {
    expect(findTemplateVariables({ a: '${incoming.listen}', b: ['${x}', { c: '${recover.connect}' }] })).toEqual([
      'incoming.listen',
      'x',
      'recover.connect',
    ]);
  });

  it('accepts the four known names and refuses others', () => {
    expect(() => checkTemplateVariables({ a: '${incoming.listen} ${incoming.connect} ${recover.listen} ${recover.connect}' })).not.toThrow();
    expect(() => checkTemplateVariables({ a: '${incoming.port}' })).toThrow('expected one of ${incoming.listen}');
  });
});

describe('templates from the values in effect', () => {
  const LAB = (text: string) => `
id: t
title: T
summary: Templates.
setup:
  memory: 128M
  vcpus: 2
  parameters: { max-postcopy-bandwidth: 16M, x-walk-window: 32 }
  interactive-parameters: { x-walk-window: 4 }
steps:
  - title: One
    text: "${text}"
    hints: [one]
    until: 'destination.status == "completed"'
expect: ['destination.status == "completed"']
summary-text: Done.
`;

  it('gives setup and parameter values as this run uses them', () => {
    const setup = { memoryBytes: 128 << 20, pageSize: 4096, vcpus: 2, workload: 'hotset', dirtyRate: 1000, readRate: 10000 };
    const interactive = setupTemplateValues(setup, { 'max-postcopy-bandwidth': 16 << 20, 'x-walk-window': 4 });
    expect(expandTemplates('${setup.memory}, ${setup.vcpus} vCPUs, ${param.x-walk-window} in flight at ${param.max-postcopy-bandwidth}', interactive)).toBe(
      '128 MiB, 2 vCPUs, 4 in flight at 16 MiB/s',
    );
  });

  it('refuses at load time a parameter the lab does not set, naming the known names', async () => {
    const { loadLabText } = await import('../../../src/lab/load.js');
    expect(() => loadLabText(LAB('window ${param.x-walk-window}'), 't.yaml')).not.toThrow();
    expect(() => loadLabText(LAB('cap ${param.max-bandwidth}'), 't.yaml')).toThrow(/t\.yaml:12:11: steps\[0\]\.text: unknown template variable '\$\{param\.max-bandwidth\}'.*known: .*\$\{param\.x-walk-window\}/);
    expect(() => loadLabText(LAB('size ${setup.memroy}'), 't.yaml')).toThrow(/did you mean '\$\{setup\.memory\}'/);
  });

  it('gives ${guest.ram-bytes} as a number when it is the whole string (pmemsave size is an int), as text inside other text', () => {
    const vars = { 'guest.ram-bytes': '67108864', 'source.ram-file': '/run/x/source.ram' };
    expect(expandTemplates({ val: 0, size: '${guest.ram-bytes}', filename: '${source.ram-file}' }, vars)).toEqual({ val: 0, size: 67108864, filename: '/run/x/source.ram' });
    expect(expandTemplates('size ${guest.ram-bytes}', vars)).toBe('size 67108864');
    expect(expandTemplates('${source.ram-file}', vars)).toBe('/run/x/source.ram');
  });
});
