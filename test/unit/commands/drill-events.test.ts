/**
 * Which events a drill prints without --verbose: the VMs' own log lines stay out, an operator's
 * act on a VM and a recovery file written are in (a newcomer running `drill recovery-file` saw no
 * kill, no recovery source and no file to inspect).
 */
import { describe, expect, it } from 'vitest';
import { eventLine } from '../../../src/commands/drill.js';

describe('drill event lines', () => {
  it('prints an info marked to be said, and not a VM log line, without --verbose', () => {
    const said = { t: 1, kind: 'info' as const, side: 'source' as const, text: 'the source VM process was killed (SIGKILL), as asked', data: { say: true } };
    const log = { t: 1, kind: 'info' as const, side: 'source' as const, text: '[source] migration error in active: ECONNRESET' };
    expect(eventLine(said, false)).toContain('source: the source VM process was killed (SIGKILL), as asked');
    expect(eventLine(log, false)).toBeNull();
    expect(eventLine(log, true)).toContain('migration error in active');
  });
});
