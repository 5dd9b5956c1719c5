/**
 * Real sim VM processes, driven over QMP: commands in the wrong state, unknown commands and bad
 * arguments get QEMU's error class and text, and the VM keeps running through all of it.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpError } from '../../../src/qmp/error.js';
import { ensureBuilt, freePort, setCaps, startVm, tempDir, waitFor, type SimVmProcess } from '../../helpers/sim.js';

let dir: string;
let src: SimVmProcess;
let dst: SimVmProcess;

beforeAll(async () => {
  await ensureBuilt();
  dir = tempDir();
  [src, dst] = await Promise.all([startVm({ role: 'source', dir }), startVm({ role: 'destination', dir })]);
}, 240_000);

afterAll(async () => {
  await Promise.all([src?.stop(), dst?.stop()]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs a command expecting a QMP error; returns it. */
async function refused(vm: SimVmProcess, cmd: string, args?: Record<string, unknown>, oob = false): Promise<QmpError> {
  try {
    await (oob ? vm.qmp.executeOob(cmd, args) : vm.exec(cmd, args));
  } catch (e) {
    expect(e).toBeInstanceOf(QmpError);
    return e as QmpError;
  }
  throw new Error(`${cmd} was accepted`);
}

async function guestProgress(vm: SimVmProcess): Promise<number> {
  return (await vm.pages()).guest.progress;
}

describe('sim VM over QMP: errors with QEMU texts, and the VM keeps running', () => {
  it('greets as the default emulated QEMU (the newest, 10.0) and negotiates oob', () => {
    expect(src.qmp.greeting).toMatchObject({ QMP: { version: { qemu: { major: 10, minor: 0 } }, capabilities: ['oob'] } });
    expect(src.qmp.oobEnabled).toBe(true);
  });

  it('migrate-recover when not paused', async () => {
    const e = await refused(dst, 'migrate-recover', { uri: 'tcp:127.0.0.1:1' });
    expect(e.errorClass).toBe('GenericError');
    expect(e.message).toBe('Migrate recover can only be run when postcopy is paused.');
    // Out-of-band too (QEMU allows migrate-recover via exec-oob): same answer.
    expect((await refused(dst, 'migrate-recover', { uri: 'tcp:127.0.0.1:1' }, true)).message).toBe('Migrate recover can only be run when postcopy is paused.');
  });

  it('migrate resume=true without a paused migration', async () => {
    const e = await refused(src, 'migrate', { uri: 'tcp:127.0.0.1:1', resume: true });
    expect(e.errorClass).toBe('GenericError');
    expect(e.message).toBe('Cannot resume if there is no paused migration');
    expect(await src.status()).toBe('none');
  });

  it('migrate-start-postcopy without the postcopy-ram capability', async () => {
    const e = await refused(src, 'migrate-start-postcopy');
    expect(e.errorClass).toBe('GenericError');
    expect(e.message).toBe('Enable postcopy with migrate_set_capability before the start of migration');
  });

  it('migrate-pause outside postcopy, on either side', async () => {
    for (const vm of [src, dst]) {
      const e = await refused(vm, 'migrate-pause', undefined, true);
      expect(e.message).toBe('migrate-pause is currently only supported during postcopy-active or postcopy-recover state');
    }
  });

  it('an unknown command is CommandNotFound', async () => {
    const e = await refused(src, 'x-no-such-command');
    expect(e.errorClass).toBe('CommandNotFound');
    expect(e.message).toBe('The command x-no-such-command has not been found');
    // QEMU's HMP-style name is not a QMP command either.
    expect((await refused(src, 'migrate_set_capability')).errorClass).toBe('CommandNotFound');
  });

  it('bad argument types, missing and unexpected arguments', async () => {
    expect((await refused(src, 'migrate', { uri: 4444 })).message).toBe("Invalid parameter type for 'uri', expected: string");
    // As 10.0 (the default emulation) says it: its migrate takes `uri` or `channels`.
    expect((await refused(src, 'migrate', {})).message).toBe("need either 'uri' or 'channels' argument");
    expect((await refused(src, 'migrate', { uri: 'tcp:127.0.0.1:1', resume: 'yes' })).message).toBe("Invalid parameter type for 'resume', expected: boolean");
    expect((await refused(src, 'migrate', { uri: 'tcp:127.0.0.1:1', bogus: 1 })).message).toBe("Parameter 'bogus' is unexpected");
    expect((await refused(src, 'migrate-set-capabilities', { capabilities: 'postcopy-ram' })).message).toBe(
      "Invalid parameter type for 'capabilities', expected: array",
    );
    expect((await refused(src, 'migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-ram', state: 1 }] })).message).toBe(
      "Invalid parameter type for 'capabilities[0].state', expected: boolean",
    );
    expect((await refused(src, 'migrate-set-capabilities', { capabilities: [{ capability: 'no-such-cap', state: true }] })).message).toMatch(
      /^Parameter 'capability' does not accept value 'no-such-cap'/,
    );
    expect((await refused(src, 'migrate-set-parameters', { 'max-bandwidth': -1 })).message).toMatch(/^Parameter 'max-bandwidth' expects a value between 0 and/);
    expect((await refused(src, 'migrate-set-parameters', { 'downtime-limit': 1.5 })).message).toBe("Invalid parameter type for 'downtime-limit', expected: integer");
    expect((await refused(src, 'migrate', { uri: 'unix:/tmp/x' })).message).toMatch(/TCP only/);
    expect((await refused(src, 'migrate', { uri: 'tcp:127.0.0.1:99999' })).message).toMatch(/expected 1-65535/);
    expect((await refused(src, 'migrate', { uri: 'nonsense' })).message).toMatch(/^Invalid migration URI 'nonsense'/);
    // A capability without state is refused, and nothing changes.
    expect((await refused(src, 'migrate-set-capabilities', { capabilities: [{ capability: 'postcopy-ram' }] })).message).toBe(
      "Parameter 'capabilities[0].state' is missing",
    );
    const caps = await src.exec<Array<{ capability: string; state: boolean }>>('query-migrate-capabilities');
    expect(caps.find((c) => c.capability === 'postcopy-ram')?.state).toBe(false);
  });

  it('exec-oob of a command that does not allow it', async () => {
    const e = await refused(src, 'query-status', undefined, true);
    expect(e.message).toBe('The command query-status does not support OOB');
  });

  it('the destination refuses source commands and cont before the migration', async () => {
    expect((await refused(dst, 'migrate', { uri: 'tcp:127.0.0.1:1' })).message).toBe('Guest is waiting for an incoming migration');
    expect((await refused(dst, 'cont')).message).toBe('Guest is waiting for an incoming migration');
    expect((await refused(dst, 'migrate-start-postcopy')).message).toBe('Enable postcopy with migrate_set_capability before the start of migration');
  });

  it('migrate-incoming on a port already in use: a QMP error naming the port; a free port then works', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen({ host: '127.0.0.1', port: 0 }, () => r()));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const e = await refused(dst, 'migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
      expect(e.errorClass).toBe('GenericError');
      expect(e.message).toContain(`Failed to bind socket 127.0.0.1:${port}: Address already in use`);
      expect(e.message).toMatch(/choose another port/);
      expect(await dst.status()).toBe('none');
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
    await setCaps(dst, { events: true });
    await dst.exec('migrate-incoming', { uri: `tcp:127.0.0.1:${await freePort()}` });
    expect(await dst.status()).toBe('setup');
    expect((await refused(dst, 'migrate-incoming', { uri: `tcp:127.0.0.1:${await freePort()}` })).message).toBe(
      'The incoming migration has already been started',
    );
  });

  it('migrate to a port where nothing listens fails the migration; the source guest keeps running', async () => {
    await setCaps(src, { events: true });
    const before = await guestProgress(src);
    await src.exec('migrate', { uri: `tcp:127.0.0.1:${await freePort()}` });
    await waitFor(async () => (await src.status()) === 'failed', 'source failed');
    const q = await src.exec<{ status: string; 'error-desc'?: string }>('query-migrate');
    expect(q['error-desc']).toMatch(/Connection refused/);
    expect(src.statuses).toEqual(['setup', 'failed']);
    expect(await src.exec('query-status')).toMatchObject({ status: 'running', running: true });
    await waitFor(async () => (await guestProgress(src)) > before, 'the source guest to make progress');
  });

  it('after every error both VMs still answer and the source guest still runs', async () => {
    expect(src.alive() && dst.alive()).toBe(true);
    expect(await src.exec('query-status')).toMatchObject({ status: 'running', running: true });
    expect(await dst.exec('query-status')).toMatchObject({ status: 'inmigrate', running: false });
    const p = await guestProgress(src);
    await waitFor(async () => (await guestProgress(src)) > p, 'the source guest to make progress');
  });
});
