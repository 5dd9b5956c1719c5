import { describe, expect, it } from 'vitest';
import { buildQemuArgs, dirtyLimitRefusal, findQemu, parseQemuVersion, QemuNotFoundError } from '../../../src/qemu/launcher.js';

const base = { bin: '/usr/bin/qemu-system-x86_64', memoryMiB: 52, image: '/tmp/g.img', qmpSocket: '/tmp/q.sock', kvm: true };

describe('buildQemuArgs', () => {
  it('gives both sides the same machine, differing only in -incoming', () => {
    const src = buildQemuArgs(base);
    const dst = buildQemuArgs({ ...base, incoming: 'defer' });
    expect(dst.args.slice(0, src.args.length)).toEqual(src.args);
    expect(dst.args.slice(src.args.length)).toEqual(['-incoming', 'defer']);
  });

  it('spells the machine, memory, serial, drive and QMP options', () => {
    const { file, args } = buildQemuArgs({ ...base, kvm: false, serialFile: '/tmp/s.txt', controlSocket: '/tmp/c.sock' });
    expect(file).toBe(base.bin);
    const after = (opt: string) => args.filter((_, i) => args[i - 1] === opt);
    expect(after('-machine')).toEqual(['pc']);
    expect(after('-accel')).toEqual(['tcg']);
    expect(after('-m')).toEqual(['52']);
    expect(after('-serial')).toEqual(['file:/tmp/s.txt']);
    expect(after('-drive')).toEqual(['file=/tmp/g.img,format=raw,if=ide,file.locking=off']);
    expect(after('-qmp')).toEqual(['unix:/tmp/q.sock,server=on,wait=off', 'unix:/tmp/c.sock,server=on,wait=off']);
    expect(args).toContain('-nodefaults');
  });

  it('hands a ROM image over as the firmware, with no disk', () => {
    const { args } = buildQemuArgs({ ...base, imageKind: 'rom' });
    expect(args.join(' ')).toContain('-bios /tmp/g.img');
    expect(args).not.toContain('-drive');
  });

  it("turns KVM's dirty ring on for both sides alike, and refuses it under TCG or at a bad size", () => {
    const src = buildQemuArgs({ ...base, dirtyRingSize: 4096 });
    const dst = buildQemuArgs({ ...base, dirtyRingSize: 4096, incoming: 'defer' });
    expect(src.args.filter((_, i) => src.args[i - 1] === '-accel')).toEqual(['kvm,dirty-ring-size=4096']);
    expect(dst.args.slice(0, src.args.length)).toEqual(src.args);
    expect(() => buildQemuArgs({ ...base, kvm: false, dirtyRingSize: 4096 })).toThrow(/TCG has no dirty ring/);
    expect(() => buildQemuArgs({ ...base, dirtyRingSize: 3000 })).toThrow(/power of two/);
  });

  it('refuses paths QEMU would split at a comma', () => {
    expect(() => buildQemuArgs({ ...base, image: '/tmp/a,b.img' })).toThrow(/comma/);
  });
});

describe('dirtyLimitRefusal', () => {
  it('says why dirty-limit cannot be used before 8.1 or under TCG, and nothing when it can', () => {
    expect(dirtyLimitRefusal({ major: 7, minor: 2 }, 'kvm')).toMatch(/needs QEMU 8\.1 or newer \(this is QEMU 7\.2/);
    expect(dirtyLimitRefusal({ major: 8, minor: 0 }, 'kvm')).toMatch(/8\.1/);
    expect(dirtyLimitRefusal({ major: 10, minor: 0 }, 'tcg')).toMatch(/TCG, which has none/);
    expect(dirtyLimitRefusal({ major: 8, minor: 1 }, 'kvm')).toBeNull();
    expect(dirtyLimitRefusal({ major: 10, minor: 0 }, 'kvm')).toBeNull();
  });
});

describe('probes', () => {
  it('parses QEMU version lines', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright')).toMatchObject({ major: 7, minor: 2, micro: 22 });
    expect(parseQemuVersion('QEMU emulator version 9.2.0')).toMatchObject({ major: 9, minor: 2, micro: 0 });
    expect(() => parseQemuVersion('nope')).toThrow();
  });

  it('says how to install QEMU, and that the sim needs nothing, when the binary is missing', async () => {
    const err = await findQemu('/nonexistent/qemu-system-x86_64').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QemuNotFoundError);
    expect((err as Error).message).toMatch(/apt-get install qemu-system-x86/);
    expect((err as Error).message).toMatch(/--backend sim/);
  });
});
