import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { COMMANDS, unknownCommandMessage, USAGE } from '../../../src/commands/usage.js';
import { COMPARE_DEFAULTS } from '../../../src/compare/options.js';

describe('--help and the unknown-command error', () => {
  it('--help has a usage line for every command', () => {
    for (const c of COMMANDS) expect(USAGE).toMatch(new RegExp(`^  postcopy-lab ${c}( |$)`, 'm'));
  });

  it('the unknown-command error names every command', () => {
    const msg = unknownCommandMessage('dril');
    for (const c of COMMANDS) expect(msg).toMatch(new RegExp(`[ (]${c}[,) ]`));
    expect(msg).toContain('recovery-source');
    expect(msg).toContain('recovery-file');
  });

  it('compare offers only the backends it runs on, and its real defaults', () => {
    const compare = USAGE.slice(USAGE.indexOf('postcopy-lab compare'), USAGE.indexOf('postcopy-lab list'));
    expect(compare).toContain('[--backend sim|qemu]');
    expect(compare).not.toContain('libvirt');
    expect(compare).toContain(`[--memory ${COMPARE_DEFAULTS.memory}]`);
    expect(compare).toContain('the values shown are the defaults');
  });

  it("drill's synopsis names every option the Options section describes for it", () => {
    const drill = USAGE.slice(USAGE.indexOf('postcopy-lab drill'), USAGE.indexOf('postcopy-lab compare'));
    for (const o of ['--json', '--seed', '--timeout', '--link', '--backend', '--qemu', '--emulate', '--source-uri', '--dest-uri', '--record', '--no-record', '--no-compare', '--verbose', '--hold', '--learner-delay']) {
      expect(drill).toContain(`${o}`);
    }
  });

  it('--link says what none is', () => {
    expect(USAGE).toMatch(/--link KIND[^\n]*none\s+\(no link at all\)/);
  });

  // The dispatcher's own answer (about 1 s under load: one node process).
  it('the CLI refuses an unknown command with exit 2, naming recovery-file too', () => {
    const bin = fileURLToPath(new URL('../../../bin/postcopy-lab.js', import.meta.url));
    const r = spawnSync(process.execPath, [bin, 'nosuch'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(unknownCommandMessage('nosuch'));
  });
});
