import { fileURLToPath } from 'node:url';
import { render } from 'ink-testing-library';
import { describe, expect, it } from 'vitest';
import { elsewhere, orderLabs } from '../../../src/commands/list.js';
import { listLabs } from '../../../src/lab/load.js';
import { LabPicker } from '../../../src/ui/components/LabPicker.js';
import { plain } from './helpers.js';

const LABS = fileURLToPath(new URL('../../../labs', import.meta.url));
const progress = { version: 1 as const, completed: {} };
// Loaded once: parsing every lab file is most of this file's time.
const shipped = listLabs(LABS).then((ls) => orderLabs(ls).map((l) => ({ ...l, elsewhere: elsewhere(l, 'sim') })));

describe('the picker marks the labs this backend cannot run', () => {
  it.each([
    [80, 24],
    [100, 30],
  ])('at %ix%i: every lab, selected, is on screen whole, with its tag and the command that starts it', async (width, height) => {
    const labs = await shipped;
    expect(labs.filter((l) => l.elsewhere).map((l) => l.id)).toEqual(['qemu-recovery-file', 'libvirt-postcopy-recovery', 'libvirt-double-failure', 'libvirt-postcopy-pause', 'libvirt-blackhole']);
    for (const [i, lab] of labs.entries()) {
      const r = render(<LabPicker labs={labs} progress={progress} selected={i} confirm={null} notice={`Could not open ${lab.id}: a refusal long enough to wrap onto a second line of the picker at eighty columns`} width={width} height={height} />);
      const lines = plain(r.lastFrame()).split('\n');
      r.unmount();
      expect(lines.length).toBeLessThanOrEqual(height);
      for (const l of lines) expect(l.trimEnd().length).toBeLessThanOrEqual(width);
      const row = lines.find((l) => l.startsWith(' › '));
      expect(row, `${lab.id} selected at ${width}x${height}`).toBeDefined();
      expect(row!).toContain(lab.title.slice(0, 20));
      const text = lines.join('\n');
      expect(text).toContain('↑↓ choose');
      // A title the row cuts is given whole under the list; rows with no room are counted.
      if (row!.includes('…')) expect(text.replace(/\s+/g, ' ')).toContain(lab.title);
      const shown = lines.filter((l) => /^ [ ›] [ ✓] /.test(l)).length;
      if (shown < labs.length) expect(lines[0]).toMatch(/(↑|↓) \d+ more/);
      if (lab.elsewhere) {
        expect(row!.trimEnd()).toMatch(lab.id === 'qemu-recovery-file' ? /\[qemu only\]$/ : /\[libvirt only\]$/);
        expect(lines).toContain(` ${lab.elsewhere.command}`.padEnd(lines.find((l) => l.includes(lab.elsewhere!.command))!.length));
      } else {
        expect(row!).not.toMatch(/only\]/);
      }
    }
  });

  it('the command is the exact one (libvirt needs root)', () => {
    expect(elsewhere({ id: 'libvirt-blackhole', backends: ['libvirt'] }, 'sim')).toEqual({ tag: '[libvirt only]', command: 'sudo npx postcopy-lab lab libvirt-blackhole --backend libvirt' });
    expect(elsewhere({ id: 'qemu-recovery-file', backends: ['qemu'] }, 'sim')).toEqual({ tag: '[qemu only]', command: 'npx postcopy-lab lab qemu-recovery-file --backend qemu' });
    expect(elsewhere({ id: 'walk-recovery', backends: ['sim'] }, 'qemu')?.tag).toBe('[sim only]');
    expect(elsewhere({ id: 'postcopy-basics', backends: ['sim', 'qemu'] }, 'qemu')).toBeUndefined();
  });
});
