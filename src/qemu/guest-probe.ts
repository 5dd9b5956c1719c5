/**
 * Watching and verifying a running test guest: its serial markers (booted, passes done) and
 * the consistency of its memory. Used by the QEMU backend and its tests alike.
 */
import { readFile } from 'node:fs/promises';
import type { QmpClient } from '../qmp/client.js';
import { checkConsistencyFile, type ConsistencyResult, type DumpLayout } from './consistency.js';
import { BOOT_MARKER, OPS_ADDRESS, PASS_MARKER } from './guest-image.js';

export interface SerialMarkers {
  /** The guest reached protected mode. */
  booted: boolean;
  /** Full passes over the range written since this serial file was opened. */
  passes: number;
}

/** Read the markers a guest wrote to its `-serial file:` so far (a missing file reads as none). */
export async function readMarkers(serialFile: string): Promise<SerialMarkers> {
  let text: string;
  try {
    text = await readFile(serialFile, 'latin1');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { booted: false, passes: 0 };
    throw e;
  }
  let passes = 0;
  for (let i = 0; i < text.length; i++) if (text[i] === PASS_MARKER) passes++;
  return { booted: text.includes(BOOT_MARKER), passes };
}

/**
 * Wait until the serial file shows at least `passes` pass markers. A destination's serial file
 * holds only what the guest wrote after it resumed there, so this also proves the migrated
 * guest runs. Rejects after `timeoutMs` saying what was seen.
 */
export async function waitForPasses(serialFile: string, passes: number, timeoutMs: number, pollMs = 50): Promise<SerialMarkers> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await readMarkers(serialFile);
    if (m.passes >= passes) return m;
    if (Date.now() >= deadline) {
      throw new Error(
        `the guest wrote ${m.passes} of ${passes} pass markers to ${serialFile} within ${timeoutMs} ms (${m.booted ? 'it booted' : 'no boot marker either'})`,
      );
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * Pause the guest (`stop`, so memory holds still), save its RAM from address 0 up to the end
 * of the written range with `pmemsave`, and check the increment pattern. QEMU writes `dumpPath`
 * itself, so it must be a path the QEMU process can create. Leaves the guest paused.
 */
export async function verifyGuestMemory(qmp: QmpClient, layout: DumpLayout, dumpPath: string): Promise<ConsistencyResult> {
  await qmp.execute('stop');
  await qmp.execute('pmemsave', { val: 0, size: layout.endAddress, filename: dumpPath }, { timeoutMs: 60_000 });
  return checkConsistencyFile(dumpPath, { ...layout, dumpBase: 0 });
}

/**
 * The guest's ops counter (completed writes, a u64 at OPS_ADDRESS), read with HMP `xp` through
 * `human-monitor-command`: one round trip, no file, the same on QEMU 7.2 and 10.0.
 */
export async function readGuestOps(qmp: QmpClient): Promise<number> {
  const out = await qmp.execute<string>('human-monitor-command', { 'command-line': `xp /2wx 0x${OPS_ADDRESS.toString(16)}` }, { timeoutMs: 5000 });
  return parseOpsDump(out);
}

/** Parse `xp /2wx` output ("0000000000009000: 0x0000abcd 0x00000000") into the u64 it shows. */
export function parseOpsDump(out: string): number {
  const m = /:\s*0x([0-9a-f]{1,8})\s+0x([0-9a-f]{1,8})/i.exec(out);
  if (!m) throw new Error(`cannot read the guest's ops counter from the monitor's reply: ${JSON.stringify(out.slice(0, 200))}`);
  return parseInt(m[2], 16) * 2 ** 32 + parseInt(m[1], 16);
}
