/**
 * The labs in teaching order, and `list`'s line for each. The picker takes the same order, so
 * a newcomer meets the labs in the order their texts build on each other.
 */
import type { LabListing } from '../lab/load.js';

/**
 * The order a newcomer should take the labs in. Every lab in labs/ must be named here (a test
 * checks it): one left out would land after these, by id, wherever the alphabet puts it.
 */
export const LAB_ORDER = [
  'postcopy-basics',
  'precopy-failure',
  'link-cut-recovery',
  'blackhole',
  'double-failure',
  'qemu-recover-hang',
  'walk-recovery',
  'recovery-file',
  'recovery-file-window',
  // recovery-file on a real QEMU: the stand-in source replaces the sim's x-recovery-file.
  'qemu-recovery-file',
  'throttle-vs-postcopy',
  'many-vcpus',
  'postcopy-preempt',
  // libvirt's own words for what the labs above did by hand; its silent blackhole, the hardest, last.
  'libvirt-postcopy-recovery',
  'libvirt-double-failure',
  'libvirt-postcopy-pause',
  'libvirt-blackhole',
];

/** The labs in LAB_ORDER; any not named there after them, by id. */
export function orderLabs<T extends { id: string }>(labs: T[]): T[] {
  const rank = (id: string) => (LAB_ORDER.includes(id) ? LAB_ORDER.indexOf(id) : LAB_ORDER.length);
  return [...labs].sort((a, b) => rank(a.id) - rank(b.id) || a.id.localeCompare(b.id));
}

/**
 * Where a lab runs, when that is not everywhere, with the QEMU range its file declares:
 * "[sim, QEMU >=8.2]", "[sim only, as QEMU >=7.2]", "[QEMU >=7.2 only]", "[libvirt only]"; empty
 * for a lab that runs on more than one backend and holds for every QEMU.
 */
export function whereLabRuns(l: Pick<LabListing, 'backends' | 'qemu'>): string {
  const range = l.qemu ? `QEMU ${l.qemu}` : undefined;
  const names = l.backends.map((b) => (b === 'qemu' ? (range ?? 'qemu') : b));
  // On the qemu backend the range is already its name; elsewhere it follows the backends.
  // The sim alone holds the range as the versions it emulates ("as"): beside "[sim, QEMU
  // >=7.2]" (also on real QEMU) the two read alike to a newcomer.
  const extra = range && !l.backends.includes('qemu') ? (l.backends.length === 1 && l.backends[0] === 'sim' ? `, as ${range}` : `, ${range}`) : '';
  if (names.length === 1) return `[${names[0]} only${extra}]`;
  return range ? `[${names.join(', ')}${extra}]` : '';
}

/**
 * For the picker: a lab the TUI's backend cannot run, tagged as `list` tags it, with the exact
 * command that starts it (libvirt's daemons need root). Undefined when this backend runs it.
 */
export function elsewhere(l: Pick<LabListing, 'id' | 'backends'>, backend: string): { tag: string; command: string } | undefined {
  if (l.backends.includes(backend as LabListing['backends'][number])) return undefined;
  const to = l.backends[0];
  // As the README's commands run it from a clone (npx finds the local bin; a bare postcopy-lab
  // is on no PATH after npm install, as a newcomer found).
  const command = `${to === 'libvirt' ? 'sudo ' : ''}npx postcopy-lab lab ${l.id} --backend ${to}`;
  return { tag: `[${l.backends.join(', ')}${l.backends.length === 1 ? ' only' : ''}]`, command };
}
