/** The lab picker's key bindings, in one hook. */
import { useKeys } from './use-keys.js';
import type { LabEntry, ResetConfirm } from './components/LabPicker.js';

export interface PickerKeysOptions {
  labs: LabEntry[];
  /** Read at key time (not from the last render), so fast keys never act on a stale row. */
  getSelected: () => number;
  setSelected: (i: number) => void;
  getConfirm: () => ResetConfirm;
  setConfirm: (c: ResetConfirm) => void;
  onOpen: (labId: string) => void;
  onReset: (labId?: string) => void;
  onQuit: () => void;
  isActive: boolean;
}

export function usePickerKeys(o: PickerKeysOptions): void {
  useKeys(
    (input, key) => {
      const confirm = o.getConfirm();
      const selected = o.getSelected();
      if (confirm) {
        if (input === 'y' || input === 'Y') {
          o.onReset(confirm.scope === 'one' ? confirm.labId : undefined);
          o.setConfirm(null);
        } else if (input === 'n' || input === 'N' || key.escape || input === 'q') {
          o.setConfirm(null);
        }
        return;
      }
      const n = o.labs.length;
      if (input === 'q' || key.escape) return o.onQuit();
      if (n === 0) return;
      if (key.upArrow || input === 'k') return o.setSelected((selected - 1 + n) % n);
      if (key.downArrow || input === 'j') return o.setSelected((selected + 1) % n);
      if (key.home || input === 'g') return o.setSelected(0);
      if (key.end || input === 'G') return o.setSelected(n - 1);
      if (key.return) return o.onOpen(o.labs[selected].id);
      if (input === 'r') return o.setConfirm({ scope: 'one', labId: o.labs[selected].id });
      if (input === 'R') return o.setConfirm({ scope: 'all' });
    },
    { isActive: o.isActive },
  );
}
