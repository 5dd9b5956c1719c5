/**
 * The Vagrantfile is checked wherever `vagrant` is installed (.ci/run installs Debian's vagrant
 * and vagrant-libvirt): `vagrant validate` reads the configuration, checks the provisioner
 * scripts exist and, with the libvirt plugin, the libvirt block's settings. It downloads no box
 * and needs no network. Its state directory goes to a temporary directory, not the checkout.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/sim.js';

const ROOT = path.resolve('.');
const VAGRANT = (process.env.PATH ?? '')
  .split(path.delimiter)
  .filter(Boolean)
  .some((d) => fs.existsSync(path.join(d, 'vagrant')));
const NO_VAGRANT = VAGRANT ? undefined : 'vagrant is not installed (.ci/run installs it: apt-get install vagrant vagrant-libvirt)';

let dotfiles: string;

async function vagrant(args: string[], cwd: string) {
  const r = await execa('vagrant', args, {
    cwd,
    reject: false,
    timeout: 60_000,
    // No version check against HashiCorp's servers; .vagrant/ outside the checkout.
    env: { VAGRANT_CHECKPOINT_DISABLE: '1', VAGRANT_DOTFILE_PATH: dotfiles, VAGRANT_DEFAULT_PROVIDER: 'libvirt', VAGRANT_NO_COLOR: '1' },
  });
  return { code: r.exitCode, out: `${String(r.stdout)}\n${String(r.stderr)}` };
}

describe.skipIf(NO_VAGRANT)(`vagrant validate${NO_VAGRANT ? ` (skipped: ${NO_VAGRANT})` : ''}`, () => {
  let libvirt = false;
  /** With the libvirt plugin the provider block is checked too; without it, only the rest. */
  const validateArgs = () => (libvirt ? ['validate'] : ['validate', '--ignore-provider']);

  beforeAll(async () => {
    dotfiles = tempDir('postcopy-vagrant-');
    const plugins = await vagrant(['plugin', 'list'], dotfiles);
    libvirt = /^vagrant-libvirt /m.test(plugins.out);
  });
  afterAll(() => fs.rmSync(dotfiles, { recursive: true, force: true }));

  it("the repository's Vagrantfile validates", async () => {
    const r = await vagrant(validateArgs(), ROOT);
    expect(r.out).toContain('Vagrantfile validated successfully.');
    expect(r.code).toBe(0);
  });

  it('a misspelt setting fails validation (so the check above can fail)', async () => {
    const copy = tempDir('postcopy-vagrantfile-');
    try {
      fs.mkdirSync(path.join(copy, 'scripts'));
      fs.copyFileSync(path.join(ROOT, 'scripts/provision.sh'), path.join(copy, 'scripts/provision.sh'));
      const original = fs.readFileSync(path.join(ROOT, 'Vagrantfile'), 'utf8');
      // In the libvirt block when the plugin can check it, in the core config otherwise.
      const [from, to] = libvirt ? ['lv.nested = ', 'lv.nestd = '] : ['config.vm.hostname = ', 'config.vm.hostnme = '];
      expect(original).toContain(from);
      fs.writeFileSync(path.join(copy, 'Vagrantfile'), original.replace(from, to));
      const r = await vagrant(validateArgs(), copy);
      expect(r.code).not.toBe(0);
      expect(r.out).toContain(`The following settings shouldn't exist: ${to.split('.').pop()!.replace(' = ', '')}`);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});
