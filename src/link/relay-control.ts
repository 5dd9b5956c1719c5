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

function clip(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

/** Listens on `path` (mode 0600, a stale socket file replaced). */
export async function serveControl(path: string, target: ControlTarget): Promise<net.Server> {
  removeStaleSocket(path);
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => {
      buffered += data;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line === '') continue;
        const { response, quit } = handleControlLine(line, target);
        socket.write(`${JSON.stringify(response)}\n`);
        if (quit) {
          socket.end(() => target.quit());
          return;
        }
      }
      if (buffered.length > MAX_LINE_BYTES) {
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

/** A client for the control socket: one short connection per request. */
export class RelayControl {
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
  }

  /** Sends one request; resolves to the response, rejects with the relay's error text. */
  request(body: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.path);
      let buffered = '';
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        fn();
      };
      const timer = setTimeout(
        () => settle(() => reject(new Error(`the relay did not answer ${JSON.stringify(body)} within ${this.timeoutMs} ms`))),
        this.timeoutMs,
      );
      socket.setEncoding('utf8');
      socket.on('connect', () => socket.write(`${JSON.stringify(body)}\n`));
      socket.on('data', (data: string) => {
        buffered += data;
        const newline = buffered.indexOf('\n');
        if (newline < 0) return;
        const line = buffered.slice(0, newline);
        settle(() => {
          let response: unknown;
          try {
            response = JSON.parse(line);
          } catch {
            reject(new Error(`the relay answered with something that is not JSON: ${clip(line)}`));
            return;
          }
          const error = (response as { error?: unknown }).error;
          if (typeof error === 'string') reject(new Error(error));
          else resolve(response);
        });
      });
      socket.on('error', (err) => settle(() => reject(new Error(`relay control ${this.path}: ${err.message}`))));
      socket.on('close', () => settle(() => reject(new Error(`relay control ${this.path}: closed without an answer`))));
    });
  }
}
