import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ConditionSyntaxError,
  describeCondition,
  evaluateCondition,
  formatSeen,
  MAX_CONDITION_DEPTH,
  MAX_CONDITION_LENGTH,
  parseCondition,
  type Expr,
  type Literal,
} from '../../../src/lab/condition.js';

const state = {
  t: 1200,
  source: { status: 'postcopy-active', alive: true, ram: { 'postcopy-requests': 12, total: 4096, remaining: 1024 } },
  destination: {
    status: 'postcopy-paused',
    alive: true,
    pages: { received: 150, 'in-flight': 3, total: 256, walker: { done: false } },
  },
  link: { up: false, 'source-to-destination': { state: 'cut' }, 'destination-to-source': { state: 'up' } },
  zero: 0,
  empty: '',
};

const run = (src: string) => evaluateCondition(parseCondition(src), state);

describe('evaluateCondition', () => {
  it.each([
    ['destination.status == "postcopy-paused"', true],
    ["destination.status == 'postcopy-paused'", true],
    ['destination.status != "completed"', true],
    ['destination.pages.received > 100', true],
    ['destination.pages.received >= 150', true],
    ['destination.pages.received < 150', false],
    ['destination.pages.received <= 150', true],
    ['source.ram.postcopy-requests == 12', true],
    ['destination.pages.in-flight == 3', true],
    ['link.source-to-destination.state == "cut"', true],
    ['link["source-to-destination"]["state"] == "cut"', true],
    ['source.ram["postcopy-requests"] == 12', true],
    ['source.status in ["postcopy-paused", "postcopy-active"]', true],
    ['source.status in ["completed"]', false],
    ['source.status in []', false],
    ['1_000 == 1000', true],
    ['1.5e3 == 1500', true],
    ['-3 < 0', true],
    ['source.alive && !link.up', true],
    ['!source.alive || link.up', false],
    ['source.alive', true],
    ['zero', false],
    ['empty', false],
    ['null == null', true],
    ['true != false', true],
    ['"a" < "b"', true],
  ])('%s -> %s', (src, value) => {
    expect(run(src).value).toBe(value);
  });

  it('follows precedence: * before +, + before comparison, comparison before !, && before ||', () => {
    expect(run('2 + 3 * 4 == 14').value).toBe(true);
    expect(run('(2 + 3) * 4 == 20').value).toBe(true);
    expect(run('10 - 4 - 3 == 3').value).toBe(true); // left-associative
    expect(run('12 / 3 / 2 == 2').value).toBe(true);
    expect(run('true || false && false').value).toBe(true); // && binds tighter
    expect(run('(true || false) && false').value).toBe(false);
    // `!` is looser than a comparison, as Python's `not`.
    expect(run('!destination.status == "completed"').value).toBe(true);
    expect(run('(!source.alive) == false').value).toBe(true);
    expect(run('destination.pages.received - destination.pages.in-flight == 147').value).toBe(true);
    expect(run('destination.pages.received / destination.pages.total * 100 > 50').value).toBe(true);
    expect(run('- source.ram.remaining == -1024').value).toBe(true);
  });

  it('treats a hyphen without spaces as part of a name, and with spaces as minus', () => {
    const s = { a: 5, b: 2, 'a-b': 100 };
    expect(evaluateCondition(parseCondition('a-b == 100'), s).value).toBe(true);
    expect(evaluateCondition(parseCondition('a - b == 3'), s).value).toBe(true);
    expect(evaluateCondition(parseCondition('a -b == 3'), s).value).toBe(true);
    expect(evaluateCondition(parseCondition('a- b == 3'), s).value).toBe(true);
  });

  it('reads a missing path as undefined: comparisons false, != true, reported in seen', () => {
    expect(run('destination.pages.nope == 1')).toEqual({ value: false, seen: { 'destination.pages.nope': undefined } });
    expect(run('destination.pages.nope != 1').value).toBe(true);
    expect(run('destination.pages.nope < 1').value).toBe(false);
    expect(run('destination.pages.nope >= 1').value).toBe(false);
    expect(run('destination.pages.nope == destination.pages.nope2').value).toBe(false);
    expect(run('destination.pages.nope in [1]').value).toBe(false);
    expect(run('destination.pages.nope + 1 > 0').value).toBe(false);
    expect(run('!destination.pages.nope').value).toBe(true);
    expect(run('source.status.deeper == 1').seen).toEqual({ 'source.status.deeper': undefined });
    expect(evaluateCondition(parseCondition('a.b == 1'), null).value).toBe(false);
    expect(evaluateCondition(parseCondition('a.b == 1'), 42).value).toBe(false);
  });

  it('records every path read, even past a decided && or ||', () => {
    const r = run('destination.status == "completed" && link.source-to-destination.state == "up"');
    expect(r.value).toBe(false);
    expect(r.seen).toEqual({ 'destination.status': 'postcopy-paused', 'link.source-to-destination.state': 'cut' });
    expect(formatSeen(r.seen)).toBe('destination.status = postcopy-paused, link.source-to-destination.state = cut');
    expect(formatSeen(run('x.y == 1').seen)).toBe('x.y = (absent)');
  });

  it('does not read inherited properties such as constructor or __proto__', () => {
    expect(run('source.constructor == null').seen).toEqual({ 'source.constructor': undefined });
    expect(run('source["__proto__"] != null').value).toBe(true);
    expect(run('destination.pages.received.toString == 1').seen).toEqual({ 'destination.pages.received.toString': undefined });
  });

  it('compares only like with like and keeps arithmetic finite', () => {
    expect(run('"5" == 5').value).toBe(false);
    expect(run('"5" < 6').value).toBe(false);
    expect(run('1 / 0 == 1 / 0').value).toBe(false); // division by zero is undefined
    expect(run('"a" + 1 == "a1"').value).toBe(false);
  });
});

describe('parseCondition errors', () => {
  const err = (src: string): ConditionSyntaxError => {
    try {
      parseCondition(src);
    } catch (e) {
      expect(e).toBeInstanceOf(ConditionSyntaxError);
      return e as ConditionSyntaxError;
    }
    throw new Error(`parsed: ${src}`);
  };

  it.each([
    ['destination.status = "setup"', 20, "unexpected token '=' at column 20 (expected a comparison like a == b)"],
    ['a == ', 6, 'unexpected end of condition at column 6'],
    ['a < b < c', 7, 'comparisons cannot be chained'],
    ['((a == 1)', 10, "expected ')' to close the '(' at column 1"],
    ['a == 1)', 7, "unexpected token ')'"],
    ['a == "x', 6, 'unterminated string at column 6'],
    ['a.', 3, "expected a field name after '.'"],
    ['a.1', 3, "expected a field name after '.'"],
    ['1abc', 2, 'in a number'],
    ['a & b', 3, "expected '&&'"],
    ['a | b', 3, "expected '||'"],
    ['a == !b', 6, 'a == (!b)'],
    ['a in "x"', 6, 'a list like ["a", "b"]'],
    ['a in [b]', 7, 'a number, a string, true, false or null in the list'],
    ['a in [1 2]', 9, "',' or ']'"],
    ['a[b]', 3, 'a field name in quotes'],
    ['a b', 3, 'expected an operator'],
    ['', 1, 'empty condition'],
    ['   ', 1, 'empty condition'],
    ['a == 1 #', 8, 'unexpected character "#"'],
    ['"\\q"', 2, 'bad escape'],
    ['in == 1', 1, 'unexpected token \'in\''],
    ['1e999 > 0', 1, 'out of range'],
  ])('%j -> column %i', (src, column, text) => {
    const e = err(src);
    expect(e.column).toBe(column);
    expect(e.message).toContain(text);
  });

  it('refuses pathological input: too long, too deeply nested', () => {
    expect(err('a'.repeat(MAX_CONDITION_LENGTH + 1)).message).toContain('characters');
    expect(err('('.repeat(MAX_CONDITION_DEPTH + 1) + 'a' + ')'.repeat(MAX_CONDITION_DEPTH + 1)).message).toContain('nests too deeply');
    expect(err('!'.repeat(MAX_CONDITION_DEPTH + 1) + 'a').message).toContain('nests too deeply');
    expect(err('-'.repeat(MAX_CONDITION_DEPTH + 1) + 'a').message).toContain('nests too deeply');
    // Just inside the limit parses.
    expect(() => parseCondition('('.repeat(MAX_CONDITION_DEPTH) + 'a' + ')'.repeat(MAX_CONDITION_DEPTH))).not.toThrow();
    // A long flat chain is fine (it is bounded by the length limit, not the depth limit).
    expect(run(Array(300).fill('1').join(' + ') + ' == 300').value).toBe(true);
  });
});

describe('describeCondition', () => {
  it.each([
    ['a.b-c==3', 'a.b-c == 3'],
    ['( a )', 'a'],
    ['!a == b', '!a == b'],
    ['(!a) == b', '(!a) == b'],
    ['a - -3', 'a - -3'],
    ['a - (b - c)', 'a - (b - c)'],
    ['(a - b) - c', 'a - b - c'],
    ['a || (b || c)', 'a || (b || c)'],
    ['(a || b) && c', '(a || b) && c'],
    ['(a == b) == c', '(a == b) == c'],
    ['x in ["a",-1,null,true]', 'x in ["a", -1, null, true]'],
    ["a['x y'][0] > 1_000", 'a["x y"]["0"] > 1000'],
    ['link["source-to-destination"].state', 'link.source-to-destination.state'],
  ])('%s -> %s', (src, printed) => {
    expect(describeCondition(parseCondition(src))).toBe(printed);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const NAMES = ['source', 'destination', 'link', 'a', 'in-flight', 'postcopy-requests', 'x_1', 'true', 'in', 'null'];

const literal: fc.Arbitrary<Literal> = fc.oneof(
  fc.integer({ min: -1e6, max: 1e6 }).map((n) => (n === 0 ? 0 : n)),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (Object.is(n, -0) ? 0 : n)),
  fc.string({ maxLength: 6 }),
  fc.constantFrom(true, false, null),
);

const { expr } = fc.letrec<{ expr: Expr }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    literal.map((value): Expr => ({ kind: 'literal', value })),
    fc
      .tuple(fc.constantFrom(...NAMES.filter((n) => !['true', 'in', 'null'].includes(n))), fc.array(fc.oneof(fc.constantFrom(...NAMES), fc.string({ maxLength: 4 })), { maxLength: 3 }))
      .map(([root, rest]): Expr => ({ kind: 'path', segments: [root, ...rest] })),
    tie('expr').map((operand): Expr => ({ kind: 'not', operand })),
    // `-<number>` is folded into a literal by the parser, so the generator never builds it.
    tie('expr')
      .filter((e) => !(e.kind === 'literal' && typeof e.value === 'number'))
      .map((operand): Expr => ({ kind: 'neg', operand })),
    fc
      .tuple(fc.constantFrom('||', '&&', '==', '!=', '<', '<=', '>', '>=', '+', '-', '*', '/' as const), tie('expr'), tie('expr'))
      .map(([op, left, right]): Expr => ({ kind: 'binary', op, left, right })),
    fc.tuple(tie('expr'), fc.array(literal, { maxLength: 3 })).map(([left, list]): Expr => ({ kind: 'in', left, list })),
  ),
}));

describe('properties', () => {
  it('describe then parse gives back the same tree, and printing is stable', () => {
    fc.assert(
      fc.property(expr, (ast) => {
        const printed = describeCondition(ast);
        if (printed.length > MAX_CONDITION_LENGTH) return;
        let reparsed: Expr;
        try {
          reparsed = parseCondition(printed).ast;
        } catch (e) {
          // Only the depth limit may refuse a generated tree.
          expect((e as Error).message).toContain('nests too deeply');
          return;
        }
        expect(reparsed).toEqual(ast);
        expect(describeCondition(reparsed)).toBe(printed);
      }),
      { numRuns: 2000 },
    );
  });

  const fragments = fc.constantFrom(
    'source', '.', 'status', '-', 'in-flight', ' ', '==', '=', '!', '!=', '<', '<=', '&&', '||', '&', '|', '(', ')', '[', ']', ',',
    '"x"', "'y'", '"', '1', '1_0', '2.5', 'e', 'in', 'true', 'null', '+', '*', '/', '#', '\\', '\n', '_',
  );

  it('random input either parses to a tree that round-trips, or throws ConditionSyntaxError', () => {
    const inputs = fc.oneof(fc.string({ maxLength: 40 }), fc.array(fragments, { maxLength: 25 }).map((a) => a.join('')));
    fc.assert(
      fc.property(inputs, (src) => {
        let ast: Expr;
        try {
          ast = parseCondition(src).ast;
        } catch (e) {
          expect(e).toBeInstanceOf(ConditionSyntaxError);
          const column = (e as ConditionSyntaxError).column;
          expect(column).toBeGreaterThanOrEqual(1);
          expect(column).toBeLessThanOrEqual(src.length + 1);
          return;
        }
        const again = parseCondition(describeCondition(ast)).ast;
        expect(again).toEqual(ast);
        // Evaluation never throws, whatever the state.
        expect(typeof evaluateCondition({ source: src, ast }, state).value).toBe('boolean');
      }),
      { numRuns: 3000 },
    );
  });
});
