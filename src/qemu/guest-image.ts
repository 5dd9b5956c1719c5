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
 *   3. It writes 'A' to the serial port once (booted). When paced, it measures the TSC's
 *      frequency against the PIT (see "Pacing" below).
 *   4. The fill pass: it bumps the byte at the same offset of every k-th 4 KiB page of the whole
 *      range once, in address order, then writes 'B' (so every page is non-zero and costs a full
 *      page on the wire, as a busy guest's would).
 *   5. Then it loops forever over the working set (the first `workingSetPages` written pages):
 *        for (addr = start + byteOffset; addr < wsEnd; addr += stride * 4096) {
 *          wait for the next write's deadline; (*addr)++; ops++;
 *        }
 *        out(0x3f8, 'B');
 *      `ops` is a 64-bit count of completed writes at guest-physical OPS_ADDRESS, which the
 *      QEMU backend reads over QMP (`xp`) to measure the guest's work.
 *
 * Why that makes memory checkable: guest RAM starts zeroed, so at any instant the working
 * set's pages hold n, n, ..., n, n-1, ..., n-1 (mod 256), and the rest of the range holds 1
 * (filled once, never again): pages below the loop's position have had pass n, pages above it
 * only pass n-1. Any dump of a correctly migrated guest must show that shape; a lost or stale
 * page breaks it (see consistency.ts).
 *
 * Pacing: with `dirtyPagesPerSecond` set, each write has a deadline `tscPerWrite` TSC ticks
 * after the previous one (the guest spins on `rdtsc` until then). The TSC runs at the host's
 * rate under KVM and under TCG alike, but its frequency is not known in advance, so the guest
 * measures it once at boot: PIT channel 2 counts 59659 ticks of its 1.193182 MHz clock (50 ms)
 * in one-shot mode, gated through port 0x61, and the fewest TSC ticks seen meanwhile in four
 * tries give the frequency (Linux's pit_calibrate_tsc does the same). The end of the count is flagged by the
 * hardware (port 0x61 bit 5), so a guest descheduled meanwhile still measures the right span.
 * A guest more than about 1 ms behind its schedule (descheduled by the host, throttled by
 * auto-converge, stopped for migration) drops the backlog instead of catching up in a burst:
 * lost time is lost work, as for a CPU-bound guest, so a throttle slows the guest's progress.
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
  /** How many written pages (from the first) the loop cycles over after the fill pass. */
  workingSetPages: number;
  /** Writes per second the loop is paced to; null: as fast as it runs; 0: idle after the fill. */
  dirtyPagesPerSecond: number | null;
  /**
   * The order of the working set's writes: 'sequential' (address order, pass after pass), or
   * 'random' (each write picks a page by xorshift32 from `seed`; the checker replays it).
   */
  order: 'sequential' | 'random';
  /** The xorshift32 seed of a random order (non-zero). */
  seed: number;
}

export interface GuestImageOptions {
  /** End of the written range in MiB (exclusive). The range always starts at 1 MiB. */
  endMiB: number;
  /** Write every k-th page (default 1: every page). Larger strides lower the dirty rate. */
  stridePages?: number;
  /** Offset of the incremented byte within each page (default 0). */
  byteOffset?: number;
  /** Written pages the loop cycles over after the fill pass (default: all of them). */
  workingSetPages?: number;
  /**
   * Writes (one page each) per second, paced by the TSC. Default: unpaced, as fast as the
   * vCPU runs. 0: the guest fills the range once and then halts.
   */
  dirtyPagesPerSecond?: number;
  /** 'sequential' (default) or 'random' (see GuestLayout.order). */
  order?: 'sequential' | 'random';
  /** Seed of the random order; any integer (0 becomes 1: xorshift needs a non-zero state). */
  seed?: number;
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
 * The guest's own counters, guest-physical, in a page of their own below 1 MiB (clear of the
 * code's page, so TCG does not retranslate code on each count):
 *   +0  ops (u64): completed writes of the working-set loop (the fill pass is not counted);
 *   +8  tscHz (u32): the TSC frequency measured at boot (0 when unpaced);
 *   +12 tscPerWrite (u32): TSC ticks between two writes' deadlines;
 *   +16 the catch-up cap, +20 the next deadline (u64), +28 calibration scratch;
 *   +32 rng (u32): the random order's xorshift32 state.
 */
export const OPS_ADDRESS = 0x9000;
/** The largest paced rate: above it the guest could not keep the schedule anyway. */
export const MAX_DIRTY_PAGES_PER_SECOND = 10_000_000;
/** PIT input clock, Hz, and the calibration span in PIT ticks (50 ms). */
const PIT_HZ = 1_193_182;
const CALIBRATION_TICKS = 59_659;
const CALIBRATIONS = 4;

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
  const endAddress = opts.endMiB * (1 << 20);
  const written = Math.ceil((endAddress - GUEST_START_ADDRESS - byteOffset) / (stridePages * PAGE_SIZE));
  const workingSetPages = opts.workingSetPages ?? written;
  if (!Number.isInteger(workingSetPages) || workingSetPages < 1 || workingSetPages > written) {
    throw new RangeError(`workingSetPages must be an integer from 1 to ${written} (the written pages of the range), got ${workingSetPages}`);
  }
  const rate = opts.dirtyPagesPerSecond;
  if (rate !== undefined && (!Number.isInteger(rate) || rate < 0 || rate > MAX_DIRTY_PAGES_PER_SECOND)) {
    throw new RangeError(`dirtyPagesPerSecond must be an integer from 0 to ${MAX_DIRTY_PAGES_PER_SECOND} (pages written per second), got ${rate}`);
  }
  return {
    startAddress: GUEST_START_ADDRESS,
    endAddress,
    pageSize: PAGE_SIZE,
    stridePages,
    byteOffset,
    workingSetPages,
    dirtyPagesPerSecond: rate ?? null,
    order: opts.order ?? 'sequential',
    seed: (opts.seed ?? 1) >>> 0 || 1,
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
  const wsEnd = first + (layout.workingSetPages - 1) * step + 1;
  const rate = layout.dirtyPagesPerSecond;
  const paced = rate !== null && rate > 0;
  const OPS_LO = OPS_ADDRESS;
  const OPS_HI = OPS_ADDRESS + 4;
  const TSC_HZ = OPS_ADDRESS + 8;
  const TPW = OPS_ADDRESS + 12;
  const CAP = OPS_ADDRESS + 16;
  const NEXT_LO = OPS_ADDRESS + 20;
  const NEXT_HI = OPS_ADDRESS + 24;
  const CAL_MIN = OPS_ADDRESS + 28;
  const RNG = OPS_ADDRESS + 32;
  const fixed = (asm: string, bytes: number[], label?: string): Item => ({ asm, label, size: bytes.length, bytes: () => bytes });
  const jcc = (asm: string, opcode: number, target: string, label?: string): Item => ({
    asm: `${asm} ${target}`,
    label,
    size: 2,
    bytes: (at, here) => [opcode, ...rel8(at(target), here)],
  });
  const hex = (n: number): string => `0x${n.toString(16)}`;
  const serialOut = (ch: string): Item[] => [
    // rdtsc clobbers edx, so the port is loaded each time.
    fixed(`mov dx, ${hex(SERIAL_PORT)}`, [0x66, 0xba, ...u16(SERIAL_PORT)]), // 66: 16-bit operand in a 32-bit segment
    fixed(`mov al, '${ch}'`, [0xb0, ch.charCodeAt(0)]),
    fixed('out dx, al', [0xee]),
  ];

  // Measure the TSC against PIT channel 2 (one-shot, mode 0) and derive the write schedule.
  // Four measurements, the shortest kept: a vCPU descheduled while measuring sees more TSC
  // ticks than 50 ms hold, never fewer.
  const calibrate: Item[] = [
    fixed(`mov dword [${hex(CAL_MIN)}], 0xffffffff`, [0xc7, 0x05, ...u32(CAL_MIN), ...u32(0xffffffff)], 'calibrations'),
    fixed(`mov edi, ${CALIBRATIONS}`, [0xbf, ...u32(CALIBRATIONS)]),
    fixed('in al, 0x61', [0xe4, 0x61], 'calibrate'),
    fixed('and al, 0xfc', [0x24, 0xfc]), // speaker data off, channel 2 gate off
    fixed('or al, 0x01', [0x0c, 0x01]), // gate on: the count runs once loaded
    fixed('out 0x61, al', [0xe6, 0x61]),
    fixed('mov al, 0xb0', [0xb0, 0xb0]), // channel 2, lobyte/hibyte, mode 0, binary
    fixed('out 0x43, al', [0xe6, 0x43]),
    fixed(`mov al, ${hex(CALIBRATION_TICKS & 0xff)}`, [0xb0, CALIBRATION_TICKS & 0xff]),
    fixed('out 0x42, al', [0xe6, 0x42]),
    fixed('rdtsc', [0x0f, 0x31]), // the count starts with the high byte, right after this
    fixed('mov ebx, eax', [0x89, 0xc3]),
    fixed(`mov al, ${hex(CALIBRATION_TICKS >>> 8)}`, [0xb0, CALIBRATION_TICKS >>> 8]),
    fixed('out 0x42, al', [0xe6, 0x42]),
    fixed('in al, 0x61', [0xe4, 0x61], 'count'),
    fixed('test al, 0x20', [0xa8, 0x20]), // OUT2: high at the terminal count
    jcc('jz', 0x74, 'count'),
    fixed('rdtsc', [0x0f, 0x31]),
    fixed('sub eax, ebx', [0x29, 0xd8]), // TSC ticks in 50 ms (fits: < 2^32 below 85 GHz)
    fixed(`cmp eax, [${hex(CAL_MIN)}]`, [0x3b, 0x05, ...u32(CAL_MIN)]),
    jcc('jae', 0x73, 'longer'),
    fixed(`mov [${hex(CAL_MIN)}], eax`, [0xa3, ...u32(CAL_MIN)]),
    fixed('dec edi', [0x4f], 'longer'),
    jcc('jnz', 0x75, 'calibrate'),
    fixed(`mov eax, [${hex(CAL_MIN)}]`, [0xa1, ...u32(CAL_MIN)]),
    fixed(`mov ecx, ${PIT_HZ}`, [0xb9, ...u32(PIT_HZ)]),
    fixed('mul ecx', [0xf7, 0xe1]), // edx:eax = ticks * PIT_HZ
    fixed(`mov ecx, ${CALIBRATION_TICKS}`, [0xb9, ...u32(CALIBRATION_TICKS)]),
    // A quotient over 32 bits would fault (#DE, and with no IDT the CPU resets): measure again.
    fixed('cmp edx, ecx', [0x39, 0xca]),
    jcc('jae', 0x73, 'calibrations'),
    fixed('div ecx', [0xf7, 0xf1]), // eax = TSC Hz
    fixed(`mov [${hex(TSC_HZ)}], eax`, [0xa3, ...u32(TSC_HZ)]),
    fixed('mov ebx, eax', [0x89, 0xc3]),
    fixed('shr ebx, 10', [0xc1, 0xeb, 0x0a]), // the catch-up cap: about 1 ms of TSC ticks
    fixed(`mov [${hex(CAP)}], ebx`, [0x89, 0x1d, ...u32(CAP)]),
    fixed('xor edx, edx', [0x31, 0xd2]),
    fixed(`mov ecx, ${rate ?? 0}`, [0xb9, ...u32(rate ?? 0)]),
    fixed('div ecx', [0xf7, 0xf1]), // eax = TSC ticks per write
    fixed(`mov [${hex(TPW)}], eax`, [0xa3, ...u32(TPW)]),
  ];

  // The fill pass: every written page once, at full speed, before anything is counted.
  const fill: Item[] = [
    fixed(`mov eax, ${hex(first)}`, [0xb8, ...u32(first)]),
    fixed('inc byte [eax]', [0xfe, 0x00], 'fill'), // FE /0, modrm 00 000 000 = [eax]
    fixed(`add eax, ${hex(step)}`, [0x05, ...u32(step)]),
    fixed(`cmp eax, ${hex(layout.endAddress)}`, [0x3d, ...u32(layout.endAddress)]),
    jcc('jb', 0x72, 'fill'), // unsigned: addresses
    ...serialOut(PASS_MARKER),
  ];

  // Wait for this write's deadline; more than the cap behind (or far ahead: a TSC that jumped
  // back) restarts the schedule from now instead of bursting.
  const pace: Item[] = [
    // No `pause` here: under KVM a pause loop exits to the host (pause-loop exiting), which
    // may deschedule the vCPU for longer than the catch-up cap and lose the writes.
    fixed('rdtsc', [0x0f, 0x31], 'wait'),
    fixed('mov ecx, eax', [0x89, 0xc1]),
    fixed('mov ebx, edx', [0x89, 0xd3]),
    fixed(`sub eax, [${hex(NEXT_LO)}]`, [0x2b, 0x05, ...u32(NEXT_LO)]),
    fixed(`sbb edx, [${hex(NEXT_HI)}]`, [0x1b, 0x15, ...u32(NEXT_HI)]), // edx:eax = now - deadline
    fixed('cmp edx, -1', [0x83, 0xfa, 0xff]),
    jcc('je', 0x74, 'wait'), // up to 2^32 ticks early: keep waiting
    fixed('test edx, edx', [0x85, 0xd2]),
    jcc('jnz', 0x75, 'resync'),
    fixed(`cmp eax, [${hex(CAP)}]`, [0x3b, 0x05, ...u32(CAP)]),
    jcc('jbe', 0x76, 'due'),
    fixed(`mov [${hex(NEXT_LO)}], ecx`, [0x89, 0x0d, ...u32(NEXT_LO)], 'resync'),
    fixed(`mov [${hex(NEXT_HI)}], ebx`, [0x89, 0x1d, ...u32(NEXT_HI)]),
    fixed(`mov eax, [${hex(TPW)}]`, [0xa1, ...u32(TPW)], 'due'),
    fixed(`add [${hex(NEXT_LO)}], eax`, [0x01, 0x05, ...u32(NEXT_LO)]),
    fixed(`adc dword [${hex(NEXT_HI)}], 0`, [0x83, 0x15, ...u32(NEXT_HI), 0x00]),
  ];

  // The working-set loop: one counted write per page, a 'B' per pass.
  const loop: Item[] = [
    ...(paced
      ? [
          fixed('rdtsc', [0x0f, 0x31]), // the schedule starts now
          fixed(`mov [${hex(NEXT_LO)}], eax`, [0xa3, ...u32(NEXT_LO)]),
          fixed(`mov [${hex(NEXT_HI)}], edx`, [0x89, 0x15, ...u32(NEXT_HI)]),
        ]
      : []),
    fixed(`mov esi, ${hex(first)}`, [0xbe, ...u32(first)], 'outer'),
    ...(paced ? pace : []),
    fixed('inc byte [esi]', [0xfe, 0x06], paced ? undefined : 'inner'), // modrm 00 000 110 = [esi]
    fixed(`add dword [${hex(OPS_LO)}], 1`, [0x83, 0x05, ...u32(OPS_LO), 0x01]),
    fixed(`adc dword [${hex(OPS_HI)}], 0`, [0x83, 0x15, ...u32(OPS_HI), 0x00]),
    fixed(`add esi, ${hex(step)}`, [0x81, 0xc6, ...u32(step)]),
    fixed(`cmp esi, ${hex(wsEnd)}`, [0x81, 0xfe, ...u32(wsEnd)]),
    jcc('jb', 0x72, paced ? 'wait' : 'inner'),
    ...serialOut(PASS_MARKER),
    { asm: 'jmp outer', size: 2, bytes: (at, here) => [0xeb, ...rel8(at('outer'), here)] },
  ];

  // The random order: xorshift32, then page = (state * pages) >> 32, one counted write each.
  const randomLoop: Item[] = [
    fixed(`mov dword [${hex(RNG)}], ${layout.seed}`, [0xc7, 0x05, ...u32(RNG), ...u32(layout.seed)]),
    ...(paced
      ? [
          fixed('rdtsc', [0x0f, 0x31]),
          fixed(`mov [${hex(NEXT_LO)}], eax`, [0xa3, ...u32(NEXT_LO)]),
          fixed(`mov [${hex(NEXT_HI)}], edx`, [0x89, 0x15, ...u32(NEXT_HI)]),
          ...pace,
        ]
      : []),
    fixed(`mov eax, [${hex(RNG)}]`, [0xa1, ...u32(RNG)], paced ? undefined : 'wait'),
    fixed('mov ecx, eax', [0x89, 0xc1]),
    fixed('shl ecx, 13', [0xc1, 0xe1, 0x0d]),
    fixed('xor eax, ecx', [0x31, 0xc8]),
    fixed('mov ecx, eax', [0x89, 0xc1]),
    fixed('shr ecx, 17', [0xc1, 0xe9, 0x11]),
    fixed('xor eax, ecx', [0x31, 0xc8]),
    fixed('mov ecx, eax', [0x89, 0xc1]),
    fixed('shl ecx, 5', [0xc1, 0xe1, 0x05]),
    fixed('xor eax, ecx', [0x31, 0xc8]),
    fixed(`mov [${hex(RNG)}], eax`, [0xa3, ...u32(RNG)]),
    fixed(`mov ecx, ${layout.workingSetPages}`, [0xb9, ...u32(layout.workingSetPages)]),
    fixed('mul ecx', [0xf7, 0xe1]), // edx = the page's index in the working set
    fixed(`imul edx, edx, ${hex(step)}`, [0x69, 0xd2, ...u32(step)]),
    fixed(`inc byte [edx + ${hex(first)}]`, [0xfe, 0x82, ...u32(first)]),
    fixed(`add dword [${hex(OPS_LO)}], 1`, [0x83, 0x05, ...u32(OPS_LO), 0x01]),
    fixed(`adc dword [${hex(OPS_HI)}], 0`, [0x83, 0x15, ...u32(OPS_HI), 0x00]),
    // jmp rel32 (E9): the loop is longer than a short jump reaches.
    { asm: 'jmp wait', size: 5, bytes: (at, here) => [0xe9, ...u32((at('wait') - (here + 5)) >>> 0)] },
  ];

  // Rate 0: fill once, then halt for good (interrupts are off), leaving the host CPU free.
  const idle: Item[] = [fixed('hlt', [0xf4], 'idle'), jcc('jmp', 0xeb, 'idle')];

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
    ...serialOut(BOOT_MARKER), // "booted": one 'A' on COM1
    ...(paced ? calibrate : []),
    ...fill,
    ...(rate === 0 ? idle : layout.order === 'random' ? randomLoop : loop),

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
