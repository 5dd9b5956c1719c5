/** Real sockets on 127.0.0.1 around a real relay process. */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const RELAY_MAIN_DIST = path.join(ROOT, 'dist/src/link/relay-main.js');

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Builds dist/ when the relay's compiled entry is missing or older than its sources (`npm test`
 * builds first anyway). tsc emits even if files elsewhere in the project have type errors.
 */
export async function ensureBuilt(): Promise<void> {
  const built = fs.existsSync(RELAY_MAIN_DIST) ? fs.statSync(RELAY_MAIN_DIST).mtimeMs : 0;
  if (built > newestSource(path.join(ROOT, 'src/link'))) return;
  await execa('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, reject: false });
  if (!fs.existsSync(RELAY_MAIN_DIST)) throw new Error(`building did not produce ${RELAY_MAIN_DIST}`);
}

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-relay-'));
}

/** A server on `port` that records what it receives and echoes it back when `echo` is set. */
export async function peer(port: number, echo = true) {
  const sockets: net.Socket[] = [];
  const errors: string[] = [];
  let received = 0;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
    socket.on('data', (d: Buffer) => {
      received += d.length;
      if (echo) socket.write(d);
    });
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    server,
    sockets,
    errors,
    get received() {
      return received;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A client connection that counts what it receives and records its error code, not waited for:
 * for a connection the relay may reset before the client has seen it connect (a refusal).
 */
export function dial(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const state = { received: 0, error: undefined as string | undefined, closed: false, data: [] as Buffer[] };
  socket.on('data', (d: Buffer) => {
    state.received += d.length;
    state.data.push(d);
  });
  socket.on('error', (err: NodeJS.ErrnoException) => (state.error = err.code ?? err.message));
  socket.on('close', () => (state.closed = true));
  return { socket, state };
}

/** A client connection that counts what it receives and records its error code, once connected. */
export async function client(port: number) {
  const c = dial(port);
  await new Promise<void>((resolve, reject) => {
    c.socket.once('connect', () => resolve());
    c.socket.once('error', reject);
  });
  return c;
}

/** Polls until `check` holds or `ms` pass; a bounded wait, not a timing assertion. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
