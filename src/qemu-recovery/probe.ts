/**
 * Learn the "ram" section id and RAMBlock list of a QEMU configuration by starting one more
 * QEMU with the same options and reading the head of its outgoing migration stream.
 *
 * Why: a resumed stream carries RAM only inside the section the original source opened
 * (SECTION_START "ram" with its id), and the destination refuses a section id it has not
 * seen ("Unknown savevm section"). No QMP command reports it. The id comes from the order in
 * which QEMU registers its savevm handlers, so the same binary with the same options gives
 * the same id. The probe runs after the original source is gone (one QEMU at a time).
 */
import net from 'node:net';
import { join } from 'node:path';
import { startQemu, type StartQemuOptions } from '../qemu/launcher.js';
import { findRamSection, QEMU_VM_FILE_MAGIC, type RamSectionInfo } from './wire.js';

/** Bytes of stream head read before giving up on finding the ram section. */
const HEAD_LIMIT = 1 << 20;

export async function probeRamSection(
  opts: Omit<StartQemuOptions, 'qmpSocket' | 'serialFile' | 'incoming'>,
  runtimeDir: string,
  timeoutMs = 20_000,
): Promise<RamSectionInfo> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const found = new Promise<RamSectionInfo>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the probe QEMU's stream showed no ram section within ${timeoutMs} ms`)), timeoutMs);
    server.once('connection', (sock) => {
      let head = Buffer.alloc(0);
      sock.on('data', (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        try {
          if (head.length >= 4 && head.readUInt32BE(0) !== QEMU_VM_FILE_MAGIC) throw new Error(`the probe's stream does not start with QEMU's magic (got 0x${head.readUInt32BE(0).toString(16)})`);
          const info = findRamSection(head);
          if (info || head.length > HEAD_LIMIT) {
            clearTimeout(timer);
            sock.destroy();
            if (info) resolve(info);
            else reject(new Error(`no ram section in the first ${head.length} bytes of the probe's stream`));
          }
        } catch (e) {
          clearTimeout(timer);
          sock.destroy();
          reject(e as Error);
        }
      });
      sock.on('error', () => {});
    });
  });
  const vm = await startQemu({ ...opts, qmpSocket: join(runtimeDir, 'probe.qmp'), name: 'x-recovery-probe' });
  try {
    await vm.control.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    return await found;
  } finally {
    await vm.control.execute('migrate_cancel').catch(() => {});
    await vm.stop();
    server.close();
  }
}
