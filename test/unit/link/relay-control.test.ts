import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RelayControl, serveControl, type ControlTarget } from '../../../src/link/relay-control.js';
import type { LinkSnapshot } from '../../../src/types.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function serve(): Promise<{ server: net.Server; control: RelayControl; accepted: () => number; snapshots: () => number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-control-'));
  let n = 0;
  let accepted = 0;
  const target: ControlTarget = {
    apply() {},
    restore() {},
    snapshot: () => ({ connections: ++n }) as unknown as LinkSnapshot,
    quit() {},
  };
  const server = await serveControl(path.join(dir, 'c.sock'), target);
  server.on('connection', () => accepted++);
  const control = new RelayControl(path.join(dir, 'c.sock'), 2000);
  cleanups.push(() => {
    control.close();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { server, control, accepted: () => accepted, snapshots: () => n };
}

describe('RelayControl', () => {
  it('sends every request on one connection and matches responses in order', async () => {
    const { control, accepted } = await serve();
    const answers = await Promise.all([control.snapshot(), control.snapshot(), control.request({ cmd: 'nope' }).catch((e: Error) => e.message), control.snapshot()]);
    expect(answers.map((a) => (typeof a === 'string' ? a : (a as LinkSnapshot).connections))).toEqual([1, 2, expect.stringMatching(/unknown cmd "nope"/), 3]);
    expect((await control.snapshot()).connections).toBe(4);
    expect(accepted()).toBe(1);
  });

  it('connects again after its connection was closed', async () => {
    const { control, accepted } = await serve();
    await control.snapshot();
    control.close();
    expect((await control.snapshot()).connections).toBe(2);
    expect(accepted()).toBe(2);
  });

  it('fails a request when the socket is not there, naming the path', async () => {
    const control = new RelayControl(path.join(os.tmpdir(), 'no-such-relay-control.sock'), 2000);
    await expect(control.snapshot()).rejects.toThrow(/relay control .*no-such-relay-control\.sock: .*ENOENT/);
  });
});
