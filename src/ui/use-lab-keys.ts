/**
 * Every key binding of the lab screen, in one hook. Each mode binds only what its key bar
 * shows (see key-bar.ts); the session is called directly and failures become a notice.
 */
import { useKeys } from './use-keys.js';
import { useRef } from 'react';
import type { LabSessionApi, MigrationStatus, SessionState, Side, Snapshot } from '../types.js';
import { isPostcopy, isRecovering } from '../sim/states.js';
import { normalKeys } from './key-bar.js';
import { describeFault } from '../link/fault-model.js';
import type { LinkFault } from '../types.js';
import { selectedLinkFault, type LabUiAction, type LabUiState } from './lab-state.js';
import type { Store } from './store.js';

/** A side whose migration state means quitting loses the guest. */
export interface SideAtRisk {
  side: Side;
  status: MigrationStatus;
}

/**
 * The sides in postcopy (active, paused or recovering): the guest's memory is split between
 * the hosts, so quitting, which stops both VMs, loses the guest. Ask before quitting then.
 */
export function sidesAtRisk(snapshot: Snapshot | null): SideAtRisk[] {
  if (!snapshot) return [];
  return (['source', 'destination'] as const)
    .filter((side) => isPostcopy(snapshot[side].status) || isRecovering(snapshot[side].status))
    .map((side) => ({ side, status: snapshot[side].status }));
}

export interface LabKeysOptions {
  session: LabSessionApi;
  /** The lab screen's UI state; read at key time, so a key always sees the previous key's effect. */
  ui: Store<LabUiState, LabUiAction>;
  /** The person asked to quit (and confirmed, if that was needed). */
  onQuit: () => void;
  isActive: boolean;
  /** Called after a key changed the session's state synchronously (a hint): show it now. */
  onSessionChanged?: () => void;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function useLabKeys(opts: LabKeysOptions): void {
  const { session, ui: store, onQuit, isActive } = opts;
  const dispatch = store.dispatch;
  const nextId = useRef(1);

  const run = (what: string, action: () => Promise<unknown>, done?: string) => {
    dispatch({ type: 'notice', text: `${what}…` });
    action().then(
      () => dispatch({ type: 'notice', text: done ?? `${what}: done` }),
      (err: unknown) => dispatch({ type: 'notice', level: 'error', text: `${what} failed: ${errorText(err)}` }),
    );
  };

  /** The notice says what was done and to which directions, in the fault model's words. */
  const applyFault = (fault: LinkFault) => {
    const what = `link ${describeFault(fault)}`;
    run(what, () => session.applyLink(fault), what);
  };

  const sendConsoleLine = (ui: LabUiState) => {
    const line = ui.console.input.trim();
    if (!line) return;
    const id = nextId.current++;
    const side = ui.console.side;
    dispatch({ type: 'console-submit', id });
    session.qmpLine(side, line).then(
      (reply) => dispatch({ type: 'console-reply', id, ok: reply.ok, text: reply.text }),
      (err: unknown) => dispatch({ type: 'console-reply', id, ok: false, text: `Error: ${errorText(err)}` }),
    );
  };

  useKeys(
    (input, key) => {
      const ui = store.getState();
      switch (ui.mode) {
        case 'console': {
          if (key.escape) return dispatch({ type: 'mode', mode: 'normal' });
          if (key.return) return sendConsoleLine(ui);
          if (key.tab && key.shift) return dispatch({ type: 'console-toggle-side' });
          if (key.tab) return dispatch({ type: 'console-tab' });
          if (key.upArrow) return dispatch({ type: 'console-history', delta: -1 });
          if (key.downArrow) return dispatch({ type: 'console-history', delta: 1 });
          if (key.backspace || key.delete) return dispatch({ type: 'console-backspace' });
          if (key.ctrl && input === 'u') return dispatch({ type: 'console-clear-line' });
          if (input === '?' && ui.console.input === '') return dispatch({ type: 'mode', mode: 'help' });
          if (key.ctrl || key.meta || !input) return;
          return dispatch({ type: 'console-type', text: input });
        }
        case 'help':
          if (key.escape || input === '?' || input === 'q') dispatch({ type: 'close-help' });
          return;
        case 'link':
          if (key.escape || input === 'l') return dispatch({ type: 'mode', mode: 'normal' });
          if (input === '?') return dispatch({ type: 'mode', mode: 'help' });
          if (key.upArrow || input === 'k') return dispatch({ type: 'link-move', delta: -1 });
          if (key.downArrow || input === 'j') return dispatch({ type: 'link-move', delta: 1 });
          if (key.leftArrow || (key.tab && key.shift) || input === 'D') return dispatch({ type: 'link-direction', delta: -1 });
          if (key.rightArrow || key.tab || input === 'd') return dispatch({ type: 'link-direction', delta: 1 });
          if (key.return) {
            dispatch({ type: 'mode', mode: 'normal' });
            applyFault(selectedLinkFault(ui));
          }
          return;
        case 'confirm-quit':
          if (input === 'y' || input === 'Y') return onQuit();
          if (input === '?') return dispatch({ type: 'mode', mode: 'help' });
          if (key.escape || input === 'n' || input === 'N' || input === 'q') dispatch({ type: 'mode', mode: 'normal' });
          return;
        case 'normal': {
          // The session's latest state, not the last sampled frame: validity must not lag.
          const state: SessionState = session.getState();
          const k = normalKeys(state);
          if (input === 'q') {
            if (sidesAtRisk(state.snapshot).length > 0) dispatch({ type: 'mode', mode: 'confirm-quit' });
            else onQuit();
            return;
          }
          if (input === '?') return dispatch({ type: 'mode', mode: 'help' });
          if (input === ':') return dispatch({ type: 'mode', mode: 'console' });
          if (input === 'c' && k.cut) return applyFault({ kind: 'cut' });
          if (input === 'b' && k.blackhole) return applyFault({ kind: 'blackhole' });
          if (input === 'u' && k.restore) return run('restore link', () => session.restoreLink(), 'link restored');
          if (input === 'l' && k.linkMenu) return dispatch({ type: 'mode', mode: 'link' });
          if (input === 'p' && k.pause) {
            // Source first, as QEMU's docs do: the destination may not notice a dead stream at once.
            return run(
              'migrate-pause',
              async () => {
                await session.qmp('source', 'migrate-pause');
                await session.qmp('destination', 'migrate-pause');
              },
              'migrate-pause sent to source and destination',
            );
          }
          if (input === 'h' && k.hint) {
            session.nextHint();
            opts.onSessionChanged?.();
            return;
          }
          if (input === 's' && k.showMe) return run('show me', () => session.showMe(), 'show me: ran this step’s commands');
          return;
        }
      }
    },
    { isActive },
  );
}
