/**
 * Which keys the bar shows, and which survive when the terminal is narrow. Pure: the lab
 * screen's key hook binds exactly the keys `labKeys` says are valid, so the bar never offers a
 * key that does nothing.
 */
import { isPaused, isPostcopy } from '../sim/states.js';
import { hintCommand } from '../qmp/console.js';
import { preemptRefused } from '../lab/reach.js';
import type { MigrationStatus, SessionState, StepView } from '../types.js';
import { QMP_COMMANDS } from './qmp-commands.js';
import type { Mode } from './lab-state.js';

export interface KeyHint {
  key: string;
  label: string;
  /** Higher survives longer when the bar is narrow. `?` is always kept. */
  priority: number;
}

/**
 * A side migrate-pause acts on: postcopy-active, or a recovery under way (since 8.2); QEMU
 * refuses it on a side already paused or not in postcopy.
 */
export const pausable = (s: MigrationStatus) => isPostcopy(s) && !isPaused(s);

/** The command (QMP, or a libvirt console line) of the newest hint shown for `step` that has one. */
export function shownHintCommand(step: StepView | undefined): ReturnType<typeof hintCommand> {
  if (!step) return null;
  for (let i = step.hintsShown - 1; i >= 0; i--) {
    const c = hintCommand(step.hints[i], QMP_COMMANDS);
    if (c) return c;
  }
  return null;
}

/** What the lab screen's normal mode accepts, given the session's state. */
export interface NormalKeys {
  cut: boolean;
  blackhole: boolean;
  /** `l`: the link menu (every fault, per direction). */
  linkMenu: boolean;
  restore: boolean;
  pause: boolean;
  hint: boolean;
  showMe: boolean;
  /** `r`: redo the earlier steps on the same VMs (the step can no longer happen; a precopy failure). */
  retry: boolean;
  /** `w`: fresh VMs, the earlier steps replayed, this step again (the step can no longer happen). */
  rewind: boolean;
  /** Space: the current step has a hold to release or take again. */
  hold: boolean;
}

export function normalKeys(state: SessionState): NormalKeys {
  const snap = state.snapshot;
  const link = snap?.link;
  const dirs = link ? [link['source-to-destination'], link['destination-to-source']] : [];
  const step = state.steps.find((s) => s.index === state.currentStep);
  const running = !state.finished && !!snap && !state.replaying;
  const anyFault = dirs.some((d) => d.state !== 'up' || d.latencyMs > 0 || d.jitterMs > 0 || d.rateBytesPerSec > 0 || d.lossPercent > 0);
  return {
    cut: running && !!link && dirs.some((d) => d.state !== 'cut'),
    blackhole: running && !!link && dirs.some((d) => d.state !== 'blackhole'),
    linkMenu: running && !!link,
    restore: running && !!link && anyFault,
    pause: running && !!snap && (pausable(snap.source.status) || pausable(snap.destination.status)),
    hint: !!step && step.status === 'active' && step.hintsShown < step.hints.length,
    showMe: running && !!step && step.status === 'active' && step.actions.length > 0,
    retry: running && state.blocked?.retry === true,
    rewind: running && (!!state.blocked || state.missed?.step === state.currentStep + 1 || preemptRefused(state)),
    hold: running && !!state.hold && state.hold.step === state.currentStep && state.hold.state !== 'idle',
  };
}

/**
 * The keys valid now. `viewingOther`: the steps panel shows a step other than the current one (one
 * kept on screen after it ended, or one gone back to): `]` then leads, as the way on.
 */
export function keyHints(mode: Mode, state: SessionState, viewingOther = false): KeyHint[] {
  const step = state.steps.find((s) => s.index === state.currentStep);
  switch (mode) {
    case 'console':
      return [
        { key: 'Enter', label: 'send', priority: 9 },
        { key: 'Tab', label: 'complete', priority: 7 },
        { key: 'S-Tab', label: 'other side', priority: 8 },
        { key: '↑↓', label: 'history', priority: 6 },
        { key: '←→', label: 'edit', priority: 3 },
        { key: 'PgUp/Dn', label: 'scroll', priority: 5 },
        { key: 'Ctrl-U', label: 'clear', priority: 2 },
        { key: 'Esc', label: 'close', priority: 9 },
        { key: '?', label: 'help', priority: Infinity },
      ];
    case 'help':
      return [
        { key: 'Esc', label: 'close', priority: 9 },
        { key: 'PgUp/Dn ↑↓', label: 'scroll', priority: 5 },
        { key: '?', label: 'close help', priority: Infinity },
      ];
    case 'link':
      return [
        { key: '↑↓', label: 'choose', priority: 8 },
        { key: 'd/←→', label: 'direction', priority: 7 },
        { key: 'Enter', label: 'apply', priority: 9 },
        { key: 'Esc', label: 'close', priority: 9 },
        { key: '?', label: 'help', priority: Infinity },
      ];
    case 'confirm-fault':
      return [
        { key: 'y', label: 'apply anyway', priority: 9 },
        { key: 'n/Esc', label: 'cancel', priority: 9 },
        { key: '?', label: 'help', priority: Infinity },
      ];
    case 'confirm-quit':
      return [
        { key: 'y', label: 'quit anyway', priority: 9 },
        { key: 'n/Esc', label: 'stay', priority: 9 },
        { key: '?', label: 'help', priority: Infinity },
      ];
    case 'normal': {
      const k = normalKeys(state);
      const hints: KeyHint[] = [];
      // A finished lab still on screen: its last step ended while it was read (LabScreen).
      if (state.finished) hints.push({ key: 'Enter', label: 'summary', priority: 11 });
      if (k.retry) hints.push({ key: 'r', label: 'retry step', priority: 10 });
      if (k.rewind) hints.push({ key: 'w', label: 'rewind', priority: 10 });
      // The fault the step itself calls for outranks the rest (blackhole's "Pull the cable"
      // lost b to Space once a hold kept Space on the bar at 80 columns).
      const own = step?.linkFaults ?? [];
      // (A cut in a step that calls for another fault is a mistake the key still allows: it
      // yields to Space there.)
      if (k.cut) hints.push({ key: 'c', label: 'cut', priority: own.includes('cut') ? 9 : own.length ? 5 : 7 });
      if (k.blackhole) hints.push({ key: 'b', label: 'blackhole', priority: own.includes('blackhole') ? 9 : 5 });
      if (k.linkMenu) hints.push({ key: 'l', label: 'link menu', priority: 3 });
      if (k.restore) hints.push({ key: 'u', label: 'restore link', priority: 7 });
      // So does p in a step whose own commands pause (blackhole's "Pause both sides yourself").
      if (k.pause) hints.push({ key: 'p', label: 'pause', priority: step?.pauses ? 9 : 4 });
      if (k.hint) hints.push({ key: 'h', label: 'hint', priority: 8 });
      // Show me is the way on for someone stuck: it outlasts the fault keys and u at 80 columns.
      // In a step of VM actions alone (postcopy-preempt's "Fresh VMs") it is the only way on, and
      // says what it does: played, that step read "the lab starts two fresh VMs" and sat waiting
      // under a bar led by c and b.
      if (k.showMe) hints.push(step?.vmOnly ? { key: 's', label: step.vmOnly, priority: 9.5 } : { key: 's', label: 'show me', priority: 7.5 });
      // The lab waits for you only while it holds: the way to let it run stays on the bar at 80
      // columns before another fault key or pause (at priority 3 it lost to both, playing
      // link-cut-recovery), after show me.
      // In a step with nothing to type (throttle-vs-postcopy's "Watch the throttle climb"), Space is
      // the step's own key.
      if (k.hold) hints.push({ key: 'Space', label: state.hold?.state === 'held' ? 'let it run' : 'hold', priority: step && step.actions.length === 0 ? 9 : 5.5 });
      // Reading: the other steps, scrolling, a hint's command into the console. Viewing another
      // step than the current one, the way back leads the bar.
      if (viewingOther) hints.unshift({ key: ']', label: 'next step', priority: 10 });
      else hints.push({ key: '[]', label: 'steps', priority: 2 });
      hints.push({ key: 'PgUp/Dn', label: 'scroll', priority: 2 });
      hints.push({ key: 'Tab', label: 'steps/events', priority: 1 });
      // Only where a hint shown gives a command to copy ("Press c" gives none).
      if (shownHintCommand(step)) hints.push({ key: 'y', label: 'copy hint', priority: 4 });
      hints.push({ key: ':', label: 'console', priority: 9 });
      hints.push({ key: '?', label: 'help', priority: Infinity });
      hints.push({ key: 'q', label: 'quit', priority: 10 });
      return hints;
    }
  }
}

const SEP = '  ';
export const hintWidth = (h: KeyHint): number => h.key.length + 1 + h.label.length;

/**
 * The hints that fit in `width` cells, in their original order, dropping the lowest priority
 * first. `?` is always kept.
 */
export function fitKeyHints(hints: readonly KeyHint[], width: number): KeyHint[] {
  const kept = new Set(hints);
  const total = () => [...kept].reduce((w, h, i) => w + hintWidth(h) + (i > 0 ? SEP.length : 0), 0);
  const byPriority = [...hints].sort((a, b) => a.priority - b.priority);
  for (const h of byPriority) {
    if (total() <= width) break;
    if (h.priority === Infinity) continue;
    kept.delete(h);
  }
  return hints.filter((h) => kept.has(h));
}
