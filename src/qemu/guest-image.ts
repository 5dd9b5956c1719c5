/**
 * The test guest: a 512-byte x86 boot sector, generated here as hand-assembled machine code,
 * so no download and no assembler are needed at run time.
 *
 * What the guest does (the technique QEMU's own migration tests use, written afresh):
 *
 *   1. The BIOS loads the sector at 0x7c00 and jumps to it in 16-bit real mode.
 *   2. It disables interrupts (nothing must run but our loop), opens the A20 gate (otherwise
 *      every address with bit 20 set wraps to the first MiB), loads a three-entry GDT (null,
 *      flat 4 GiB code, flat 4 GiB data), sets CR0.PE and far-jumps into 32-bit protected mode.
 *      Paging stays off, so every address the loop writes is a guest-physical address.
 *   3. It writes 'A' to the serial port once (booted), then loops forever:
 *        for (addr = start + byteOffset; addr < end; addr += stride * 4096) (*addr)++;
 *        out(0x3f8, 'B');
 *      One pass bumps the byte at the same offset of every k-th 4 KiB page, in address order;
 *      each 'B' on the serial port marks a finished pass.
 *
 * Why that makes memory checkable: guest RAM starts zeroed, so at any instant the written
 * pages hold n, n, ..., n, n-1, ..., n-1 (mod 256): pages below the loop's position have had
 * pass n, pages above it only pass n-1. Any dump of a correctly migrated guest must show that
 * shape, with at most one step down; a lost or stale page breaks it (see consistency.ts).
 *
 * The dirty rate is chosen by the range (how many pages a pass touches) and the stride (only
 * every k-th page is written): `stridePages: 4` dirties a quarter of the range per pass.
 */
import { writeFile } from 'node:fs/promises';

/** A guest-physical layout of the pages the guest writes; shared with the consistency checker. */
export interface GuestLayout {
  /** First byte of the written range; 1 MiB (the first MiB holds the BIOS, IVT and our code). */
  startAddress: number;
  /** One past the last byte of the written range (page aligned). */
  endAddress: number;
  /** 4096: the x86 page size, and the granularity QEMU migrates RAM in. */
  pageSize: number;
  /** The guest writes every `stridePages`-th page. */
  stridePages: number;
  /** The offset inside each written page of the byte the guest increments. */
  byteOffset: number;
}

export interface GuestImageOptions {
  /** End of the written range in MiB (exclusive). The range always starts at 1 MiB. */
  endMiB: number;
  /** Write every k-th page (default 1: every page). Larger strides lower the dirty rate. */
  stridePages?: number;
  /** Offset of the incremented byte within each page (default 0). */
  byteOffset?: number;
}

export const PAGE_SIZE = 4096;
export const GUEST_START_ADDRESS = 1 << 20;
/** Serial port COM1, where the markers go. */
export const SERIAL_PORT = 0x3f8;
/** Written once when the guest reaches protected mode. */
export const BOOT_MARKER = 'A';
/** Written after every full pass over the range. */
export const PASS_MARKER = 'B';

/**
 * How much RAM above the written range the guest should be given. SeaBIOS keeps its
 * high-memory zone and the ACPI tables just below the top of RAM; the written range must stay
 * clear of them, or those pages start non-zero and the consistency check would flag them.
 */
export const RAM_HEADROOM_MIB = 4;

/** The smallest `-m` (MiB) that leaves the written range clear of firmware data at the top. */
export function minimumMemoryMiB(endMiB: number): number {
  return endMiB + RAM_HEADROOM_MIB;
}

/** The layout a guest built with `opts` writes; pass it to `checkConsistency`. */
export function guestLayout(opts: GuestImageOptions): GuestLayout {
  const stridePages = opts.stridePages ?? 1;
  const byteOffset = opts.byteOffset ?? 0;
  if (!Number.isInteger(opts.endMiB) || opts.endMiB < 2 || opts.endMiB > 3072) {
    throw new RangeError(`endMiB must be an integer from 2 to 3072 (the 32-bit guest stays below the PCI hole), got ${opts.endMiB}`);
  }
  if (!Number.isInteger(stridePages) || stridePages < 1) {
    throw new RangeError(`stridePages must be a positive integer, got ${stridePages}`);
  }
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset >= PAGE_SIZE) {
    throw new RangeError(`byteOffset must be an integer from 0 to ${PAGE_SIZE - 1}, got ${byteOffset}`);
  }
  return {
    startAddress: GUEST_START_ADDRESS,
    endAddress: opts.endMiB * (1 << 20),
    pageSize: PAGE_SIZE,
    stridePages,
    byteOffset,
  };
}

/** One instruction (or data item): its size is fixed, its bytes may depend on label addresses. */
interface Item {
  label?: string;
  size: number;
  bytes: (at: (label: string) => number, here: number) => number[];
  /** The assembly this stands for; kept for readers and for `disassemblyListing`. */
  asm: string;
}

const LOAD_ADDRESS = 0x7c00;

const u16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
/** A rel8 displacement from the end of a 2-byte short jump at `here` to `target`. */
function rel8(target: number, here: number): number[] {
  const d = target - (here + 2);
  if (d < -128 || d > 127) throw new Error(`short jump out of range: ${d}`);
  return [d & 0xff];
}

function program(layout: GuestLayout): Item[] {
  const first = layout.startAddress + layout.byteOffset;
  const step = layout.stridePages * layout.pageSize;
  const fixed = (asm: string, bytes: number[], label?: string): Item => ({ asm, label, size: bytes.length, bytes: () => bytes });
  return [
    // ---- 16-bit real mode, running at 0x7c00 ----
    fixed('cli', [0xfa], 'start'), // no interrupts from here on: there is no IDT in protected mode
    fixed('xor ax, ax', [0x31, 0xc0]), // 31 /r, modrm 11 000 000
    fixed('mov ds, ax', [0x8e, 0xd8]), // DS = 0, so [disp16] below is an absolute address
    // Fast A20 gate (System Control Port A, 0x92): set bit 1, keep bit 0 (reset) clear.
    fixed('in al, 0x92', [0xe4, 0x92]),
    fixed('or al, 0x02', [0x0c, 0x02]),
    fixed('and al, 0xfe', [0x24, 0xfe]),
    fixed('out 0x92, al', [0xe6, 0x92]),
    // lgdt [gdt_desc]: 0F 01 /2 with modrm 00 010 110 = 0x16 (a bare disp16 address).
    { asm: 'lgdt [gdt_desc]', size: 5, bytes: (at) => [0x0f, 0x01, 0x16, ...u16(at('gdt_desc'))] },
    fixed('mov eax, cr0', [0x0f, 0x20, 0xc0]), // control-register moves are 32-bit in any mode
    fixed('or al, 1', [0x0c, 0x01]), // CR0.PE
    fixed('mov cr0, eax', [0x0f, 0x22, 0xc0]),
    // jmp 0x08:pm32 (EA ptr16:16): reloads CS with the 32-bit code descriptor, flushing the
    // prefetched real-mode instructions. The offset is absolute, so the BIOS's CS:IP choice
    // (0000:7c00 or 07c0:0000) does not matter.
    { asm: 'jmp 0x08:pm32', size: 5, bytes: (at) => [0xea, ...u16(at('pm32')), ...u16(0x08)] },

    // ---- 32-bit protected mode, flat segments, paging off ----
    fixed('mov eax, 0x10', [0xb8, ...u32(0x10)], 'pm32'), // selector of the data descriptor
    fixed('mov ds, ax', [0x8e, 0xd8]), // 8E /r, modrm 11 011(ds) 000
    fixed('mov es, ax', [0x8e, 0xc0]), // modrm 11 000(es) 000
    fixed('mov ss, ax', [0x8e, 0xd0]), // modrm 11 010(ss) 000
    fixed('mov esp, 0x7c00', [0xbc, ...u32(LOAD_ADDRESS)]), // a valid stack below us (unused)
    fixed(`mov dx, 0x${SERIAL_PORT.toString(16)}`, [0x66, 0xba, ...u16(SERIAL_PORT)]), // 66: 16-bit operand in a 32-bit segment
    fixed(`mov al, '${BOOT_MARKER}'`, [0xb0, BOOT_MARKER.charCodeAt(0)]),
    fixed('out dx, al', [0xee]), // "booted": one 'A' on COM1
    // outer: start a pass at the first written byte.
    fixed(`mov eax, 0x${first.toString(16)}`, [0xb8, ...u32(first)], 'outer'),
    // inner: bump one byte in this page, step to the next written page, loop below the end.
    fixed('inc byte [eax]', [0xfe, 0x00], 'inner'), // FE /0, modrm 00 000 000 = [eax]
    fixed(`add eax, 0x${step.toString(16)}`, [0x05, ...u32(step)]),
    fixed(`cmp eax, 0x${layout.endAddress.toString(16)}`, [0x3d, ...u32(layout.endAddress)]),
    { asm: 'jb inner', size: 2, bytes: (at, here) => [0x72, ...rel8(at('inner'), here)] }, // unsigned: addresses
    // A pass is complete: one 'B' on COM1, then start over.
    fixed(`mov al, '${PASS_MARKER}'`, [0xb0, PASS_MARKER.charCodeAt(0)]),
    fixed('out dx, al', [0xee]),
    { asm: 'jmp outer', size: 2, bytes: (at, here) => [0xeb, ...rel8(at('outer'), here)] },

    // ---- data: the GDT and its descriptor ----
    fixed('dq 0 ; null descriptor', [0, 0, 0, 0, 0, 0, 0, 0], 'gdt'),
    // base 0, limit 0xFFFFF x 4 KiB (G=1), D=1 (32-bit), access 0x9A: present, ring 0, code, exec/read.
    fixed('dq 0x00cf9a000000ffff ; flat code', [0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00]),
    // same, access 0x92: present, ring 0, data, read/write.
    fixed('dq 0x00cf92000000ffff ; flat data', [0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00]),
    // limit = size - 1 (three descriptors), then the 32-bit linear base of the table.
    { asm: 'dw 23 ; dd gdt', size: 6, label: 'gdt_desc', bytes: (at) => [...u16(3 * 8 - 1), ...u32(at('gdt'))] },
  ];
}

/** Two passes: lay out labels from the fixed sizes, then emit bytes that may refer to them. */
function assemble(items: Item[], origin = LOAD_ADDRESS): { code: number[]; listing: string[] } {
  const labels = new Map<string, number>();
  let pc = origin;
  for (const item of items) {
    if (item.label) labels.set(item.label, pc);
    pc += item.size;
  }
  const at = (name: string): number => {
    const v = labels.get(name);
    if (v === undefined) throw new Error(`undefined label ${name}`);
    return v;
  };
  const code: number[] = [];
  const listing: string[] = [];
  pc = origin;
  for (const item of items) {
    const bytes = item.bytes(at, pc);
    if (bytes.length !== item.size) throw new Error(`${item.asm}: ${bytes.length} bytes, declared ${item.size}`);
    const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ');
    listing.push(`${pc.toString(16)}  ${hex.padEnd(27)} ${item.label ? `${item.label}: ` : ''}${item.asm}`);
    code.push(...bytes);
    pc += item.size;
  }
  return { code, listing };
}

/** The 512-byte boot sector: our code, zero padding, and the 0x55 0xAA signature at 510. */
export function buildGuestImage(opts: GuestImageOptions): Buffer {
  const { code } = assemble(program(guestLayout(opts)));
  if (code.length > 510) throw new Error(`boot code is ${code.length} bytes; at most 510 fit`);
  const sector = Buffer.alloc(512);
  Buffer.from(code).copy(sector, 0);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/** The assembly listing (address, bytes, instruction) of the boot sector for `opts`. */
export function guestImageListing(opts: GuestImageOptions): string[] {
  return assemble(program(guestLayout(opts))).listing;
}

/*
 * The same guest as a 64 KiB firmware ROM (`-bios`), skipping SeaBIOS altogether.
 *
 * Why: SeaBIOS's POST reprograms the PAM registers and runs option ROMs, and every such change
 * remaps guest memory. Under TCG that is cheap; under some KVM hosts (nested or shadow-paging
 * ones) each remap is slow, and on the development machine SeaBIOS took 15-25 s to reach the
 * boot sector under KVM against 0.3 s for this ROM. Guest RAM is also untouched by firmware, so
 * every written page starts at zero.
 *
 * Layout: the boot sector sits at ROM offset 0 (guest-physical 0xF0000, where the last 64 KiB
 * of the BIOS is aliased below 1 MiB); a stub at 0xFF00 copies it to 0x7C00, where a BIOS would
 * have loaded it, and jumps there; the reset vector at 0xFFF0 (where the CPU starts, as
 * F000:FFF0) jumps to the stub. From 0x7C00 on, the guest runs exactly as it does from a disk.
 */
export const ROM_SIZE = 0x10000;
const ROM_STUB_OFFSET = 0xff00;
const RESET_VECTOR_OFFSET = 0xfff0;

function romStub(): Item[] {
  const fixed = (asm: string, bytes: number[]): Item => ({ asm, size: bytes.length, bytes: () => bytes });
  return [
    fixed('cli', [0xfa]),
    fixed('xor ax, ax', [0x31, 0xc0]),
    fixed('mov es, ax', [0x8e, 0xc0]), // destination segment 0
    fixed('mov ss, ax', [0x8e, 0xd0]),
    fixed('mov ax, 0xf000', [0xb8, ...u16(0xf000)]),
    fixed('mov ds, ax', [0x8e, 0xd8]), // source: F000:0000, the ROM's first byte
    fixed('xor si, si', [0x31, 0xf6]), // 31 /r, modrm 11 110(si) 110(si)
    fixed(`mov di, 0x${LOAD_ADDRESS.toString(16)}`, [0xbf, ...u16(LOAD_ADDRESS)]),
    fixed('mov cx, 256', [0xb9, ...u16(256)]), // 256 words = the 512-byte sector
    fixed('cld', [0xfc]),
    fixed('rep movsw', [0xf3, 0xa5]), // ES:DI <- DS:SI, CX times
    fixed(`jmp 0x0000:0x${LOAD_ADDRESS.toString(16)}`, [0xea, ...u16(LOAD_ADDRESS), ...u16(0)]),
  ];
}

/** The guest as a 64 KiB `-bios` image: the boot sector, a copy stub and the reset vector. */
export function buildGuestRom(opts: GuestImageOptions): Buffer {
  const rom = Buffer.alloc(ROM_SIZE);
  buildGuestImage(opts).copy(rom, 0);
  Buffer.from(assemble(romStub(), ROM_STUB_OFFSET).code).copy(rom, ROM_STUB_OFFSET);
  // Reset vector: jmp 0xf000:0xff00 (EA ptr16:16), loading a real-mode CS that addresses the
  // ROM's low alias.
  Buffer.from([0xea, ...u16(ROM_STUB_OFFSET), ...u16(0xf000)]).copy(rom, RESET_VECTOR_OFFSET);
  return rom;
}

/** How the image is handed to QEMU: a disk the BIOS boots (`-drive`), or the firmware itself (`-bios`). */
export type GuestImageKind = 'boot-sector' | 'rom';

/** Write the guest to `path` as a raw boot disk (default) or as a `-bios` ROM; returns its layout. */
export async function writeGuestImage(path: string, opts: GuestImageOptions, kind: GuestImageKind = 'boot-sector'): Promise<GuestLayout> {
  await writeFile(path, kind === 'rom' ? buildGuestRom(opts) : buildGuestImage(opts));
  return guestLayout(opts);
}
