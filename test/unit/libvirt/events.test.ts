/**
 * The `virsh event --loop --all` parser, on lines captured from libvirt 9.0 (the two-daemon pair,
 * QEMU 7.2: a postcopy migration, a silent blackhole, domjobabort --postcopy on the source, the
 * out-of-band migrate-pause on the destination, --postcopy-resume). The fixture is
 * "<side>\t<line as virsh printed it>".
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseEventLine, stateFromEvent, type EventLine } from '../../../src/libvirt/events.js';
import { migrationStatus } from '../../../src/driver/libvirt-backend.js';
import type { Side } from '../../../src/types.js';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'virsh-event-loop-9.0.tsv');
const captured = readFileSync(FIXTURE, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => {
    const i = l.indexOf('\t');
    return { side: l.slice(0, i) as Side, line: l.slice(i + 1) };
  });

describe('virsh event --loop lines (libvirt 9.0)', () => {
  it('parses headers and the tab-indented fields that follow job-completed', () => {
    expect(parseEventLine("event 'lifecycle' for domain 'pcl-guest': Suspended Post-copy Error")).toEqual({ type: 'event', name: 'lifecycle', domain: 'pcl-guest', detail: 'Suspended Post-copy Error' });
    expect(parseEventLine("event 'migration-iteration' for domain 'pcl-guest': iteration: '2'")).toEqual({ type: 'event', name: 'migration-iteration', domain: 'pcl-guest', detail: "iteration: '2'" });
    expect(parseEventLine("event 'job-completed' for domain 'pcl-guest':")).toEqual({ type: 'event', name: 'job-completed', domain: 'pcl-guest', detail: '' });
    expect(parseEventLine('\tdata_total: 67444736')).toEqual({ type: 'field', key: 'data_total', value: '67444736' });
    expect(parseEventLine('')).toBeNull();
    expect(parseEventLine('events received: 3')).toBeNull();
    expect(parseEventLine("event 'lifecycle' for domain 'pcl-guest': Resumed Post-copy\r")).toMatchObject({ detail: 'Resumed Post-copy' });
  });

  it('reads every captured line, and each side\'s lifecycle events give the states of the whole run in order', () => {
    const parsed = captured.map((c) => ({ ...c, e: parseEventLine(c.line) }));
    expect(parsed.filter((p) => p.e === null).map((p) => p.line)).toEqual([]);
    const statuses = (side: Side) =>
      parsed
        .filter((p) => p.side === side)
        .map((p) => stateFromEvent(p.e as EventLine, 'pcl-guest'))
        .filter((s) => s !== null)
        .map((s) => migrationStatus(side, s, false));
    // The source: switchover, postcopy, paused by domjobabort --postcopy, resumed, done.
    expect(statuses('source')).toEqual(['active', 'postcopy-active', 'postcopy-paused', 'postcopy-active', 'completed']);
    // The destination: postcopy, paused out of band, resumed, done (polling saw only the first and the last).
    expect(statuses('destination')).toEqual(['postcopy-active', 'postcopy-paused', 'postcopy-active', 'completed']);
  });

  it('gives no state for another domain, another event, or a lifecycle detail it does not know', () => {
    expect(stateFromEvent(parseEventLine("event 'lifecycle' for domain 'other': Suspended Post-copy"), 'pcl-guest')).toBeNull();
    expect(stateFromEvent(parseEventLine("event 'migration-iteration' for domain 'pcl-guest': iteration: '1'"), 'pcl-guest')).toBeNull();
    expect(stateFromEvent(parseEventLine("event 'lifecycle' for domain 'pcl-guest': Started Migrated"), 'pcl-guest')).toBeNull();
    expect(stateFromEvent(parseEventLine("event 'lifecycle' for domain 'pcl-guest': Suspended Post-copy"), 'pcl-guest')).toEqual({ state: 'paused', reason: 'post-copy' });
  });
});
