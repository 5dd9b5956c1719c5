/**
 * The small expression language of lab conditions (`until`, `wait-until`, `expect`), parsed
 * and evaluated by hand over a plain state object (the Snapshot): never `eval`.
 *
 *   condition  := or
 *   or         := and ('||' and)*
 *   and        := not ('&&' not)*
 *   not        := '!' not | comparison
 *   comparison := sum (('==' | '!=' | '<' | '<=' | '>' | '>=') sum | 'in' list)?
 *   sum        := product (('+' | '-') product)*
 *   product    := unary (('*' | '/') unary)*
 *   unary      := '-' unary | primary
 *   primary    := number | string | true | false | null | path | '(' or ')'
 *   path       := name ('.' name | '[' (string | integer) ']')*
 *   list       := '[' (literal (',' literal)*)? ']'
 *
 * Names may contain '-' (QEMU spells its fields `postcopy-requests`), so `a-b` is one name
 * and subtraction needs spaces: `a - b`. `!` binds looser than a comparison, as Python's
 * `not`: `!source.alive == true` means `!(source.alive == true)`. Comparisons do not chain.
 *
 * A path that is not in the state reads as `undefined`: every comparison with it is false
 * (`!=` is true), arithmetic with it is undefined, and it counts as false for `&&`, `||`, `!`.
 */

/** A literal as it may appear in a condition. */
export type Literal = number | string | boolean | null;

export type BinaryOp = '||' | '&&' | '==' | '!=' | '<' | '<=' | '>' | '>=' | '+' | '-' | '*' | '/';

/** A parsed condition's syntax tree. Negative number literals are folded into `literal`. */
export type Expr =
  | { kind: 'literal'; value: Literal }
  | { kind: 'path'; segments: string[] }
  | { kind: 'not'; operand: Expr }
  | { kind: 'neg'; operand: Expr }
  | { kind: 'binary'; op: BinaryOp; left: Expr; right: Expr }
  | { kind: 'in'; left: Expr; list: Literal[] };

/** A parsed condition: the author's text, kept for messages, and its tree. */
export interface Condition {
  source: string;
  ast: Expr;
}

/** The result of evaluating a condition, with every path it read and the value found there. */
export interface ConditionResult {
  value: boolean;
  /** Path (as describeCondition prints it) -> value read; `undefined` when the path is absent. */
  seen: Record<string, unknown>;
}

/** Longest condition source accepted, in characters. */
export const MAX_CONDITION_LENGTH = 2000;
/** Deepest nesting of parentheses and prefix operators accepted. */
export const MAX_CONDITION_DEPTH = 64;

/** A condition that cannot be parsed. `column` is 1-based within the condition's text. */
export class ConditionSyntaxError extends Error {
  override readonly name = 'ConditionSyntaxError';
  constructor(
    /** What went wrong, without position: "unexpected token '='". */
    readonly problem: string,
    readonly column: number,
    /** What the parser expected there, in words, when it knows. */
    readonly expected?: string,
  ) {
    super(`${problem} at column ${column}${expected ? ` (expected ${expected})` : ''}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Tokens

type TokenType = 'number' | 'string' | 'name' | 'op' | 'end';

interface Token {
  type: TokenType;
  /** The operator or name text; the decoded string; the number's text. */
  text: string;
  value?: number | string;
  /** 1-based column of the token's first character. */
  column: number;
}

const OPERATORS = ['==', '!=', '<=', '>=', '&&', '||', '<', '>', '!', '+', '-', '*', '/', '(', ')', '[', ']', ',', '.'];
const NAME_RE = /[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*/y;
const NUMBER_RE = /\d+(?:_\d+)*(?:\.\d+(?:_\d+)*)?(?:[eE][+-]?\d+)?/y;

const EXPECT_VALUE = `a value: a number, a string, true, false, null, a path like source.status, or '('`;
const EXPECT_OPERATOR = `an operator like ==, <, &&, || or the end of the condition`;

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    const column = i + 1;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if (c >= '0' && c <= '9') {
      NUMBER_RE.lastIndex = i;
      const m = NUMBER_RE.exec(src)!;
      const text = m[0];
      const end = i + text.length;
      if (end < src.length && /[A-Za-z0-9_.]/.test(src[end]!)) {
        throw new ConditionSyntaxError(`unexpected character '${src[end]}' in a number`, end + 1, 'digits, or an operator after the number');
      }
      const value = Number(text.replaceAll('_', ''));
      if (!Number.isFinite(value)) throw new ConditionSyntaxError(`number '${text}' is out of range`, column);
      tokens.push({ type: 'number', text, value, column });
      i = end;
      continue;
    }
    if (c === '"' || c === "'") {
      const [value, end] = readString(src, i);
      tokens.push({ type: 'string', text: src.slice(i, end), value, column });
      i = end;
      continue;
    }
    NAME_RE.lastIndex = i;
    const name = NAME_RE.exec(src);
    if (name) {
      tokens.push({ type: 'name', text: name[0], column });
      i += name[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (op) {
      tokens.push({ type: 'op', text: op, column });
      i += op.length;
      continue;
    }
    if (c === '=') throw new ConditionSyntaxError(`unexpected token '='`, column, 'a comparison like a == b');
    if (c === '&') throw new ConditionSyntaxError(`unexpected token '&'`, column, `'&&'`);
    if (c === '|') throw new ConditionSyntaxError(`unexpected token '|'`, column, `'||'`);
    throw new ConditionSyntaxError(`unexpected character ${JSON.stringify(c)}`, column, EXPECT_VALUE);
  }
  tokens.push({ type: 'end', text: '', column: src.length + 1 });
  return tokens;
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '"': '"', "'": "'", '\\': '\\', '/': '/' };

/** Reads a quoted string starting at `start`; returns its value and the index after it. */
function readString(src: string, start: number): [string, number] {
  const quote = src[start]!;
  let out = '';
  let i = start + 1;
  while (i < src.length) {
    const c = src[i]!;
    if (c === quote) return [out, i + 1];
    if (c === '\\') {
      const e = src[i + 1];
      if (e === 'u') {
        const hex = src.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
          throw new ConditionSyntaxError(`bad escape '\\u${hex}'`, i + 1, 'four hex digits after \\u');
        }
        out += String.fromCharCode(parseInt(hex, 16));
        i += 6;
        continue;
      }
      if (e === undefined || !(e in ESCAPES)) {
        throw new ConditionSyntaxError(`bad escape '\\${e ?? ''}'`, i + 1, `one of \\" \\' \\\\ \\n \\t \\r \\uXXXX`);
      }
      out += ESCAPES[e];
      i += 2;
      continue;
    }
    out += c;
    i++;
  }
  throw new ConditionSyntaxError(`unterminated string`, start + 1, `a closing ${quote} before the end of the condition`);
}

// ---------------------------------------------------------------------------------------------
// Parser

const COMPARISONS = new Set(['==', '!=', '<', '<=', '>', '>=']);

function describeToken(t: Token): string {
  if (t.type === 'end') return 'end of condition';
  return `token '${t.text}'`;
}

class Parser {
  private pos = 0;
  private depth = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.pos]!;
  }
  private next(): Token {
    return this.tokens[this.pos++]!;
  }
  private isOp(text: string): boolean {
    const t = this.peek();
    return t.type === 'op' && t.text === text;
  }
  private isName(text: string): boolean {
    const t = this.peek();
    return t.type === 'name' && t.text === text;
  }
  private fail(expected: string, t: Token = this.peek()): never {
    throw new ConditionSyntaxError(`unexpected ${describeToken(t)}`, t.column, expected);
  }
  private enter(t: Token): void {
    if (++this.depth > MAX_CONDITION_DEPTH) {
      throw new ConditionSyntaxError(`condition nests too deeply`, t.column, `at most ${MAX_CONDITION_DEPTH} levels of parentheses and prefix operators`);
    }
  }
  private leave(): void {
    this.depth--;
  }

  parseCondition(): Expr {
    if (this.peek().type === 'end') {
      throw new ConditionSyntaxError('empty condition', 1, 'a condition like source.status == "completed"');
    }
    const e = this.parseOr();
    const t = this.peek();
    if (t.type !== 'end') {
      if (t.type === 'op' && t.text === ')') throw new ConditionSyntaxError(`unexpected token ')'`, t.column, `no ')' without a matching '('`);
      this.fail(EXPECT_OPERATOR);
    }
    return e;
  }

  private parseOr(): Expr {
    let left = this.parseAnd();
    while (this.isOp('||')) {
      this.next();
      left = { kind: 'binary', op: '||', left, right: this.parseAnd() };
    }
    return left;
  }

  private parseAnd(): Expr {
    let left = this.parseNot();
    while (this.isOp('&&')) {
      this.next();
      left = { kind: 'binary', op: '&&', left, right: this.parseNot() };
    }
    return left;
  }

  private parseNot(): Expr {
    if (this.isOp('!')) {
      const t = this.next();
      this.enter(t);
      const operand = this.parseNot();
      this.leave();
      return { kind: 'not', operand };
    }
    return this.parseComparison();
  }

  private parseComparison(): Expr {
    const left = this.parseSum();
    const t = this.peek();
    let e: Expr;
    if (t.type === 'op' && COMPARISONS.has(t.text)) {
      this.next();
      e = { kind: 'binary', op: t.text as BinaryOp, left, right: this.parseSum() };
    } else if (t.type === 'name' && t.text === 'in') {
      this.next();
      e = { kind: 'in', left, list: this.parseList() };
    } else {
      return left;
    }
    const after = this.peek();
    if ((after.type === 'op' && COMPARISONS.has(after.text)) || (after.type === 'name' && after.text === 'in')) {
      throw new ConditionSyntaxError(`comparisons cannot be chained: unexpected ${describeToken(after)}`, after.column, `'&&' between two comparisons, like a < b && b < c`);
    }
    return e;
  }

  private parseList(): Literal[] {
    if (!this.isOp('[')) this.fail(`a list like ["a", "b"] after 'in'`);
    this.next();
    const items: Literal[] = [];
    if (this.isOp(']')) {
      this.next();
      return items;
    }
    for (;;) {
      items.push(this.parseListLiteral());
      if (this.isOp(',')) {
        this.next();
        continue;
      }
      if (this.isOp(']')) {
        this.next();
        return items;
      }
      this.fail(`',' or ']' in the list`);
    }
  }

  private parseListLiteral(): Literal {
    const t = this.next();
    if (t.type === 'string' || t.type === 'number') return t.value!;
    if (t.type === 'op' && t.text === '-' && this.peek().type === 'number') return negate(this.next().value as number);
    if (t.type === 'name' && t.text === 'true') return true;
    if (t.type === 'name' && t.text === 'false') return false;
    if (t.type === 'name' && t.text === 'null') return null;
    return this.fail('a number, a string, true, false or null in the list', t);
  }

  private parseSum(): Expr {
    let left = this.parseProduct();
    while (this.isOp('+') || this.isOp('-')) {
      const op = this.next().text as BinaryOp;
      left = { kind: 'binary', op, left, right: this.parseProduct() };
    }
    return left;
  }

  private parseProduct(): Expr {
    let left = this.parseUnary();
    while (this.isOp('*') || this.isOp('/')) {
      const op = this.next().text as BinaryOp;
      left = { kind: 'binary', op, left, right: this.parseUnary() };
    }
    return left;
  }

  private parseUnary(): Expr {
    if (this.isOp('-')) {
      const t = this.next();
      this.enter(t);
      const operand = this.parseUnary();
      this.leave();
      // Fold `-3` into a literal so that printing and re-parsing give the same tree.
      if (operand.kind === 'literal' && typeof operand.value === 'number') return { kind: 'literal', value: negate(operand.value) };
      return { kind: 'neg', operand };
    }
    if (this.isOp('!')) {
      this.fail(`${EXPECT_VALUE}; put a negation in parentheses, like a == (!b)`);
    }
    return this.parsePrimary();
  }

  private parsePrimary(): Expr {
    const t = this.next();
    switch (t.type) {
      case 'number':
      case 'string':
        return { kind: 'literal', value: t.value! };
      case 'name':
        if (t.text === 'true') return { kind: 'literal', value: true };
        if (t.text === 'false') return { kind: 'literal', value: false };
        if (t.text === 'null') return { kind: 'literal', value: null };
        if (t.text === 'in') return this.fail(EXPECT_VALUE, t);
        return this.parsePath(t.text);
      case 'op':
        if (t.text === '(') {
          this.enter(t);
          const e = this.parseOr();
          this.leave();
          if (!this.isOp(')')) this.fail(`')' to close the '(' at column ${t.column}`);
          this.next();
          return e;
        }
        if (t.text === '=') return this.fail('a comparison like a == b', t);
        return this.fail(EXPECT_VALUE, t);
      default:
        return this.fail(EXPECT_VALUE, t);
    }
  }

  private parsePath(root: string): Expr {
    const segments = [root];
    for (;;) {
      if (this.isOp('.')) {
        this.next();
        const t = this.next();
        if (t.type !== 'name') this.fail(`a field name after '.'`, t);
        segments.push(t.text);
      } else if (this.isOp('[')) {
        this.next();
        const t = this.next();
        if (t.type === 'string') segments.push(t.value as string);
        else if (t.type === 'number' && Number.isSafeInteger(t.value) && /^\d+$/.test(t.text)) segments.push(String(t.value));
        else this.fail(`a field name in quotes like ["x-y"], or an index like [0]`, t);
        if (!this.isOp(']')) this.fail(`']'`);
        this.next();
      } else {
        return { kind: 'path', segments };
      }
    }
  }
}

function negate(n: number): number {
  // -0 would print as "0" and re-parse as 0; keep one zero.
  return n === 0 ? 0 : -n;
}

/** Parses a condition. Throws ConditionSyntaxError (with a 1-based `column`) when it cannot. */
export function parseCondition(src: string): Condition {
  if (typeof src !== 'string') throw new ConditionSyntaxError('a condition must be a string', 1);
  if (src.length > MAX_CONDITION_LENGTH) {
    throw new ConditionSyntaxError(`condition is ${src.length} characters long`, MAX_CONDITION_LENGTH + 1, `at most ${MAX_CONDITION_LENGTH} characters`);
  }
  const ast = new Parser(tokenize(src)).parseCondition();
  return { source: src, ast };
}

// ---------------------------------------------------------------------------------------------
// Printing

const PREC = { or: 1, and: 2, not: 3, cmp: 4, sum: 5, product: 6, neg: 7, primary: 8 } as const;

function precedence(e: Expr): number {
  switch (e.kind) {
    case 'literal':
      return typeof e.value === 'number' && e.value < 0 ? PREC.neg : PREC.primary;
    case 'path':
      return PREC.primary;
    case 'not':
      return PREC.not;
    case 'neg':
      return PREC.neg;
    case 'in':
      return PREC.cmp;
    case 'binary':
      return binaryPrecedence(e.op);
  }
}

function binaryPrecedence(op: BinaryOp): number {
  switch (op) {
    case '||':
      return PREC.or;
    case '&&':
      return PREC.and;
    case '+':
    case '-':
      return PREC.sum;
    case '*':
    case '/':
      return PREC.product;
    default:
      return PREC.cmp;
  }
}

const SIMPLE_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*$/;

/** A path the way conditions write it: `a.b-c["x y"]`. Also the key used in `seen`. */
export function formatPath(segments: readonly string[]): string {
  let out = segments[0] ?? '';
  for (const s of segments.slice(1)) out += SIMPLE_NAME_RE.test(s) ? `.${s}` : `[${JSON.stringify(s)}]`;
  return out;
}

function formatLiteral(v: Literal): string {
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

function print(e: Expr): string {
  const wrap = (child: Expr, needParens: boolean) => (needParens ? `(${print(child)})` : print(child));
  switch (e.kind) {
    case 'literal':
      return formatLiteral(e.value);
    case 'path':
      return formatPath(e.segments);
    case 'not':
      return `!${wrap(e.operand, precedence(e.operand) < PREC.not)}`;
    case 'neg':
      return `-${wrap(e.operand, precedence(e.operand) < PREC.neg)}`;
    case 'in':
      return `${wrap(e.left, precedence(e.left) <= PREC.cmp)} in [${e.list.map(formatLiteral).join(', ')}]`;
    case 'binary': {
      const p = binaryPrecedence(e.op);
      // Left-associative operators keep a left child of equal precedence bare; comparisons
      // do not chain, so theirs is always parenthesised.
      const leftParens = p === PREC.cmp ? precedence(e.left) <= p : precedence(e.left) < p;
      return `${wrap(e.left, leftParens)} ${e.op} ${wrap(e.right, precedence(e.right) <= p)}`;
    }
  }
}

/** Prints a condition back in canonical form: single spaces, minimal parentheses. */
export function describeCondition(c: Condition | Expr): string {
  return print('ast' in c ? c.ast : c);
}

/** Every path the condition reads, in order of first appearance, without duplicates. */
export function conditionPaths(c: Condition | Expr): string[][] {
  const found = new Map<string, string[]>();
  const visit = (e: Expr): void => {
    switch (e.kind) {
      case 'path':
        if (!found.has(formatPath(e.segments))) found.set(formatPath(e.segments), e.segments);
        return;
      case 'not':
      case 'neg':
        return visit(e.operand);
      case 'in':
        return visit(e.left);
      case 'binary':
        visit(e.left);
        visit(e.right);
        return;
      case 'literal':
        return;
    }
  };
  visit('ast' in c ? c.ast : c);
  return [...found.values()];
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/** Reads `segments` from `state`, own properties only (no prototype names like `constructor`). */
export function readPath(state: unknown, segments: readonly string[]): unknown {
  let v: unknown = state;
  for (const s of segments) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, s)) return undefined;
    v = (v as Record<string, unknown>)[s];
  }
  return v;
}

function truthy(v: unknown): boolean {
  return Boolean(v);
}

function evaluate(e: Expr, state: unknown, seen: Record<string, unknown>): unknown {
  switch (e.kind) {
    case 'literal':
      return e.value;
    case 'path': {
      const v = readPath(state, e.segments);
      seen[formatPath(e.segments)] = v;
      return v;
    }
    case 'not':
      return !truthy(evaluate(e.operand, state, seen));
    case 'neg': {
      const v = evaluate(e.operand, state, seen);
      return typeof v === 'number' ? negate(v) : undefined;
    }
    case 'in': {
      const v = evaluate(e.left, state, seen);
      return v !== undefined && e.list.some((item) => item === v);
    }
    case 'binary': {
      // Both sides are always read (no short-circuit): evaluation has no side effects, and a
      // failure message is more useful when `seen` holds every value the condition names.
      const l = evaluate(e.left, state, seen);
      const r = evaluate(e.right, state, seen);
      return applyBinary(e.op, l, r);
    }
  }
}

function applyBinary(op: BinaryOp, l: unknown, r: unknown): unknown {
  switch (op) {
    case '||':
      return truthy(l) || truthy(r);
    case '&&':
      return truthy(l) && truthy(r);
    case '==':
      return l !== undefined && r !== undefined && l === r;
    case '!=':
      return l === undefined || r === undefined || l !== r;
    case '<':
    case '<=':
    case '>':
    case '>=': {
      const comparable = (typeof l === 'number' && typeof r === 'number') || (typeof l === 'string' && typeof r === 'string');
      if (!comparable) return false;
      const a = l as number | string;
      const b = r as number | string;
      return op === '<' ? a < b : op === '<=' ? a <= b : op === '>' ? a > b : a >= b;
    }
    default: {
      if (typeof l !== 'number' || typeof r !== 'number') return undefined;
      const v = op === '+' ? l + r : op === '-' ? l - r : op === '*' ? l * r : l / r;
      return Number.isFinite(v) ? v : undefined;
    }
  }
}

/**
 * Evaluates a parsed condition over `state` (a plain object such as a Snapshot). Never throws
 * for any state: absent paths read as undefined. `seen` holds every path the condition names.
 */
export function evaluateCondition(c: Condition, state: unknown): ConditionResult {
  const seen: Record<string, unknown> = {};
  const value = truthy(evaluate(c.ast, state, seen));
  return { value, seen };
}

/** `seen` as one line for a failure message: `destination.status = postcopy-paused, link.up = (absent)`. */
export function formatSeen(seen: Record<string, unknown>): string {
  return Object.entries(seen)
    .map(([path, v]) => `${path} = ${v === undefined ? '(absent)' : typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
}
