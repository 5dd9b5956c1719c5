/**
 * Where postcopy-lab keeps what outlives a run (lab progress, run records):
 * `$XDG_STATE_HOME/postcopy-lab`, else `~/.local/state/postcopy-lab`. The XDG spec says a
 * relative XDG_STATE_HOME is invalid and must be ignored, so only an absolute one counts.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export function stateDir(env: Record<string, string | undefined> = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  const base = xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.local', 'state');
  return join(base, 'postcopy-lab');
}
