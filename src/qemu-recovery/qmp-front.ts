/**
 * The `--qemu-frozen` stand-in source with a QMP front (`--qmp SOCK`), so a lab drives it as it
 * drives a source: it starts `postcopy-paused`, where the lost source stopped, and waits for
 * `migrate {uri, resume: true}`; then it connects to the destination's `migrate-recover`
 * address and serves (serve.ts). `query-migrate` follows it as QEMU's would:
 *   postcopy-paused -> postcopy-recover (the received bitmaps are in) -> postcopy-active (resume
 *   acked) -> completed (MIG_RP_MSG_SHUT 0);
 *   failed, error-desc "recovery cannot be complete: ...", when it refused before resuming;
 *   postcopy-paused again, with that error-desc, when --partial served what it held and left
 *   the destination paused; postcopy-paused with the error when the connection failed (retry).
 * `x-recovery-source` says what it held, what the destination lacked and what it served.
 * It exits (0) on `quit` or when whoever started it closes its stdin (no orphans), like the sim VMs.
 */
import { QmpError } from '../qmp/error.js';
import { startQmpServer } from '../qmp/server.js';
import { MODELLED_PARAMETERS } from '../sim/versions.js';
import { RecoveryIncompleteError, serveQemuResume, type FrozenReader } from './serve.js';
import { TARGET_PAGE_SIZE, type RamSectionInfo } from './wire.js';

/** QEMU's status names for what this process can be in. */
type FrontStatus = 'postcopy-paused' | 'postcopy-recover' | 'postcopy-active' | 'completed' | 'failed';

export interface QmpFrontOptions {
  qmpPath: string;
  /** The frozen RAM file, as reported in x-recovery-source. */
  file: string;
  ram: RamSectionInfo;
  frozen: FrozenReader;
  /** Pages of pc.ram the file holds. */
  heldPages: number;
  ramBytes: number;
  partial: boolean;
  log: (line: string) => void;
  addCleanup: (c: () => Promise<void>) => void;
}

/** `tcp:HOST:PORT` (what QEMU's migrate takes; the only transport here). */
export function parseTcpUri(uri: string): { host: string; port: number } | null {
  const m = /^tcp:(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(uri);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

export async function runQmpFront(o: QmpFrontOptions): Promise<number> {
  let status: FrontStatus = 'postcopy-paused';
  let errorDesc: string | undefined = `recovery source: the original source is gone; pages come from the RAM saved in ${o.file}`;
  let missing: Record<string, number> | null = null;
  let sent = 0;
  let requested = 0;
  let missingPages: number[] = [];
  let serving = false;

  const server = await startQmpServer({
    path: o.qmpPath,
    package: 'postcopy-lab-recovery-source',
    commands: {
      'query-status': { handler: () => ({ status: 'postmigrate', running: false, singlestep: false }) },
      'query-migrate': { handler: () => queryMigrate() },
      migrate: {
        args: { uri: 'str', resume: 'bool?', detach: 'bool?', blk: 'bool?', inc: 'bool?' },
        handler: (a) => migrate(a),
      },
      // A lab applies its setup to whatever runs on the source side. The stand-in sends as the
      // lost source did (one channel, no multifd): it refuses what would need otherwise, and
      // takes the rest (bandwidth caps, events) without effect.
      'migrate-set-capabilities': {
        args: { capabilities: 'array' },
        handler: (a) => {
          for (const c of a.capabilities as { capability?: string; state?: boolean }[]) {
            if (c.state === true && (c.capability === 'multifd' || c.capability === 'postcopy-preempt')) {
              throw new QmpError('GenericError', `the recovery source sends on one channel: capability ${c.capability} is not supported by it`);
            }
          }
          return {};
        },
      },
      'migrate-set-parameters': { args: Object.fromEntries(MODELLED_PARAMETERS.map((n) => [n, 'int?'])), handler: () => ({}) },
      quit: { handler: () => void setImmediate(() => onQuit()) },
    },
  });

  const setStatus = (s: FrontStatus): void => {
    if (s === status) return;
    status = s;
    server.emit('MIGRATION', { status: s });
  };

  function queryMigrate(): Record<string, unknown> {
    const lacked = missing ? Object.values(missing).reduce((n, v) => n + v, 0) : undefined;
    const r: Record<string, unknown> = {
      status,
      'x-recovery-source': {
        file: o.file,
        'held-pages': o.heldPages,
        'served-pages': sent,
        'window-bytes': 0,
        ...(lacked !== undefined ? { 'destination-lacked': lacked } : {}),
        ...(missingPages.length ? { 'missing-pages': missingPages.length, 'missing-first': missingPages.slice(0, 16) } : {}),
        'requested-pages': requested,
      },
    };
    // What QEMU's source reports, once the destination said what it lacks (before that it is
    // not known here, and the last reading of the lost source stands).
    if (lacked !== undefined) {
      const remaining = status === 'completed' ? 0 : Math.max(0, lacked - sent - missingPages.length) * TARGET_PAGE_SIZE;
      r.ram = { total: o.ramBytes, remaining, transferred: sent * (TARGET_PAGE_SIZE + 8), 'page-size': TARGET_PAGE_SIZE, normal: sent, 'postcopy-requests': requested };
    }
    if (errorDesc && status !== 'completed') r['error-desc'] = errorDesc;
    return r;
  }

  function migrate(a: Record<string, unknown>): Record<string, never> {
    if (a.resume !== true) {
      throw new QmpError('GenericError', 'this recovery source only resumes the paused migration of the source it stands in for: migrate {"uri": ..., "resume": true}');
    }
    if (status !== 'postcopy-paused' || serving) {
      // QEMU's own words for a resume outside postcopy-paused.
      throw new QmpError('GenericError', `Cannot resume if there is no paused migration (status is ${status})`);
    }
    const to = parseTcpUri(String(a.uri));
    if (!to) throw new QmpError('GenericError', `Invalid migration URI '${String(a.uri)}': this recovery source connects over tcp:HOST:PORT only`);
    serving = true;
    errorDesc = undefined;
    o.log(`migrate resume=true to ${to.host}:${to.port}`);
    void serveQemuResume({
      ...to,
      ram: o.ram,
      frozen: o.frozen,
      partial: o.partial,
      log: o.log,
      onState: (s, m) => {
        missing = m;
        setStatus(s);
      },
      onSent: (n) => (sent = n),
    }).then(
      (r) => {
        sent = r.pagesSent;
        requested = r.pagesRequested;
        serving = false;
        if (r.unheld) {
          missingPages = r.unheld.flatMap((u) => u.pages);
          errorDesc = incomplete(new RecoveryIncompleteError(r.unheld).message.replace(/; nothing was resumed.*$/, `; the ${r.pagesSent} held pages were served and the destination left postcopy-paused`));
          setStatus('postcopy-paused');
        } else if (r.shut === 0) {
          setStatus('completed');
        } else {
          errorDesc = `the destination ended the resumed migration with ${r.shut === null ? 'no MIG_RP_MSG_SHUT' : `MIG_RP_MSG_SHUT ${r.shut}`}`;
          setStatus('failed');
        }
        o.log(`done: ${status}${errorDesc ? `: ${errorDesc}` : ''}`);
      },
      (e: Error) => {
        serving = false;
        if (e instanceof RecoveryIncompleteError) {
          missingPages = e.unheld.flatMap((u) => u.pages);
          errorDesc = incomplete(e.message);
          setStatus('failed');
        } else {
          // A lost connection, as a source's: paused again, and another resume may be tried.
          errorDesc = `recovery source: ${e.message}`;
          setStatus('postcopy-paused');
        }
        o.log(`${status}: ${errorDesc}`);
      },
    );
    return {};
  }

  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopped ??= server.close());
  o.addCleanup(stop);
  let onQuit = (): void => {};
  o.log(`ready: ${o.heldPages} pc.ram pages held in ${o.file}; ram section ${o.ram.sectionId}; postcopy-paused, waiting for migrate resume=true`);
  return new Promise<number>((resolve) => {
    const done = (): void => void stop().then(() => resolve(0));
    onQuit = () => {
      server.emit('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
      done();
    };
    process.stdin.on('end', done);
    process.stdin.on('error', done);
    process.stdin.resume();
  });
}

/** The refusal in the words the lab's failure classification knows (RECOVERY_INCOMPLETE_PREFIX). */
function incomplete(message: string): string {
  return `recovery cannot be complete: ${message}`;
}
