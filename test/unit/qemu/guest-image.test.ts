import { describe, expect, it } from 'vitest';
import { buildGuestImage, buildGuestRom, guestImageListing, guestLayout, minimumMemoryMiB, OPS_ADDRESS, ROM_SIZE } from '../../../src/qemu/guest-image.js';

describe('guest image', () => {
  it('is one 512-byte sector with the 0x55AA boot signature at 510', () => {
    const img = buildGuestImage({ endMiB: 48 });
    expect(img.length).toBe(512);
    expect(img[510]).toBe(0x55);
    expect(img[511]).toBe(0xaa);
  });

  it('encodes the range, stride and offset in the loop immediates', () => {
    const img = buildGuestImage({ endMiB: 48, stridePages: 2, byteOffset: 8 });
    // mov eax, 0x100008 (first written byte), add eax, 0x2000 (two pages), cmp eax, 0x3000000 (48 MiB)
    expect(img.includes(Buffer.from([0xb8, 0x08, 0x00, 0x10, 0x00]))).toBe(true);
    expect(img.includes(Buffer.from([0x05, 0x00, 0x20, 0x00, 0x00]))).toBe(true);
    expect(img.includes(Buffer.from([0x3d, 0x00, 0x00, 0x00, 0x03]))).toBe(true);
    // inc byte [eax]; the pass marker 'B' goes out on COM1 (out dx, al).
    expect(img.includes(Buffer.from([0xfe, 0x00]))).toBe(true);
    expect(img.includes(Buffer.from([0xb0, 0x42, 0xee]))).toBe(true);
  });

  it('resolves the short jumps back to the loop heads', () => {
    const listing = guestImageListing({ endMiB: 16 });
    const addr = (label: string) => parseInt(listing.find((l) => l.includes(`${label}:`))!.split(' ')[0], 16);
    const jb = listing.find((l) => l.endsWith('jb inner'))!;
    const jbAt = parseInt(jb.split(' ')[0], 16);
    const rel = parseInt(jb.split(/\s+/)[2], 16);
    expect(jbAt + 2 + (rel - 256)).toBe(addr('inner'));
  });

  it('is deterministic and differs only where the parameters go', () => {
    expect(buildGuestImage({ endMiB: 32 }).equals(buildGuestImage({ endMiB: 32 }))).toBe(true);
    expect(buildGuestImage({ endMiB: 32 }).equals(buildGuestImage({ endMiB: 33 }))).toBe(false);
  });

  it('rejects layouts it cannot run', () => {
    expect(() => buildGuestImage({ endMiB: 1 })).toThrow(/endMiB/);
    expect(() => buildGuestImage({ endMiB: 8, stridePages: 0 })).toThrow(/stridePages/);
    expect(() => buildGuestImage({ endMiB: 8, byteOffset: 4096 })).toThrow(/byteOffset/);
    expect(() => buildGuestImage({ endMiB: 2, workingSetPages: 257 })).toThrow(/workingSetPages must be an integer from 1 to 256/);
    expect(() => buildGuestImage({ endMiB: 2, workingSetPages: 0 })).toThrow(/workingSetPages/);
    expect(() => buildGuestImage({ endMiB: 8, dirtyPagesPerSecond: -1 })).toThrow(/dirtyPagesPerSecond/);
    expect(() => buildGuestImage({ endMiB: 8, dirtyPagesPerSecond: 1.5 })).toThrow(/dirtyPagesPerSecond/);
  });

  it('describes its layout and the RAM it needs', () => {
    expect(guestLayout({ endMiB: 40, stridePages: 3 })).toEqual({
      startAddress: 1 << 20,
      endAddress: 40 << 20,
      pageSize: 4096,
      stridePages: 3,
      byteOffset: 0,
      workingSetPages: 3328, // (40 - 1) MiB / 12 KiB
      dirtyPagesPerSecond: null,
      order: 'sequential',
      seed: 1,
    });
    expect(minimumMemoryMiB(40)).toBeGreaterThan(40);
  });
});

describe('paced guest', () => {
  const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  const has = (img: Buffer, bytes: number[]) => img.includes(Buffer.from(bytes));

  it('divides the measured TSC frequency by the rate and counts each write at OPS_ADDRESS', () => {
    const img = buildGuestImage({ endMiB: 16, dirtyPagesPerSecond: 2500 });
    expect(has(img, [0xb9, ...u32(2500), 0xf7, 0xf1])).toBe(true); // mov ecx, 2500; div ecx
    expect(has(img, [0xe6, 0x42])).toBe(true); // PIT channel 2 is programmed (calibration)
    expect(has(img, [0x0f, 0x31])).toBe(true); // rdtsc
    expect(has(img, [0x83, 0x05, ...u32(OPS_ADDRESS), 0x01])).toBe(true); // add dword [ops], 1
    expect(has(img, [0x83, 0x15, ...u32(OPS_ADDRESS + 4), 0x00])).toBe(true); // adc dword [ops+4], 0
  });

  it('cycles over the working set after filling the whole range', () => {
    const img = buildGuestImage({ endMiB: 16, workingSetPages: 10, dirtyPagesPerSecond: 100 });
    expect(has(img, [0x3d, ...u32(16 << 20)])).toBe(true); // the fill pass: cmp eax, 16 MiB
    expect(has(img, [0x81, 0xfe, ...u32((1 << 20) + 9 * 4096 + 1)])).toBe(true); // cmp esi, past the 10th page
  });

  it('is unpaced without a rate (no calibration) and halts after the fill at rate 0', () => {
    const unpaced = buildGuestImage({ endMiB: 16 });
    expect(has(unpaced, [0x0f, 0x31])).toBe(false);
    expect(has(unpaced, [0x83, 0x05, ...u32(OPS_ADDRESS), 0x01])).toBe(true);
    const idle = guestImageListing({ endMiB: 16, dirtyPagesPerSecond: 0 });
    expect(idle.some((l) => l.endsWith('idle: hlt'))).toBe(true);
    expect(idle.some((l) => l.includes('inc byte [esi]'))).toBe(false);
  });

  it('keeps every short jump in range and fits the sector at the largest settings', () => {
    expect(() => buildGuestRom({ endMiB: 3072, workingSetPages: 1000, dirtyPagesPerSecond: 10_000_000 })).not.toThrow();
  });
});

describe('guest ROM', () => {
  it('is 64 KiB: the boot sector at 0, the copy stub at 0xff00, the reset vector at 0xfff0', () => {
    const opts = { endMiB: 20, stridePages: 2 };
    const rom = buildGuestRom(opts);
    expect(rom.length).toBe(ROM_SIZE);
    expect(rom.subarray(0, 512).equals(buildGuestImage(opts))).toBe(true);
    expect([...rom.subarray(0xfff0, 0xfff5)]).toEqual([0xea, 0x00, 0xff, 0x00, 0xf0]); // jmp f000:ff00
    // ... rep movsw; jmp 0000:7c00
    expect(rom.subarray(0xff00, 0xff40).includes(Buffer.from([0xf3, 0xa5, 0xea, 0x00, 0x7c, 0x00, 0x00]))).toBe(true);
  });
});
