/**
 * Reading lab files. Every problem is reported as `file:line:column: field: what was expected`,
 * pointing at the YAML node the problem is about (or, for a missing field, at the nearest
 * mapping that exists), because lab authors fix files by line number.
 */
import { readFile, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair } from 'yaml';
import { LAB_SCHEMA, suggest, type Backend, type Lab } from './schema.js';

/** Largest lab file read, in bytes: labs are a few kilobytes; anything huge is a mistake. */
export const MAX_LAB_FILE_BYTES = 1024 * 1024;

/** One problem in a lab file. `line` and `column` are 1-based; 0 when there is no position. */
export interface LabIssue {
  file: string;
  line: number;
  column: number;
  /** Path of the field, like `steps[2].until`; '' for the file as a whole. */
  field: string;
  /** What is wrong and what was expected. */
  problem: string;
}

/**
 * A lab file that cannot be used. The fields describe the first problem in file order; `issues`
 * holds all of them and `message` prints one per line. The CLI exits with code 2 on this.
 */
export class LabError extends Error {
  override readonly name = 'LabError';
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly field: string;
  readonly problem: string;
  constructor(readonly issues: LabIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    const first = issues[0]!;
    this.file = first.file;
    this.line = first.line;
    this.column = first.column;
    this.field = first.field;
    this.problem = first.problem;
  }
}

/** `labs/x.yaml:14:12: steps[2].until: unexpected token '=' ...` */
export function formatIssue(i: LabIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}:${i.column}` : i.file;
  return `${where}: ${i.field ? `${i.field}: ` : ''}${i.problem}`;
}

type PathKey = string | number;

const SIMPLE_KEY_RE = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `['steps', 2, 'until']` -> `steps[2].until` */
export function formatFieldPath(path: readonly PathKey[]): string {
  let out = '';
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (SIMPLE_KEY_RE.test(k)) out += out === '' ? k : `.${k}`;
    else out += `[${JSON.stringify(k)}]`;
  }
  return out;
}

function keyText(pair: Pair): string | undefined {
  return isScalar(pair.key) ? String(pair.key.value) : undefined;
}

/** The child node of a collection at `key`, or undefined. */
function child(node: unknown, key: PathKey): { node: Node | undefined; keyNode?: Node } | undefined {
  if (isMap(node)) {
    for (const pair of node.items) {
      if (keyText(pair) === String(key)) return { node: (pair.value ?? undefined) as Node | undefined, keyNode: pair.key as Node };
    }
    return undefined;
  }
  if (isSeq(node) && typeof key === 'number') {
    const item = node.items[key];
    return item === undefined ? undefined : { node: item as Node };
  }
  return undefined;
}

/**
 * The node a problem at `path` is about: the value at `path` (its key, when `onKey`), else the
 * deepest ancestor that exists.
 */
function locate(doc: Document, path: readonly PathKey[], onKey: boolean): Node | undefined {
  let node: Node | undefined = (doc.contents ?? undefined) as Node | undefined;
  for (let i = 0; i < path.length; i++) {
    const next = child(node, path[i]!);
    if (next === undefined) return node;
    const last = i === path.length - 1;
    if (last && onKey && next.keyNode) return next.keyNode;
    // A key with no value (`until:`) has a null scalar; fall back to the key so the position
    // is on the right line.
    if (next.node === undefined || next.node.range === undefined || next.node.range === null) return next.keyNode ?? node;
    node = next.node;
  }
  return node;
}

/** The field path of the innermost key whose pair contains `offset` (for YAML errors). */
function pathAtOffset(doc: Document, offset: number): PathKey[] {
  const path: PathKey[] = [];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const start = (p.key as Node | null)?.range?.[0];
        const end = (p.value as Node | null)?.range?.[2] ?? (p.key as Node | null)?.range?.[2];
        return start !== undefined && end !== undefined && offset >= start && offset <= end;
      });
      const k = pair && keyText(pair);
      if (!pair || k === undefined) return path;
      path.push(k);
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => {
        const r = (item as Node | null)?.range;
        return r && offset >= r[0] && offset <= r[2];
      });
      if (index < 0) return path;
      path.push(index);
      node = node.items[index];
    } else {
      return path;
    }
  }
}

/** Parses and validates lab YAML. `fileName` is used in messages and to check the id. */
export function loadLabText(text: string, fileName: string): Lab {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined): { line: number; column: number } => {
    if (offset === undefined) return { line: 0, column: 0 };
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const issue = (offset: number | undefined, path: readonly PathKey[], problem: string): LabIssue => ({
    file: fileName,
    ...at(offset),
    field: formatFieldPath(path),
    problem,
  });

  // An unquoted condition such as `until: !source.alive` is a YAML tag, not text: refuse it
  // here with the fix, rather than later as a puzzling "empty condition".
  const tagProblems = doc.warnings.filter((w) => w.code === 'TAG_RESOLVE_FAILED');
  if (doc.errors.length > 0 || tagProblems.length > 0) {
    throw new LabError(
      [...doc.errors, ...tagProblems].map((e) => {
        const offset = e.pos[0];
        const path = doc.contents ? pathAtOffset(doc, offset) : [];
        if (e.code === 'DUPLICATE_KEY') {
          const key = path.length > 0 ? String(path[path.length - 1]) : undefined;
          return issue(offset, path, `duplicate key${key !== undefined ? ` '${key}'` : ''} (each key may appear once in a mapping)`);
        }
        if (e.code === 'TAG_RESOLVE_FAILED') {
          const tag = text.slice(e.pos[0], e.pos[1]).split(/\s/)[0];
          return issue(offset, path, `YAML reads '${tag}' as a tag (expected text: quote a value that starts with !, like '${tag}')`);
        }
        if (e.code === 'BLOCK_AS_IMPLICIT_KEY') {
          // `title: Cut: then recover` reads as a mapping inside a value; point at the value
          // the author wrote, not at the key YAML invented from it.
          return issue(offset, path.slice(0, -1), `YAML syntax error: a plain value cannot contain ': ' (expected quotes around it, like "${text.slice(e.pos[0]).split('\n')[0]!.trim()}")`);
        }
        // yaml's messages end with "at line X, column Y"; ours carry the position up front.
        const problem = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        return issue(offset, path, `YAML syntax error: ${problem}`);
      }),
    );
  }
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    throw new LabError([issue(0, [], 'the file is empty (expected a lab: a mapping with id, title, summary, setup, steps, expect and summary-text)')]);
  }

  let data: unknown;
  try {
    // maxAliasCount refuses "billion laughs" alias expansion.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new LabError([issue(0, [], `cannot read the YAML: ${(e as Error).message}`)]);
  }

  const result = LAB_SCHEMA.safeParse(data, { reportInput: true });
  const issues: LabIssue[] = [];
  if (!result.success) {
    for (const zi of result.error.issues) {
      const path = zi.path.filter((k): k is PathKey => typeof k === 'string' || typeof k === 'number');
      const params = (zi as { params?: Record<string, unknown> }).params ?? {};
      const node = locate(doc, path, params['unknownKey'] === true);
      issues.push(issue(node?.range?.[0], path, zi.message));
    }
  } else {
    const lab = result.data;
    const m = /^(.*)\.ya?ml$/i.exec(basename(fileName));
    if (m && m[1] !== lab.id) {
      issues.push(issue(locate(doc, ['id'], false)?.range?.[0], ['id'], `id '${lab.id}' does not match the file name ${basename(fileName)} (expected id: ${m[1]})`));
    }
    if (issues.length === 0) return lab;
  }
  issues.sort((a, b) => a.line - b.line || a.column - b.column || (a.field < b.field ? -1 : a.field > b.field ? 1 : 0));
  const unique = issues.filter((x, i) => i === 0 || formatIssue(x) !== formatIssue(issues[i - 1]!));
  throw new LabError(unique);
}

/** Reads and validates one lab file. */
export async function loadLab(path: string): Promise<Lab> {
  let text: string;
  try {
    const buf = await readFile(path);
    if (buf.length > MAX_LAB_FILE_BYTES) {
      throw new LabError([{ file: path, line: 0, column: 0, field: '', problem: `file is ${buf.length} bytes (a lab file is at most ${MAX_LAB_FILE_BYTES})` }]);
    }
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof LabError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a lab file' : `cannot read: ${(e as Error).message}`;
    throw new LabError([{ file: path, line: 0, column: 0, field: '', problem }]);
  }
  return loadLabText(text, path);
}

/** What the lab picker shows. */
export interface LabListing {
  id: string;
  title: string;
  summary: string;
  path: string;
  backends: Backend[];
  /** The QEMU versions the lab holds for (">=8.2"); absent: every version. */
  qemu?: string;
}

async function labFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  return names.filter((n) => /\.ya?ml$/i.test(n)).sort();
}

/**
 * Every lab in `dir`, sorted by file name. A broken lab throws its LabError, unless `onError`
 * is given: then it is reported there and left out, so one bad file does not hide the rest.
 */
export async function listLabs(dir: string, opts: { onError?: (e: LabError) => void } = {}): Promise<LabListing[]> {
  const out: LabListing[] = [];
  for (const name of await labFiles(dir)) {
    const path = join(dir, name);
    try {
      const lab = await loadLab(path);
      out.push({ id: lab.id, title: lab.title, summary: lab.summary, path, backends: lab.backends, ...(lab.qemu ? { qemu: lab.qemu.range.source } : {}) });
    } catch (e) {
      if (e instanceof LabError && opts.onError) opts.onError(e);
      else throw e;
    }
  }
  return out;
}

/**
 * A lab by id (`link-cut-recovery`, looked up as `<labsDir>/<id>.yaml`) or by path (anything
 * with a '/' or a .yaml/.yml ending). An unknown id throws a LabError naming the ids there are.
 */
export async function findLab(idOrPath: string, labsDir: string): Promise<Lab> {
  if (idOrPath.includes('/') || /\.ya?ml$/i.test(idOrPath)) return loadLab(idOrPath);
  let files: string[];
  try {
    files = await labFiles(labsDir);
  } catch {
    throw new LabError([{ file: labsDir, line: 0, column: 0, field: '', problem: 'cannot read the labs directory' }]);
  }
  const ids = files.map((n) => n.replace(/\.ya?ml$/i, ''));
  const index = ids.indexOf(idOrPath);
  if (index >= 0) return loadLab(join(labsDir, files[index]!));
  const guess = suggest(idOrPath, ids);
  throw new LabError([
    {
      file: labsDir,
      line: 0,
      column: 0,
      field: '',
      problem: `no lab '${idOrPath}'${guess ? ` (did you mean '${guess}'?)` : ''}; labs here: ${ids.length ? ids.join(', ') : 'none'}`,
    },
  ]);
}
