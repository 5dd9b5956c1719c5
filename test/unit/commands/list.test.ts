import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LAB_ORDER, orderLabs, whereLabRuns } from '../../../src/commands/list.js';

describe('LAB_ORDER', () => {
  it('names every lab in labs/ (a new lab cannot land at the end by the alphabet)', () => {
    const ids = readdirSync(new URL('../../../labs', import.meta.url)).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, ''));
    expect(ids.filter((id) => !LAB_ORDER.includes(id))).toEqual([]);
    expect(LAB_ORDER.filter((id) => !ids.includes(id))).toEqual([]);
  });

  it('puts the libvirt labs in teaching order, the hardest last', () => {
    const ids = orderLabs(LAB_ORDER.map((id) => ({ id })).reverse()).map((l) => l.id);
    expect(ids.slice(-4)).toEqual(['libvirt-postcopy-recovery', 'libvirt-double-failure', 'libvirt-postcopy-pause', 'libvirt-blackhole']);
    expect(ids.indexOf('qemu-recovery-file')).toBe(ids.indexOf('recovery-file-window') + 1);
  });
});

describe('whereLabRuns', () => {
  it('shows the QEMU range a lab declares, whatever its backends', () => {
    expect(whereLabRuns({ backends: ['libvirt'], qemu: '>=7.2' })).toBe('[libvirt only, QEMU >=7.2]');
    expect(whereLabRuns({ backends: ['sim'], qemu: '>=7.2' })).toBe('[sim only, as QEMU >=7.2]');
    expect(whereLabRuns({ backends: ['qemu'], qemu: '>=7.2' })).toBe('[QEMU >=7.2 only]');
    expect(whereLabRuns({ backends: ['sim', 'qemu'], qemu: '>=8.2' })).toBe('[sim, QEMU >=8.2]');
    expect(whereLabRuns({ backends: ['sim'] })).toBe('[sim only]');
    expect(whereLabRuns({ backends: ['sim', 'qemu'] })).toBe('');
  });
});
