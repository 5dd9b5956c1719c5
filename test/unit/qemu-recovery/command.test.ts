import { describe, expect, it } from 'vitest';
import { missingOptions, QemuRecoveryUsageError, runQemuRecoverySource } from '../../../src/qemu-recovery/command.js';

describe('recovery-source --qemu-frozen: missing options', () => {
  it('names every missing required option in one message', async () => {
    const err = await runQemuRecoverySource(['--qemu-frozen', '/nonexistent', '--connect', '127.0.0.1:4445'], () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QemuRecoveryUsageError);
    expect((err as Error).message).toMatch(/^missing --qemu BIN, --image ROM and --memory MIB;/);
  });

  it('asks for --connect or --qmp, and nothing when all are given', () => {
    expect(missingOptions({})).toEqual(['--qemu-frozen FILE', '--connect HOST:PORT (or --qmp SOCK)', '--qemu BIN', '--image ROM', '--memory MIB']);
    expect(missingOptions({ 'qemu-frozen': 'f', qmp: 's', qemu: 'q', image: 'i', memory: '64' })).toEqual([]);
  });
});

describe('recovery-source FILE --qmp SOCK: missing options', () => {
  it('names the file and --qmp together when both are missing', async () => {
    const { runRecoverySource } = await import('../../../src/recovery/command.js');
    const err = await runRecoverySource([], () => {}).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/missing FILE .* and --qmp SOCK/);
  });
});
