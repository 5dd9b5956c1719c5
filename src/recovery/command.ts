/**
 * `postcopy-lab recovery-source FILE --qmp SOCK [--expect-digest HEX] [--name NAME]`: a process
 * started like a VM that serves a recovery file to a paused destination (recovery-source.ts).
 * `postcopy-lab recovery-file inspect FILE [--json]`: what a file holds, and whether every
 * record is intact.
 */
import { parseArgs } from 'node:util';
import { startQmpServer } from '../qmp/server.js';
import { fmtBytes } from '../util/format.js';
import { minimumFileBytes, RecoveryFile, RecoveryFileError } from './format.js';
import { RecoverySourceVm } from './recovery-source.js';

export class RecoveryUsageError extends Error {}

function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean' }>): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new RecoveryUsageError((e as Error).message.replace(/\. To specify.*$/, ''));
  }
}

/**
 * Runs the recovery source until `quit`, or until whoever started it closes our stdin (as the
 * sim VMs do: no orphans). `addCleanup` registers what must close if the process is signalled.
 */
export async function runRecoverySource(argv: string[], addCleanup: (c: () => Promise<void>) => void): Promise<number> {
  const { values, positionals } = parse(argv, { qmp: { type: 'string' }, 'expect-digest': { type: 'string' }, name: { type: 'string' } });
  const file = positionals[0];
  // Every missing piece in one message.
  const missing = [...(file ? [] : ['FILE (the recovery file)']), ...(typeof values.qmp === 'string' ? [] : ['--qmp SOCK (the QMP unix socket to create)'])];
  if (!file || typeof values.qmp !== 'string') throw new RecoveryUsageError(`recovery-source: missing ${missing.join(' and ')}; usage: postcopy-lab recovery-source FILE --qmp SOCK [--expect-digest HEX]`);
  const digest = values['expect-digest'];
  if (digest !== undefined && !/^[0-9a-fA-F]{64}$/.test(String(digest))) {
    throw new RecoveryUsageError(`--expect-digest: '${String(digest)}' is not a sha-256 (64 hex digits, as query-migrate's x-recovery-file.digest)`);
  }
  // Validated whole before anything listens: a bad file never serves a page.
  const rf = RecoveryFile.open(file, typeof digest === 'string' ? { digest } : {});
  const name = typeof values.name === 'string' ? values.name : 'recovery-source';
  const vm = new RecoverySourceVm(rf, name);
  vm.log = (m) => process.stderr.write(`[${name}] ${m}\n`);
  const server = await startQmpServer({ path: values.qmp, commands: vm.commands(), version: vm.traits.version, package: 'postcopy-lab-recovery-source' });
  vm.emit = (event, data) => server.emit(event, data);
  let stopped: Promise<void> | null = null;
  const stop = () =>
    (stopped ??= (async () => {
      vm.shutdown();
      rf.close();
      await server.close();
    })());
  addCleanup(stop);
  vm.start();
  vm.log(`ready: ${vm.pageCount} pages of ${vm.pageSize} bytes, ${rf.held.count} held in ${file}; postcopy-paused, waiting for migrate resume=true`);
  return new Promise<number>((resolve) => {
    const done = () => void stop().then(() => resolve(0));
    vm.onQuit = () => {
      server.emit('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
      done();
    };
    process.stdin.on('end', done);
    process.stdin.on('error', done);
    process.stdin.resume();
  });
}

export interface InspectReport {
  file: string;
  ok: boolean;
  error?: string;
  version?: number;
  mode?: string;
  'page-size'?: number;
  'page-count'?: number;
  'guest-bytes'?: number;
  digest?: string;
  'held-pages'?: number;
  records?: number;
  'stale-records'?: number;
  'window-bytes'?: number;
  'unsent-pages'?: number;
  'window-pages'?: number;
  'file-bytes'?: number;
  /** Unsent pages only: what any file must hold (the pages lost in flight come on top). */
  'minimum-bytes-known'?: number;
  'size-vs-minimum'?: number;
  /** Stream bytes at the failure (null: written before any failure, continuous mode). */
  'stream-bytes'?: number | null;
  /**
   * The most bytes that may have been in flight at the failure for this file still to complete
   * any destination: every page whose frame started later is held (null: not known).
   */
  'covers-in-flight-bytes'?: number | null;
}

/** See InspectReport['covers-in-flight-bytes']: from the latest page sent that the file does not hold. */
function coversInFlight(rf: RecoveryFile): number | null {
  const T = rf.header.streamBytes;
  if (T <= 0) return null;
  let latest = -1;
  for (let i = 0; i < rf.positions.length; i++) {
    const pos = rf.positions[i];
    if (pos > 0 && !rf.held.get(i)) latest = Math.max(latest, pos - 1);
  }
  return latest < 0 ? T : T - latest - 1;
}

export function inspect(file: string): InspectReport {
  let rf: RecoveryFile;
  try {
    rf = RecoveryFile.open(file);
  } catch (e) {
    if (e instanceof RecoveryFileError) return { file, ok: false, error: e.message };
    throw e;
  }
  const h = rf.header;
  const covers = coversInFlight(rf);
  rf.close();
  const minimum = minimumFileBytes(h.pageSize, h.pageCount, h.unsentPages);
  return {
    file,
    ok: true,
    version: h.version,
    mode: h.mode,
    'page-size': h.pageSize,
    'page-count': h.pageCount,
    'guest-bytes': h.pageSize * h.pageCount,
    digest: h.digest,
    'held-pages': rf.held.count,
    records: h.recordCount,
    'stale-records': h.recordCount - rf.held.count,
    'window-bytes': h.windowBytes,
    'unsent-pages': h.unsentPages,
    'window-pages': h.windowPages,
    'file-bytes': h.fileBytes,
    'minimum-bytes-known': minimum,
    'size-vs-minimum': Math.round((h.fileBytes / minimum) * 100) / 100,
    'stream-bytes': h.streamBytes > 0 ? h.streamBytes : null,
    'covers-in-flight-bytes': covers,
  };
}

export function formatInspect(r: InspectReport): string {
  if (!r.ok) return `${r.file}: REFUSED\n  ${r.error}`;
  const b = (n: number | undefined) => fmtBytes(n ?? 0);
  return [
    `${r.file}: intact (every record's checksum verified)`,
    `  guest      ${b(r['guest-bytes'])}: ${r['page-count']} pages of ${r['page-size']} bytes, versions sha-256 ${r.digest}`,
    `  mode       ${r.mode}, format version ${r.version}`,
    `  holds      ${r['held-pages']} pages (${r.records} records, ${r['stale-records']} stale copies)`,
    `  window     ${b(r['window-bytes'])} kept of what was sent last: ${r['window-pages']} pages; ${r['unsent-pages']} pages never sent`,
    `  size       ${b(r['file-bytes'])}, ${r['size-vs-minimum']}× the ${b(r['minimum-bytes-known'])} the unsent pages alone need (the pages lost in flight come on top)`,
    r['stream-bytes'] == null
      ? `  in flight  not recorded (written before any failure: it holds every page, whatever was in flight)`
      : `  in flight  the stream had ${r['stream-bytes']} bytes at the failure; complete for any destination if at most ${r['covers-in-flight-bytes']} bytes were in flight`,
  ].join('\n');
}

/** `recovery-file inspect FILE [--json]`: exit 0 when the file is intact, 1 when it is refused. */
export function runRecoveryFile(argv: string[]): number {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } });
  const [sub, file] = positionals;
  if (sub === undefined || sub === '') throw new RecoveryUsageError('recovery-file: a subcommand is missing (expected: recovery-file inspect FILE)');
  if (sub !== 'inspect') throw new RecoveryUsageError(`recovery-file: unknown subcommand '${sub}' (expected: recovery-file inspect FILE)`);
  if (!file) throw new RecoveryUsageError('recovery-file inspect: which file?');
  const r = inspect(file);
  process.stdout.write((values.json ? JSON.stringify(r) : formatInspect(r)) + '\n');
  return r.ok ? 0 : 1;
}
