/**
 * The run's counters at the end, and how they are said. One place, so the TUI's end screen,
 * the drill's summary line and `--json` give the same numbers under the same names, all taken
 * from the final snapshot with PagesInfo's definitions (src/types.ts).
 */
import type { PagesInfo, RunSummary, Snapshot } from '../types.js';

/** The counter fields of a RunSummary. */
export type SummaryCounters = Pick<
  RunSummary,
  'pagesSent' | 'sentByRecoverySource' | 'pagesReceived' | 'pagesFromFile' | 'pagesResent' | 'duplicatesDiscarded' | 'blocktimeMs' | 'blocktimeWorstVcpuMs' | 'blocktimeNotMeasured' | 'blocktimeAtEnd' | 'notReported' | 'recoveries' | 'countsNotReported'
>;

/** The counters a summary reports, read from the last snapshot (zeros when there is none). */
export function summaryCounters(snap: Snapshot | null | undefined): SummaryCounters {
  const sp = snap?.source.pages;
  const dp = snap?.destination.pages;
  return {
    pagesSent: sp?.sent ?? 0,
    // A recovery source counts only what it sent itself (0 when it refused to resume).
    ...(snap?.source.recoverySource ? { sentByRecoverySource: true as const } : {}),
    pagesReceived: dp?.received ?? 0,
    // Only once a recovery source served the destination (absent otherwise, as in PagesInfo).
    ...(dp?.['from-file'] === undefined ? {} : { pagesFromFile: dp['from-file'] }),
    pagesResent: sp?.resent ?? 0,
    duplicatesDiscarded: dp?.['duplicates-discarded'] ?? 0,
    blocktimeMs: dp?.['blocktime-ms'] ?? 0,
    blocktimeWorstVcpuMs: dp?.['blocktime-worst-vcpu-ms'] ?? 0,
    recoveries: dp?.recoveries ?? 0,
    ...(dp?.['counts-unknown'] ? { countsNotReported: true as const } : {}),
    ...(dp?.['blocktime-unknown'] ? { blocktimeNotMeasured: true as const } : {}),
    ...(dp?.['blocktime-at-end'] ? { blocktimeAtEnd: true as const } : {}),
    ...notReported(sp, dp),
  };
}

/** The summary's counters a backend does not have (PagesInfo.unreported), by their summary names. */
function notReported(sp: PagesInfo | undefined, dp: PagesInfo | undefined): { notReported?: Array<'pagesResent' | 'duplicatesDiscarded'> } {
  const out: Array<'pagesResent' | 'duplicatesDiscarded'> = [];
  if (sp?.unreported?.includes('resent')) out.push('pagesResent');
  if (dp?.unreported?.includes('duplicates-discarded')) out.push('duplicatesDiscarded');
  return out.length ? { notReported: out } : {};
}

/** Seconds with one decimal ("12.3"), two under a second so that 48 ms is not "0.0" ("0.05"). */
function secs(ms: number): string {
  return (ms / 1000).toFixed(ms > 0 && ms < 1000 ? 2 : 1);
}

/**
 * The counters as labelled rows, with units. Blocktime is a sum over vCPUs, so its unit is
 * vCPU·s (two vCPUs blocked for one second are 2.0 vCPU·s), never plain seconds that could be
 * read as wall-clock time. A field a record lacks (written before it existed) is left out.
 */
export function summaryRows(s: RunSummary): Array<{ label: string; value: string }> {
  // A backend without page counters (libvirt): its placeholders are said as such, not as zeros.
  const counted = (v: string | undefined) => (s.countsNotReported ? 'not reported' : v);
  const rows: Array<{ label: string; value: string | undefined }> = [
    { label: s.sentByRecoverySource ? 'pages sent by the recovery source' : 'pages sent', value: counted(s.pagesSent?.toString()) },
    { label: 'pages received', value: s.pagesReceived?.toString() },
    { label: 'of them from a recovery file', value: s.pagesFromFile?.toString() },
    { label: 'pages re-sent', value: s.notReported?.includes('pagesResent') ? 'not reported' : counted(String(s.pagesResent)) },
    { label: 'duplicates discarded', value: s.notReported?.includes('duplicatesDiscarded') ? 'not reported' : counted(String(s.duplicatesDiscarded)) },
    {
      label: 'vCPU blocktime',
      value: s.blocktimeNotMeasured
        ? 'not measured (QEMU measures it with the postcopy-blocktime capability, off in this lab)'
        : s.blocktimeAtEnd
          ? 'not reported (QEMU reports it only when the migration completes)'
          : counted(`${secs(s.blocktimeMs)} vCPU·s${s.blocktimeWorstVcpuMs === undefined ? '' : ` (worst vCPU ${secs(s.blocktimeWorstVcpuMs)} s)`}`),
    },
    { label: 'recoveries', value: String(s.recoveries) },
  ];
  return rows.filter((r): r is { label: string; value: string } => r.value !== undefined);
}

/** The rows in one line, for the drill: "pages sent 65536, pages received 65536, …". */
export function summaryCountersLine(s: RunSummary): string {
  return summaryRows(s)
    .map((r) => `${r.label} ${r.value}`)
    .join(', ');
}
