/**
 * `virsh event --loop --all`: libvirt's domain events as they happen, one long-running virsh per
 * daemon. Polling `domstate --reason` sees a state only if it lasts until the next poll; a fast
 * `--postcopy-resume` goes from `post-copy failed` through `post-copy` to `migrated` in well under
 * a second, and the events say each step, in order. Polling stays for the first state and as the
 * fallback (an event virsh does not print, a watcher that died).
 *
 * Lines as libvirt 9.0's virsh prints them (captured from the two-daemon pair):
 *
 *   event 'lifecycle' for domain 'pcl-guest': Suspended Post-copy Error
 *   event 'migration-iteration' for domain 'pcl-guest': iteration: '2'
 *   event 'job-completed' for domain 'pcl-guest':
 *   	operation: 5
 *   	data_total: 67444736
 */
import { execa, type ResultPromise } from 'execa';
import type { DomState } from './virsh.js';

export type EventLine =
  /** A header: the event's name, its domain, and what follows the colon (a lifecycle event's "Suspended Post-copy"). */
  | { type: 'event'; name: string; domain: string; detail: string }
  /** A tab-indented `key: value` line belonging to the event before it (job-completed's statistics). */
  | { type: 'field'; key: string; value: string };

const HEADER = /^event '([^']+)' for domain '([^']*)':\s?(.*)$/;
const FIELD = /^\t([^:]+):\s?(.*)$/;

/** One line of `virsh event --loop` output, or null for what is neither (blank lines, "events received"). */
export function parseEventLine(line: string): EventLine | null {
  const h = HEADER.exec(line.replace(/\r$/, ''));
  if (h) return { type: 'event', name: h[1], domain: h[2], detail: h[3].trim() };
  const f = FIELD.exec(line);
  if (f) return { type: 'field', key: f[1].trim(), value: f[2].trim() };
  return null;
}

/**
 * A lifecycle event as the state `domstate --reason` reports right after it: virsh's event words
 * (virshDomainEventToString, virshDomainEventDetailToString) against libvirt's state reasons.
 * Only the ones seen in migrations here; any other lifecycle event leaves the state to the poll.
 */
export const LIFECYCLE_STATES: Readonly<Record<string, DomState>> = {
  'Suspended Migrated': { state: 'paused', reason: 'migrating' },
  'Suspended Post-copy': { state: 'paused', reason: 'post-copy' },
  'Suspended Post-copy Error': { state: 'paused', reason: 'post-copy failed' },
  'Resumed Post-copy': { state: 'running', reason: 'post-copy' },
  'Resumed Post-copy Error': { state: 'running', reason: 'post-copy failed' },
  'Resumed Migrated': { state: 'running', reason: 'migrated' },
  'Stopped Migrated': { state: 'shut off', reason: 'migrated' },
};

/** The state a parsed line says `domain` is now in, or null when it says none. */
export function stateFromEvent(e: EventLine | null, domain: string): DomState | null {
  if (!e || e.type !== 'event' || e.name !== 'lifecycle' || e.domain !== domain) return null;
  return LIFECYCLE_STATES[e.detail] ?? null;
}

/**
 * One `virsh -c URI event --loop --all` (argv as given; no shell), its lines handed to `onLine`.
 * Owned by whoever starts it: stop() kills it and waits for its end.
 */
export class EventWatch {
  private child: ResultPromise | null = null;
  private ended: Promise<unknown> = Promise.resolve();
  private rest = '';

  constructor(
    private readonly argv: readonly string[],
    private readonly onLine: (line: EventLine) => void,
    private readonly onEnd?: (why: string) => void,
  ) {}

  start(): void {
    if (this.child) throw new Error('the event watch is already running');
    const child = execa(this.argv[0], this.argv.slice(1), { reject: false, stdin: 'ignore', stderr: 'pipe', buffer: false, env: { LC_ALL: 'C' }, extendEnv: true });
    this.child = child;
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      const lines = (this.rest + chunk).split('\n');
      this.rest = lines.pop() ?? '';
      for (const l of lines) {
        const e = parseEventLine(l);
        if (e) this.onLine(e);
      }
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (c: string) => {
      stderr = (stderr + c).slice(-500);
    });
    this.ended = child.then((r) => {
      if (this.child === child && this.onEnd) this.onEnd(`virsh event ended (exit ${r.exitCode ?? r.signal})${stderr.trim() ? `: ${stderr.trim().split('\n').pop()}` : ''}`);
    });
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Kill virsh (SIGTERM, SIGKILL after 2 s) and wait for it. Idempotent. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await this.ended;
    clearTimeout(timer);
  }
}
