/**
 * scripts/provision.sh with --dry-run: how it adds bookworm-backports from the machine's own
 * Debian source (deb822 or one-line), what it would download and unpack for QEMU 10.0, and that
 * a dry run writes nothing. The sources it reads are made up (POSTCOPY_LAB_APT_ETC), so the
 * mirror in the output can only have come from them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/sim.js';
import { QEMUS } from '../helpers/qemus.js';

const SCRIPT = path.resolve('scripts/provision.sh');
const osRelease = fs.existsSync('/etc/os-release') ? fs.readFileSync('/etc/os-release', 'utf8') : '';
const BOOKWORM = /^ID=debian$/m.test(osRelease) && /^VERSION_CODENAME=bookworm$/m.test(osRelease);
const NOT_BOOKWORM = BOOKWORM ? undefined : 'QEMU 10.0 provisioning is for Debian 12 (bookworm) only, and this is not one';

/** A made-up /etc/apt: `files` maps paths under it to their text. */
function aptEtc(files: Record<string, string>): string {
  const dir = tempDir('postcopy-apt-etc-');
  fs.mkdirSync(path.join(dir, 'sources.list.d'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

function listTree(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

async function provision(args: string[], etc?: string) {
  const r = await execa('bash', [SCRIPT, ...args], {
    reject: false,
    env: etc ? { POSTCOPY_LAB_APT_ETC: etc } : {},
    timeout: 60_000,
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const DEB822 = `Types: deb
# a comment inside the stanza
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/example-archive.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/other.gpg
`;

describe('provision.sh usage', () => {
  it('--help names the QEMU 10.0 options', async () => {
    const r = await provision(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--qemu10-prefix DIR');
    expect(r.stdout).toContain('--no-qemu10');
    expect(r.stdout).toContain('bookworm-backports');
  });

  it('a relative --qemu10-prefix is a usage error', async () => {
    const r = await provision(['--ci', '--dry-run', '--qemu10-prefix', 'opt/q']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--qemu10-prefix needs an absolute directory, not 'opt/q'");
  });
});

describe.skipIf(NOT_BOOKWORM)('provision.sh --dry-run: QEMU 10.0 from bookworm-backports', () => {
  it('deb822: the backports source takes the URI, key and components of the bookworm entry; nothing is written', async () => {
    const etc = aptEtc({ 'sources.list.d/debian.sources': DEB822 });
    const prefix = path.join(tempDir('postcopy-q10-'), 'qemu-10.0');
    const before = listTree(etc);
    const r = await provision(['--ci', '--dry-run', '--qemu10-prefix', prefix], etc);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const source = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('provision:   | '))
      .map((l) => l.slice('provision:   | '.length));
    expect(source.filter((l) => !l.startsWith('#'))).toEqual([
      'Types: deb',
      'URIs: http://mirror.example/debian',
      'Suites: bookworm-backports',
      'Components: main',
      'Signed-By: /usr/share/keyrings/example-archive.gpg',
    ]);
    expect(r.stdout).toContain(`${path.join(etc, 'sources.list.d/postcopy-lab-backports.sources')}`);
    expect(r.stdout).toContain(
      'would run: apt-get download qemu-system-x86/bookworm-backports qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports seabios/bookworm-backports',
    );
    expect(r.stdout).toContain(`would run: mv ${prefix}/root.new ${prefix}/root`);
    expect(r.stdout).toContain(`would write ${prefix}/bin/qemu-system-x86_64`);
    expect(listTree(etc)).toEqual(before);
    expect(fs.existsSync(prefix)).toBe(false);
  });

  it('one-line sources.list: the entry whose suite is exactly bookworm, with its signed-by option', async () => {
    const etc = aptEtc({
      'sources.list': [
        '# deb http://commented.example/debian bookworm main',
        'deb https://packages.example/apt cloud-sdk-bookworm main',
        'deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/debian bookworm main contrib',
        '',
      ].join('\n'),
    });
    const r = await provision(['--ci', '--dry-run', '--qemu10-prefix', '/nonexistent/q10'], etc);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('provision:   | URIs: http://mirror.example/debian\n');
    expect(r.stdout).toContain('provision:   | Components: main contrib\n');
    expect(r.stdout).toContain('provision:   | Signed-By: /usr/share/keyrings/x.gpg\n');
  });

  it('a suite already configured is not added twice', async () => {
    const etc = aptEtc({
      'sources.list.d/debian.sources': DEB822,
      'sources.list': 'deb http://mirror.example/debian bookworm-backports main\n',
    });
    const r = await provision(['--ci', '--dry-run', '--qemu10-prefix', '/nonexistent/q10'], etc);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('bookworm-backports already configured');
    expect(r.stdout).not.toContain('provision:   | ');
  });

  it('no bookworm source: fails naming what is missing and the way out', async () => {
    const etc = aptEtc({ 'sources.list': 'deb https://packages.example/apt cloud-sdk-bookworm main\n' });
    const r = await provision(['--ci', '--dry-run', '--qemu10-prefix', '/nonexistent/q10'], etc);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no apt source with suite 'bookworm' in ${etc}/sources.list`);
    expect(r.stderr).toContain('--no-qemu10');
  });

  it('--no-qemu10 leaves the sources alone', async () => {
    const etc = aptEtc({ 'sources.list.d/debian.sources': DEB822 });
    const r = await provision(['--ci', '--dry-run', '--no-qemu10'], etc);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('QEMU 10.0 skipped (--no-qemu10)');
    expect(r.stdout).not.toContain('backports');
  });

  const q10 = QEMUS.find((q) => q.short === '10.0' && q.bin.endsWith('/bin/qemu-system-x86_64'));
  it.skipIf(!q10)('a prefix that already holds 10.0 is left alone (no sources, no download)', async () => {
    const prefix = path.dirname(path.dirname(q10!.bin));
    const etc = aptEtc({ 'sources.list.d/debian.sources': DEB822 });
    const r = await provision(['--ci', '--dry-run', '--qemu10-prefix', prefix], etc);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`QEMU 10.0 already at ${prefix}/bin/qemu-system-x86_64 (QEMU emulator version 10.0`);
    expect(r.stdout).not.toContain('apt-get download');
  });
});
