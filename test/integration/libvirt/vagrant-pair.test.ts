/**
 * The Vagrantfile's two-host profile (POSTCOPY_LAB_PAIR=1, for the libvirt backend across real
 * hosts) validates, and a misspelt setting inside it fails, so the check can fail. Skipped
 * where vagrant is not installed. State goes to a temporary directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/sim.js';

const ROOT = path.resolve('.');
const VAGRANT = (process.env.PATH ?? '')
  .split(path.delimiter)
  .filter(Boolean)
  .some((d) => fs.existsSync(path.join(d, 'vagrant')));
const NO_VAGRANT = VAGRANT ? undefined : 'vagrant is not installed (.ci/run installs it: apt-get install vagrant vagrant-libvirt)';

let dotfiles: string;

async function validate(cwd: string, libvirt: boolean) {
  const r = await execa('vagrant', libvirt ? ['validate'] : ['validate', '--ignore-provider'], {
    cwd,
    reject: false,
    timeout: 60_000,
    env: { POSTCOPY_LAB_PAIR: '1', VAGRANT_CHECKPOINT_DISABLE: '1', VAGRANT_DOTFILE_PATH: dotfiles, VAGRANT_DEFAULT_PROVIDER: 'libvirt', VAGRANT_NO_COLOR: '1' },
  });
  return { code: r.exitCode, out: `${String(r.stdout)}\n${String(r.stderr)}` };
}

describe.skipIf(NO_VAGRANT)(`vagrant validate, two-host profile${NO_VAGRANT ? ` (skipped: ${NO_VAGRANT})` : ''}`, () => {
  let libvirt = false;
  beforeAll(async () => {
    dotfiles = tempDir('postcopy-vagrant-pair-');
    const r = await execa('vagrant', ['plugin', 'list'], { reject: false, env: { VAGRANT_CHECKPOINT_DISABLE: '1', VAGRANT_DOTFILE_PATH: dotfiles } });
    libvirt = /^vagrant-libvirt /m.test(String(r.stdout));
  });
  afterAll(() => fs.rmSync(dotfiles, { recursive: true, force: true }));

  it('POSTCOPY_LAB_PAIR=1 validates', async () => {
    const r = await validate(ROOT, libvirt);
    expect(r.out).toContain('Vagrantfile validated successfully.');
    expect(r.code).toBe(0);
  });

  it('a misspelt setting in the pair block fails validation', async () => {
    const copy = tempDir('postcopy-vagrantfile-pair-');
    try {
      fs.mkdirSync(path.join(copy, 'scripts'));
      fs.copyFileSync(path.join(ROOT, 'scripts/provision.sh'), path.join(copy, 'scripts/provision.sh'));
      const original = fs.readFileSync(path.join(ROOT, 'Vagrantfile'), 'utf8');
      expect(original).toContain('host.vm.hostname = name');
      fs.writeFileSync(path.join(copy, 'Vagrantfile'), original.replace('host.vm.hostname = name', 'host.vm.hostnme = name'));
      const r = await validate(copy, libvirt);
      expect(r.code).not.toBe(0);
      expect(r.out).toContain("The following settings shouldn't exist: hostnme");
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});
