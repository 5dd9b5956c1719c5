/**
 * `postcopy-lab recovery-source --qemu-frozen FILE (--connect HOST:PORT | --qmp SOCK) --qemu BIN
 *  --image ROM --memory MIB [--machine M] [--accel kvm|tcg] [--partial] [--json]`: finish a real QEMU destination's
 * paused postcopy migration whose source is gone, from that source's RAM saved while it was
 * postcopy-paused (`pmemsave {val: 0, size: RAM}`).
 *
 * With --connect the destination must already listen (`migrate-recover {uri}`) at HOST:PORT and
 * the result is printed; with --qmp it is a process started like a VM (qmp-front.ts) that
 * connects when told `migrate {uri, resume: true}`. QEMU options
 * must be the source's (they fix the "ram" section id and the RAMBlocks, learned by a probe
 * QEMU started here; run it after the source is gone, one QEMU at a time).
 */
import fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { probeRamSection } from './probe.js';
import { runQmpFront } from './qmp-front.js';
import { RecoveryIncompleteError, serveQemuResume, type FrozenReader } from './serve.js';
import { TARGET_PAGE_SIZE } from './wire.js';

export class QemuRecoveryUsageError extends Error {}

const USAGE =
  'postcopy-lab recovery-source --qemu-frozen FILE (--connect HOST:PORT | --qmp SOCK) --qemu BIN --image ROM --memory MIB [--machine pc] [--accel kvm|tcg] [--partial] [--json]';

/**
 * pc.ram from a `pmemsave` file of guest-physical [0, RAM), read page by page (a large guest's
 * file is never held in memory). Guest-physical 0xa0000-0xfffff is VGA and firmware, not
 * pc.ram, so those pages are not held; nor are other RAMBlocks (ROMs, ACPI tables): a
 * destination lacking one of them is refused before anything resumes.
 */
export function pcRamFromFile(fd: number, ramBytes: number): FrozenReader {
  const size = Math.min(fs.fstatSync(fd).size, ramBytes);
  return (idstr, offset) => {
    if (idstr !== 'pc.ram' || offset + TARGET_PAGE_SIZE > size) return null;
    if (offset >= 0xa0000 && offset < 0x100000) return null;
    const page = Buffer.alloc(TARGET_PAGE_SIZE);
    if (fs.readSync(fd, page, 0, TARGET_PAGE_SIZE, offset) !== TARGET_PAGE_SIZE) return null;
    return page;
  };
}

/** Pages of pc.ram that pcRamFromFile gives (all but the VGA/firmware window). */
export function heldPcRamPages(fd: number, ramBytes: number): number {
  const pages = Math.floor(Math.min(fs.fstatSync(fd).size, ramBytes) / TARGET_PAGE_SIZE);
  const hole = Math.max(0, Math.min(pages, 0x100000 / TARGET_PAGE_SIZE) - 0xa0000 / TARGET_PAGE_SIZE);
  return pages - hole;
}

const given = (v: string | boolean | undefined): boolean => typeof v === 'string' && v !== '';
const joinOr = (xs: string[], word: string): string => (xs.length < 2 ? xs.join('') : `${xs.slice(0, -1).join(', ')} ${word} ${xs[xs.length - 1]}`);

/** Every required option not given, all at once (one message, not one per rerun). */
export function missingOptions(values: Record<string, string | boolean | undefined>): string[] {
  const missing: string[] = [];
  if (!given(values['qemu-frozen'])) missing.push('--qemu-frozen FILE');
  if (!given(values.connect) && !given(values.qmp)) missing.push('--connect HOST:PORT (or --qmp SOCK)');
  if (!given(values.qemu)) missing.push('--qemu BIN');
  if (!given(values.image)) missing.push('--image ROM');
  if (!given(values.memory)) missing.push('--memory MIB');
  return missing;
}

export async function runQemuRecoverySource(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s),
  addCleanup: (c: () => Promise<void>) => void = () => {},
): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        'qemu-frozen': { type: 'string' },
        connect: { type: 'string' },
        qmp: { type: 'string' },
        qemu: { type: 'string' },
        image: { type: 'string' },
        memory: { type: 'string' },
        machine: { type: 'string' },
        accel: { type: 'string' },
        json: { type: 'boolean' },
        partial: { type: 'boolean' },
      },
    }));
  } catch (e) {
    throw new QemuRecoveryUsageError(`${(e as Error).message.replace(/\. To specify.*$/, '')}; usage: ${USAGE}`);
  }
  const missing = missingOptions(values);
  if (missing.length > 0) throw new QemuRecoveryUsageError(`missing ${joinOr(missing, 'and')}; usage: ${USAGE}`);
  // Given, every one of them: missingOptions checked.
  const need = (k: string): string => String(values[k]);
  const frozenPath = need('qemu-frozen');
  const qmpPath = typeof values.qmp === 'string' && values.qmp !== '' ? values.qmp : null;
  if (qmpPath && values.connect !== undefined) throw new QemuRecoveryUsageError(`--connect and --qmp: give one (--connect serves at once; --qmp waits for migrate {uri, resume: true}); usage: ${USAGE}`);
  const m = qmpPath ? ['', '', '1'] : /^(.+):(\d{1,5})$/.exec(need('connect'));
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new QemuRecoveryUsageError(`--connect: '${String(values.connect)}' must be HOST:PORT (where the destination's migrate-recover listens)`);
  const memoryMiB = Number(need('memory'));
  if (!Number.isInteger(memoryMiB) || memoryMiB < 2) throw new QemuRecoveryUsageError(`--memory: '${String(values.memory)}' must be the source's -m in MiB (an integer >= 2)`);
  const accel = values.accel ?? 'tcg';
  if (accel !== 'kvm' && accel !== 'tcg') throw new QemuRecoveryUsageError(`--accel: '${String(accel)}' must be kvm or tcg`);
  let fd: number;
  try {
    fd = fs.openSync(frozenPath, 'r');
  } catch (e) {
    throw new QemuRecoveryUsageError(`--qemu-frozen: cannot open ${frozenPath}: ${(e as Error).message}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'pcl-qrec-'));
  const log = (l: string): void => void process.stderr.write(`[recovery-source] ${l}\n`);
  try {
    const ram = await probeRamSection(
      { bin: need('qemu'), image: need('image'), imageKind: 'rom', memoryMiB, kvm: accel === 'kvm', ...(typeof values.machine === 'string' ? { machine: values.machine } : {}) },
      dir,
    );
    log(`ram section ${ram.sectionId}, RAMBlocks ${ram.blocks.map((b) => `${b.idstr} (${b.length} bytes)`).join(', ')}`);
    if (qmpPath) {
      const ramBytes = memoryMiB * 1024 * 1024;
      return await runQmpFront({
        qmpPath,
        file: frozenPath,
        ram,
        frozen: pcRamFromFile(fd, ramBytes),
        heldPages: heldPcRamPages(fd, ramBytes),
        ramBytes,
        partial: values.partial === true,
        log,
        addCleanup,
      });
    }
    const result = await serveQemuResume({ host: m[1], port: Number(m[2]), ram, frozen: pcRamFromFile(fd, memoryMiB * 1024 * 1024), log, partial: values.partial === true });
    if (result.unheld) {
      const e = new RecoveryIncompleteError(result.unheld);
      const message = e.message.replace(/; nothing was resumed.*$/, `; the ${result.pagesSent} held pages were served and the destination left postcopy-paused`);
      out(values.json ? `${JSON.stringify({ error: 'recovery-incomplete', partial: true, message, pagesSent: result.pagesSent, unheld: result.unheld })}\n` : `recovery-incomplete: ${message}\n`);
      return 1;
    }
    out(values.json ? `${JSON.stringify(result)}\n` : `sent ${result.pagesSent} pages; the destination ${result.shut === 0 ? 'finished (MIG_RP_MSG_SHUT 0)' : `ended with ${result.shut === null ? 'no MIG_RP_MSG_SHUT' : `MIG_RP_MSG_SHUT ${result.shut}`}`}\n`);
    return result.shut === 0 ? 0 : 1;
  } catch (e) {
    if (e instanceof RecoveryIncompleteError) {
      out(values.json ? `${JSON.stringify({ error: 'recovery-incomplete', message: e.message, unheld: e.unheld })}\n` : `recovery-incomplete: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    fs.closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}
