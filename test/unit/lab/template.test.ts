import { describe, expect, it } from 'vitest';
import { checkTemplateVariables, expandTemplates, findTemplateVariables, TemplateError } from '../../../src/lab/template.js';

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
