import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkUnpackedQemu } from '../../../src/libvirt/emulator.js';

const made: string[] = [];
afterAll(() => Promise.all(made.map((d) => rm(d, { recursive: true, force: true }))));

/** provision.sh's layout under a temporary prefix: the wrapper and the unpacked binary (empty files). */
async function unpacked(withBundle: boolean): Promise<string> {
  const prefix = await mkdtemp(path.join(tmpdir(), 'pcl-emulator-'));
  made.push(prefix);
  await mkdir(path.join(prefix, 'bin'));
  await mkdir(path.join(prefix, 'root/usr/bin'), { recursive: true });
  await writeFile(path.join(prefix, 'bin/qemu-system-x86_64'), '#!/bin/sh\n');
  await writeFile(path.join(prefix, 'root/usr/bin/qemu-system-x86_64'), '');
  if (withBundle) {
    await mkdir(path.join(prefix, 'root/usr/bin/qemu-bundle'));
    await symlink('../..', path.join(prefix, 'root/usr/bin/qemu-bundle/usr'));
  }
  return path.join(prefix, 'bin/qemu-system-x86_64');
}

describe('an unpacked QEMU for libvirt', () => {
  it('with its qemu-bundle (it sees only its own modules) is taken', async () => {
    await expect(checkUnpackedQemu(await unpacked(true))).resolves.toBeUndefined();
  });

  it("without it is refused, saying it would load the distribution's modules and how to fix it", async () => {
    const bin = await unpacked(false);
    await expect(checkUnpackedQemu(bin)).rejects.toThrow(/without .*qemu-bundle, so it would load the distribution's QEMU modules.*scripts\/provision\.sh --ci again/);
  });

  it('a QEMU that is not unpacked (no root/ beside its bin/) needs nothing', async () => {
    const prefix = await mkdtemp(path.join(tmpdir(), 'pcl-emulator-'));
    made.push(prefix);
    await writeFile(path.join(prefix, 'qemu-system-x86_64'), '');
    await expect(checkUnpackedQemu(path.join(prefix, 'qemu-system-x86_64'))).resolves.toBeUndefined();
  });
});
