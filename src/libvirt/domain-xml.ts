/**
 * The libvirt domain of the project's generated test guest (src/qemu/guest-image.ts, the ROM
 * form): the same machine the QEMU backend starts with `-bios`, described so libvirt starts it.
 *
 *   - `<loader type='rom'>`: the guest is the firmware; no SeaBIOS, no disk (so nothing to
 *     share between the hosts, and nothing for a non-shared-storage migration to copy);
 *   - a versioned machine (`pc-i440fx-7.2`) both QEMU 7.2 and 10.0 have, identical on both sides;
 *   - `<features><acpi/></features>`: QEMU's own default; without it libvirt 9.0 passes
 *     `-no-acpi`, which QEMU 10.0 rejects;
 *   - no USB controller, no balloon, no video: less device state, nothing the ROM needs;
 *   - COM1 to a file: the guest's boot and pass markers;
 *   - an extra QMP monitor through `<qemu:commandline>` (libvirt marks the domain tainted
 *     `custom-argv`): what libvirt does not give, read by us (memory verification, the guest's
 *     counter) and the way out of a blackhole libvirt has no command for (`migrate-pause` on the
 *     destination). Its path is inside the daemon's bind-mounted run directory, so the source's
 *     and the destination's QEMU, started from the same XML, get different sockets.
 */

export interface DomainXmlOptions {
  /** The domain's name, the same on both hosts. */
  name: string;
  memoryMiB: number;
  /** The generated ROM, as a path QEMU can open. */
  rom: string;
  /** The QEMU binary (or the wrapper of an unpacked QEMU that finds its own modules); absent: the daemon's default. */
  emulator?: string;
  /** Default pc-i440fx-7.2. */
  machine?: string;
  /** 'kvm' (default) or 'qemu' (TCG). */
  type?: 'kvm' | 'qemu';
  /** The extra QMP socket, as a path inside the daemon's mount namespace; absent on a remote host (out of reach). */
  qmpSocket?: string;
  /** Where COM1 goes, inside the daemon's mount namespace; absent on a remote host (nothing would read it). */
  serialFile?: string;
}

export const DEFAULT_MACHINE = 'pc-i440fx-7.2';
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const MACHINE_RE = /^[a-z0-9][a-z0-9_.-]*$/;

/** XML text and attribute escaping (paths may hold `&` or quotes). */
export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function absolute(p: string, field: string): string {
  if (typeof p !== 'string' || !p.startsWith('/')) throw new Error(`${field} must be an absolute path, got ${JSON.stringify(p)}`);
  // QEMU's option syntax splits on commas (-qmp unix:PATH,server=on): a comma would be misread.
  if (p.includes(',')) throw new Error(`${field} must not contain a comma (QEMU would split the option there): ${p}`);
  return p;
}

export function buildDomainXml(o: DomainXmlOptions): string {
  if (!NAME_RE.test(o.name)) throw new Error(`domain name ${JSON.stringify(o.name)} must be 1 to 63 characters from [a-zA-Z0-9_.-], starting with a letter or digit`);
  if (!Number.isInteger(o.memoryMiB) || o.memoryMiB < 16) throw new RangeError(`memoryMiB must be an integer >= 16, got ${o.memoryMiB}`);
  const machine = o.machine ?? DEFAULT_MACHINE;
  if (!MACHINE_RE.test(machine)) throw new Error(`machine ${JSON.stringify(machine)} is not a QEMU machine type name (e.g. ${DEFAULT_MACHINE})`);
  const type = o.type ?? 'kvm';
  const e = (p: string, f: string) => xmlEscape(absolute(p, f));
  return [
    `<domain type='${type}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>`,
    `  <name>${o.name}</name>`,
    `  <memory unit='MiB'>${o.memoryMiB}</memory>`,
    '  <vcpu>1</vcpu>',
    '  <os>',
    `    <type arch='x86_64' machine='${machine}'>hvm</type>`,
    `    <loader type='rom'>${e(o.rom, 'rom')}</loader>`,
    '  </os>',
    '  <features><acpi/></features>',
    '  <on_poweroff>destroy</on_poweroff>',
    '  <on_reboot>destroy</on_reboot>',
    '  <on_crash>destroy</on_crash>',
    '  <devices>',
    ...(o.emulator === undefined ? [] : [`    <emulator>${e(o.emulator, 'emulator')}</emulator>`]),
    ...(o.serialFile === undefined ? [] : [`    <serial type='file'><source path='${e(o.serialFile, 'serialFile')}'/></serial>`]),
    "    <controller type='usb' model='none'/>",
    "    <memballoon model='none'/>",
    "    <video><model type='none'/></video>",
    '  </devices>',
    ...(o.qmpSocket === undefined ? [] : ['  <qemu:commandline>', "    <qemu:arg value='-qmp'/>", `    <qemu:arg value='unix:${e(o.qmpSocket, 'qmpSocket')},server=on,wait=off'/>`, '  </qemu:commandline>']),
    '</domain>',
    '',
  ].join('\n');
}
