import { describe, expect, it } from 'vitest';
import { buildGuestImage, buildGuestRom, guestImageListing, guestLayout, minimumMemoryMiB, ROM_SIZE } from '../../../src/qemu/guest-image.js';

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
  });

  it('describes its layout and the RAM it needs', () => {
    expect(guestLayout({ endMiB: 40, stridePages: 3 })).toEqual({
      startAddress: 1 << 20,
      endAddress: 40 << 20,
      pageSize: 4096,
      stridePages: 3,
      byteOffset: 0,
    });
    expect(minimumMemoryMiB(40)).toBeGreaterThan(40);
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
