import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import chalk from 'chalk';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT, runTui } from '../../../src/ui/app.js';
import { FakeSession } from '../../helpers/fake-session.js';
import { plain, waitFor } from './helpers.js';

class FakeTty extends EventEmitter {
  isTTY = true;
  columns = 100;
  rows = 30;
  out = '';
  write = (s: string) => {
    this.out += s;
    return true;
  };
}

class FakeStdin extends EventEmitter {
  isTTY = true;
  rawMode = false;
  private data: string | null = null;
  setRawMode(on: boolean) {
    this.rawMode = on;
  }
  setEncoding() {}
  resume() {}
  pause() {}
  ref() {}
  unref() {}
  read = () => {
    const d = this.data;
    this.data = null;
    return d;
  };
  type(s: string) {
    this.data = s;
    this.emit('readable');
  }
}

const LABS = [{ id: 'link-cut-recovery', title: 'Link cut recovery', summary: 'Cut and recover.' }];
let dir: string;
const level = chalk.level;
afterEach(() => {
  chalk.level = level;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function start(env: Record<string, string | undefined> = {}, onStop?: (stop: (code: number) => Promise<void>) => void) {
  dir = mkdtempSync(join(tmpdir(), 'pcl-tui-'));
  const stdout = new FakeTty();
  const stderr = new FakeTty();
  const stdin = new FakeStdin();
  const session = new FakeSession();
  const done = runTui({
    labs: LABS,
    openLab: async () => session,
    initialLab: 'link-cut-recovery',
    progressPath: join(dir, 'progress.json'),
    stdin: stdin as unknown as NodeJS.ReadStream,
    stdout: stdout as unknown as NodeJS.WriteStream,
    stderr: stderr as unknown as NodeJS.WriteStream,
    env,
    // vitest's console cannot be patched (no console.Console); the app's default is true.
    patchConsole: false,
    onStop,
  });
  return { stdout, stderr, stdin, session, done };
}

/** q, and y to the question it asks: the fake lab is in postcopy-active, where quitting loses the guest. */
async function quit(t: ReturnType<typeof start>) {
  t.stdin.type('q');
  await waitFor(() => plain(t.stdout.out).includes('Quit?'), 'the quit question');
  t.stdin.type('y');
}

describe('runTui', () => {
  it('uses the alternate screen, and on q stops the lab and restores the terminal', async () => {
    const t = start();
    await waitFor(() => plain(t.stdout.out).includes('Steps 2/3'), 'lab screen');
    expect(t.stdout.out.startsWith('\u001b[?1049h')).toBe(true);
    expect(t.stdin.rawMode).toBe(true);
    await quit(t);
    expect(await t.done).toBe(EXIT.ok);
    expect(t.session.callsOf('stop')).toHaveLength(1);
    expect(t.stdout.out).toContain('\u001b[?1049l');
    expect(t.stdout.out.endsWith('\u001b[?25h')).toBe(true);
    expect(t.stdin.rawMode).toBe(false);
  });

  it('Esc then a key in one read is Esc, then the key (through the app\'s one key subscription)', async () => {
    const t = start();
    await waitFor(() => plain(t.stdout.out).includes('Steps 2/3'), 'lab screen');
    t.stdin.type(':');
    await waitFor(() => plain(t.stdout.out).includes('QMP console to destination'), 'the console');
    t.stdin.type('\u001bh');
    await waitFor(() => t.session.callsOf('nextHint').length === 1, 'a hint asked for');
    await quit(t);
    await t.done;
  });

  it('Ctrl-C exits 130 and stops the lab', async () => {
    const t = start();
    await waitFor(() => plain(t.stdout.out).includes('Steps 2/3'), 'lab screen');
    t.stdin.type('\u0003');
    expect(await t.done).toBe(EXIT.interrupted);
    expect(t.session.callsOf('stop')).toHaveLength(1);
  });

  it('installs no signal or error handlers of its own: the CLI owns exit', async () => {
    const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'uncaughtException', 'unhandledRejection'] as const;
    const before = events.map((e) => process.listenerCount(e));
    const t = start();
    await waitFor(() => plain(t.stdout.out).includes('Steps 2/3'), 'lab screen');
    expect(events.map((e) => process.listenerCount(e))).toEqual(before);
    await quit(t);
    await t.done;
  });

  it('hands the caller a stop step that stops the lab and restores the terminal (what a signal runs)', async () => {
    let stop: ((code: number) => Promise<void>) | undefined;
    const t = start({}, (s) => (stop = s));
    await waitFor(() => plain(t.stdout.out).includes('Steps 2/3'), 'lab screen');
    expect(stop).toBeDefined();
    // Two signals in a row: both wait for the same restore, and the lab is stopped once.
    const [a, b] = [stop!(143), stop!(129)];
    await Promise.all([a, b]);
    // By the time the step resolves the terminal is back: the caller may exit at once.
    expect(t.session.callsOf('stop')).toHaveLength(1);
    expect(t.stdout.out).toContain('\u001b[?1049l');
    expect(t.stdout.out.endsWith('\u001b[?25h')).toBe(true);
    expect(t.stdin.rawMode).toBe(false);
    expect(await t.done).toBe(143);
  });

  it('reports a session that fails to stop, after restoring the terminal', async () => {
    const t = start();
    t.session.stop = async () => {
      throw new Error('qemu would not die');
    };
    await waitFor(() => plain(t.stdout.out).includes('Steps 2/3'), 'lab screen');
    await quit(t);
    expect(await t.done).toBe(EXIT.ok);
    expect(t.stderr.out).toContain('stopping the lab: qemu would not die');
  });

  it('NO_COLOR turns colour off', async () => {
    chalk.level = 3;
    const t = start({ NO_COLOR: '1' });
    await waitFor(() => plain(t.stdout.out).includes('Steps 2/3'), 'lab screen');
    expect(chalk.level).toBe(0);
    // No SGR colour codes (38;/39m) in the frames; cursor and screen control remain.
    // eslint-disable-next-line no-control-regex
    expect(t.stdout.out).not.toMatch(/\u001b\[3[0-9]m/);
    await quit(t);
    await t.done;
  });
});
