/**
 * A real terminal for end-to-end tests (as Ink's own tests do it): the command runs in a
 * pseudo-terminal (@lydell/node-pty), and everything it writes is fed into a headless xterm of
 * the same size, so tests read the screen a person would see, not the byte stream. Tests poll
 * the rendered screen (`waitFor`) instead of sleeping, and never assert timing.
 *
 * Used by test/e2e/*.test.ts and by bench/ui.ts (which imports the compiled copy).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pty from '@lydell/node-pty';
import xterm from '@xterm/headless';

const { Terminal } = xterm;

export const KEYS = {
  Enter: '\r',
  Esc: '\u001b',
  Tab: '\t',
  'Shift-Tab': '\u001b[Z',
  Up: '\u001b[A',
  Down: '\u001b[B',
  Right: '\u001b[C',
  Left: '\u001b[D',
  Backspace: '\u007f',
  'Ctrl-C': '\u0003',
  'Ctrl-U': '\u0015',
} as const;
export type KeyName = keyof typeof KEYS;

export interface TermOptions {
  cols?: number;
  rows?: number;
  cwd?: string;
  /** Added to (and overriding) the base environment. */
  env?: Record<string, string | undefined>;
  /** Where XDG_STATE_HOME and XDG_RUNTIME_DIR go; a fresh temp dir when absent. */
  dir?: string;
}

export interface Term {
  /** The pty's child (the command itself). */
  readonly pid: number;
  /** The temp dir holding this run's state and runtime directories. */
  readonly dir: string;
  /** The rendered screen: one string per row, trailing blanks trimmed. */
  lines(): string[];
  /** The rendered screen as one string. */
  screen(): string;
  /**
   * Resolves with the screen once it contains `text` (or matches it); rejects after `timeoutMs`
   * with the last screen in the message.
   */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the screen once `check(screen)` holds. */
  waitUntil(check: (screen: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  /** Writes text as typed (no key translation). */
  type(text: string): void;
  press(key: KeyName): void;
  /** Resizes both the pty (the app gets SIGWINCH) and the emulator. */
  resize(cols: number, rows: number): void;
  /** The exit code (128 + n when killed by signal n). */
  readonly exit: Promise<number>;
  readonly exited: boolean;
  /** Everything the app wrote, raw (for debugging a failure). */
  output(): string;
  /** Kills the pty's process (SIGKILL by default) and removes the temp dir. Idempotent. */
  kill(signal?: string): void;
}

const live = new Set<Term>();

/** Starts `file args` in a pseudo-terminal of cols x rows (default 120x36). */
export function spawnTerm(file: string, args: string[], opts: TermOptions = {}): Term {
  const cols = opts.cols ?? 120;
  const rows = opts.rows ?? 36;
  const ownDir = !opts.dir;
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'pcl-e2e-'));
  const stateDir = path.join(dir, 'state');
  const runtimeDir = path.join(dir, 'run');
  fs.mkdirSync(stateDir, { recursive: true });
  fs.mkdirSync(runtimeDir, { recursive: true, mode: 0o700 });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({
    ...process.env,
    CI: 'false',
    TERM: 'xterm-256color',
    XDG_STATE_HOME: stateDir,
    XDG_RUNTIME_DIR: runtimeDir,
    ...opts.env,
  })) {
    if (v !== undefined) env[k] = v;
  }
  // vitest marks its workers; the app under test must not think it is one.
  delete env.VITEST;
  delete env.VITEST_WORKER_ID;
  delete env.VITEST_POOL_ID;
  delete env.NODE_OPTIONS;

  const term = new Terminal({ cols, rows, allowProposedApi: true, scrollback: 0 });
  const proc = pty.spawn(file, args, { name: 'xterm-256color', cols, rows, cwd: opts.cwd ?? process.cwd(), env });
  let raw = '';
  let exited = false;
  let removed = false;
  proc.onData((d) => {
    raw = (raw + d).slice(-200_000);
    term.write(d);
  });
  const exit = new Promise<number>((resolve) => {
    proc.onExit(({ exitCode, signal }) => {
      exited = true;
      resolve(signal ? 128 + signal : exitCode);
    });
  });

  const lines = (): string[] => {
    const buf = term.buffer.active;
    const out: string[] = [];
    for (let y = 0; y < term.rows; y++) out.push(buf.getLine(buf.viewportY + y)?.translateToString(true) ?? '');
    return out;
  };
  const screen = () => lines().join('\n');

  const waitUntil = async (check: (s: string) => boolean, what: string, timeoutMs = 15_000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let s = screen();
      if (check(s)) {
        // A frame reaches the emulator in pieces: hand back the screen only once it has
        // settled (unchanged for a moment), or a test could read a half-drawn frame.
        for (;;) {
          await new Promise((r) => setTimeout(r, 40));
          const again = screen();
          if (again === s) return s;
          s = again;
          if (!check(s)) break;
        }
        if (check(s)) return s;
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; screen:\n${s}`);
      if (exited) {
        // Let the last bytes reach the emulator, then look once more.
        await new Promise((r) => setTimeout(r, 100));
        const last = screen();
        if (check(last)) return last;
        throw new Error(`the process exited while waiting for ${what}; screen:\n${last}\nraw tail:\n${JSON.stringify(raw.slice(-2000))}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const t: Term = {
    pid: proc.pid,
    dir,
    lines,
    screen,
    waitUntil,
    waitFor: (text, timeoutMs) =>
      waitUntil((s) => (typeof text === 'string' ? s.includes(text) : text.test(s)), JSON.stringify(String(text)), timeoutMs),
    type: (text) => {
      if (!exited) proc.write(text);
    },
    press: (key) => {
      if (!exited) proc.write(KEYS[key]);
    },
    resize: (c, r) => {
      if (!exited) proc.resize(c, r);
      term.resize(c, r);
    },
    exit,
    get exited() {
      return exited;
    },
    output: () => raw,
    kill: (signal = 'SIGKILL') => {
      if (!exited) {
        try {
          proc.kill(signal);
        } catch {
          // gone already
        }
      }
      live.delete(t);
      if (ownDir && !removed) {
        removed = true;
        // Now, not when the exit event comes: a test worker may end before it does. Children of
        // a killed app (VMs, relay) notice their parent is gone and exit by themselves.
        try {
          fs.rmSync(dir, { recursive: true, force: true });
        } catch {
          // a socket still being created in it; the OS temp dir is cleaned eventually
        }
      }
      term.dispose();
    },
  };
  live.add(t);
  return t;
}

/** Kills every terminal still open (for afterEach). */
export function killAllTerms(): void {
  for (const t of [...live]) t.kill();
}

/** Pids of processes whose command line contains every one of `needles`, read from /proc. */
export function pidsWith(...needles: string[]): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmd: string;
    try {
      cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (needles.every((n) => cmd.includes(n))) out.push(Number(entry));
  }
  return out;
}

/** Polls until `fn()` is truthy; throws with `what` after `timeoutMs`. */
export async function eventually<T>(fn: () => T, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
