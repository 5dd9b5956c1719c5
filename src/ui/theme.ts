/**
 * Colours, in one place. Every colour here is backed by text (the state's name, a distinct
 * glyph), so the screen still reads with NO_COLOR.
 */
import { isFinished, isMigrating, isPaused, isRecovering } from '../sim/states.js';
import type { LabEvent, MigrationStatus, RunState } from '../types.js';

export type Colour = 'green' | 'yellow' | 'cyan' | 'blue' | 'red' | 'gray' | 'magenta' | 'white';

/** How a migration state reads to a person: moving, stopped, mending, finished, broken. */
export type StateKind = 'idle' | 'running' | 'paused' | 'recovering' | 'completed' | 'failed';

export function stateKind(status: MigrationStatus): StateKind {
  if (isPaused(status)) return 'paused';
  if (isRecovering(status)) return 'recovering';
  if (isMigrating(status) || status === 'setup') return 'running';
  if (status === 'completed') return 'completed';
  if (isFinished(status) || status === 'cancelling') return 'failed';
  return 'idle';
}

export const KIND_STYLE: Record<StateKind, { color: Colour; bold?: boolean }> = {
  idle: { color: 'gray' },
  running: { color: 'green' },
  paused: { color: 'yellow' },
  recovering: { color: 'cyan' },
  completed: { color: 'blue', bold: true },
  failed: { color: 'red' },
};

export function runStateColour(rs: RunState | 'unknown'): Colour {
  switch (rs) {
    case 'running':
      return 'green';
    case 'paused':
    case 'postmigrate':
    case 'finish-migrate':
      return 'yellow';
    case 'inmigrate':
    case 'prelaunch':
      return 'cyan';
    case 'shutdown':
      return 'red';
    default:
      return 'gray';
  }
}

export const EVENT_COLOUR: Record<LabEvent['kind'], Colour> = {
  state: 'cyan',
  event: 'white',
  fault: 'magenta',
  qmp: 'blue',
  step: 'green',
  hint: 'yellow',
  hold: 'yellow',
  info: 'gray',
  warning: 'yellow',
  error: 'red',
};

/** Page map cells: a distinct glyph per kind so the map reads without colour. */
export const CELL_STYLE: Record<'R' | 'F' | 'r' | 'q' | '.', { glyph: string; color: Colour; label: string; short: string }> = {
  R: { glyph: '█', color: 'green', label: 'received', short: 'recv' },
  // Its own glyph, not received's in another colour: without colour (NO_COLOR) the two read the same.
  F: { glyph: '▓', color: 'cyan', label: 'from file', short: 'file' },
  r: { glyph: '▒', color: 'green', label: 'partial', short: 'part' },
  q: { glyph: '▚', color: 'yellow', label: 'requested', short: 'req' },
  '.': { glyph: '·', color: 'gray', label: 'missing', short: 'miss' },
};
