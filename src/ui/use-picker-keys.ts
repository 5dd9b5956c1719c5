/** The lab picker's key bindings, in one hook. */
import { useKeys } from './use-keys.js';
import type { LabEntry, ResetConfirm } from './components/LabPicker.js';

export interface PickerKeysOptions {
  labs: LabEntry[];
  selected: number;
  setSelected: (i: number) => void;
  confirm: ResetConfirm;
  setConfirm: (c: ResetConfirm) => void;
  onOpen: (labId: string) => void;
  onReset: (labId?: string) => void;
  onQuit: () => void;
  isActive: boolean;
}

export function usePickerKeys(o: PickerKeysOptions): void {
  useKeys(
    (input, key) => {
      if (o.confirm) {
        if (input === 'y' || input === 'Y') {
          o.onReset(o.confirm.scope === 'one' ? o.confirm.labId : undefined);
          o.setConfirm(null);
        } else if (input === 'n' || input === 'N' || key.escape || input === 'q') {
          o.setConfirm(null);
        }
        return;
      }
      const n = o.labs.length;
      if (input === 'q' || key.escape) return o.onQuit();
      if (n === 0) return;
      if (key.upArrow || input === 'k') return o.setSelected((o.selected - 1 + n) % n);
      if (key.downArrow || input === 'j') return o.setSelected((o.selected + 1) % n);
      if (key.home || input === 'g') return o.setSelected(0);
      if (key.end || input === 'G') return o.setSelected(n - 1);
      if (key.return) return o.onOpen(o.labs[o.selected].id);
      if (input === 'r') return o.setConfirm({ scope: 'one', labId: o.labs[o.selected].id });
      if (input === 'R') return o.setConfirm({ scope: 'all' });
    },
    { isActive: o.isActive },
  );
}
