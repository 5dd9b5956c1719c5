/**
 * The relay's control protocol: JSON lines over a unix socket, one response line per request
 * line, in order. Requests:
 *   {"cmd":"apply","fault":<LinkFault>}  -> {"ok":true}
 *   {"cmd":"restore"}                    -> {"ok":true}
 *   {"cmd":"snapshot"}                   -> <LinkSnapshot>
 *   {"cmd":"quit"}                       -> {"ok":true}, then the relay exits
 * Any failure -> {"error":"<what was wrong and the right form>"}; a bad request never stops
 * the relay. A request may carry an "id", echoed in its response.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { LinkFault, LinkSnapshot } from '../types.js';
import { LinkFaultError, parseLinkFault } from './fault-model.js';

/** What the control server needs from the relay. */
export interface ControlTarget {
  apply(fault: LinkFault): void;
  restore(): void;
  snapshot(): LinkSnapshot;
  quit(): void;
}

const MAX_LINE_BYTES = 64 * 1024;
const COMMANDS = '{"cmd":"apply","fault":{...}}, {"cmd":"restore"}, {"cmd":"snapshot"} or {"cmd":"quit"}';

/** Handles one request line; returns the response object. Exported for tests. */
export function handleControlLine(line: string, target: ControlTarget): { response: object; quit: boolean } {
  let request: unknown;
  try {
    request = JSON.parse(line);
  } catch {
    return { response: { error: `a request must be one line of JSON such as ${COMMANDS}; could not parse ${clip(line)}` }, quit: false };
  }
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    return { response: { error: `a request must be a JSON object: ${COMMANDS}` }, quit: false };
  }
  const { cmd, id } = request as { cmd?: unknown; id?: unknown };
  const withId = (o: object): object => (id === undefined ? o : { id, ...o });
  try {
    switch (cmd) {
      case 'apply': {
        if (!('fault' in request)) throw new LinkFaultError('"apply" needs a "fault", e.g. {"cmd":"apply","fault":{"kind":"cut"}}');
        target.apply(parseLinkFault((request as { fault: unknown }).fault));
        return { response: withId({ ok: true }), quit: false };
      }
      case 'restore':
        target.restore();
        return { response: withId({ ok: true }), quit: false };
      case 'snapshot':
        return { response: withId(target.snapshot()), quit: false };
      case 'quit':
        return { response: withId({ ok: true }), quit: true };
      default:
        return {
          response: withId({ error: `unknown cmd ${cmd === undefined ? '(none given)' : JSON.stringify(cmd)}; expected ${COMMANDS}` }),
          quit: false,
        };
    }
  } catch (err) {
    return { response: withId({ error: err instanceof Error ? err.message : String(err) }), quit: false };
  }
}

/** A text stream cut into its newline-ended lines (both ends of the control socket speak so). */
class LineBuffer {
  private text = '';

  /** Bytes received after the last newline (an unfinished line). */
  get pending(): number {
    return this.text.length;
  }

  /**
   * Adds `data` and hands each complete line to `onLine`, which returns false to stop there
   * (the rest stays unread). True when every complete line was handed on.
   */
  push(data: string, onLine: (line: string) => boolean): boolean {
    this.text += data;
    let newline: number;
    while ((newline = this.text.indexOf('\n')) >= 0) {
      const line = this.text.slice(0, newline);
      this.text = this.text.slice(newline + 1);
      if (!onLine(line)) return false;
    }
    return true;
  }
}

function clip(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

/** Listens on `path` (mode 0600, a stale socket file replaced). */
export async function serveControl(path: string, target: ControlTarget): Promise<net.Server> {
  removeStaleSocket(path);
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const lines = new LineBuffer();
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => {
      const done = lines.push(data, (raw) => {
        const line = raw.trim();
        if (line === '') return true;
        const { response, quit } = handleControlLine(line, target);
        socket.write(`${JSON.stringify(response)}\n`);
        if (quit) socket.end(() => target.quit());
        return !quit;
      });
      if (done && lines.pending > MAX_LINE_BYTES) {
        socket.end(`${JSON.stringify({ error: `request line longer than ${MAX_LINE_BYTES} bytes` })}\n`);
      }
    });
  });
  // Create the socket file already private: no window where another user could connect.
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(previous);
  }
  fs.chmodSync(path, 0o600);
  return server;
}

function removeStaleSocket(path: string): void {
  try {
    if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
  } catch {
    // Not there: nothing to remove.
  }
}

/** One request waiting for its response line (responses come back in request order). */
interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A client for the control socket. It keeps one connection open and sends requests on it in
 * order: the lab polls the relay every 100 ms, and a connection per request cost the TUI process
 * ~2.5 ms of CPU each (connect, a new Socket and its streams, close; profile of bench/ui.ts).
 * A closed or failed connection fails what was waiting on it; the next request connects again.
 */
export class RelayControl {
  private socket: net.Socket | null = null;
  private readonly pending: Pending[] = [];

  constructor(
    readonly path: string,
    private readonly timeoutMs = 5000,
  ) {}

  async apply(fault: LinkFault): Promise<void> {
    await this.request({ cmd: 'apply', fault });
  }

  async restore(): Promise<void> {
    await this.request({ cmd: 'restore' });
  }

  async snapshot(): Promise<LinkSnapshot> {
    return (await this.request({ cmd: 'snapshot' })) as LinkSnapshot;
  }

  async quit(): Promise<void> {
    await this.request({ cmd: 'quit' });
    this.close();
  }

  /** Drops the connection (what is waiting on it fails); a later request connects again. */
  close(): void {
    this.fail(null, `relay control ${this.path}: closed`);
  }

  /** Sends one request; resolves to the response, rejects with the relay's error text. */
  request(body: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const socket = this.connection();
      const entry: Pending = {
        resolve,
        reject,
        // A response that never comes would shift every later one onto the wrong request: the
        // connection goes, and with it whatever else waited.
        timer: setTimeout(() => this.fail(socket, `the relay did not answer ${JSON.stringify(body)} within ${this.timeoutMs} ms`), this.timeoutMs),
      };
      this.pending.push(entry);
      socket.write(`${JSON.stringify(body)}\n`);
    });
  }

  private connection(): net.Socket {
    if (this.socket) return this.socket;
    const socket = net.connect(this.path);
    this.socket = socket;
    const lines = new LineBuffer();
    socket.setEncoding('utf8');
    // An idle control connection must not keep a process alive; a waiting request's timer does.
    socket.unref();
    socket.on('data', (data: string) => lines.push(data, (line) => this.onLine(line)));
    socket.on('error', (err) => this.fail(socket, `relay control ${this.path}: ${err.message}`));
    socket.on('close', () => this.fail(socket, `relay control ${this.path}: closed without an answer`));
    return socket;
  }

  /** One response line, for the oldest request still waiting. */
  private onLine(line: string): boolean {
    const entry = this.pending.shift();
    if (!entry) return true;
    clearTimeout(entry.timer);
    let response: unknown;
    try {
      response = JSON.parse(line);
    } catch {
      entry.reject(new Error(`the relay answered with something that is not JSON: ${clip(line)}`));
      return true;
    }
    const error = (response as { error?: unknown }).error;
    if (typeof error === 'string') entry.reject(new Error(error));
    else entry.resolve(response);
    return true;
  }

  /** Ends `socket` (null: whichever is open) and fails every request still waiting on it. */
  private fail(socket: net.Socket | null, message: string): void {
    const target = socket ?? this.socket;
    if (!target || target !== this.socket) return;
    this.socket = null;
    target.destroy();
    for (const entry of this.pending.splice(0)) {
      clearTimeout(entry.timer);
      entry.reject(new Error(message));
    }
  }
}
