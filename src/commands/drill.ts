/**
 * `postcopy-lab drill <lab>`: the lab run headless. Readable lines with live counters, or with
 * --json one JSON object per line (events, periodic snapshots, the summary) and nothing else on
 * stdout. Exit 0 only if every condition held and the destination's memory verified.
 */
import chalk from 'chalk';
import type { LabEvent, PagesInfo, RunSummary, Snapshot } from '../types.js';
import { LabSession } from '../lab/runner.js';
import type { Lab } from '../lab/schema.js';
import { formatDuration } from '../lab/duration.js';
import { summaryCountersLine } from '../lab/summary.js';
import { fmtDuration } from '../util/format.js';
import type { Link } from '../types.js';
import type { AnyBackend } from '../driver/backend.js';

export interface DrillOptions {
  lab: Lab;
  json: boolean;
  seed: number;
  timeoutMs: number;
  verbose: boolean;
  /** Play at a person's pace: holds and interactive-parameters (`--hold`). */
  hold?: boolean;
  /** Wait this long before each step's actions (`--learner-delay`). */
  learnerDelayMs?: number;
  makeLink(runtimeDir: string): Link;
  linkKind: string;
  /** What a VM is; the sim when absent. */
  backend?: AnyBackend;
  recordPath?: string;
  recordMeta?: Record<string, unknown>;
  out?: NodeJS.WritableStream;
  /** Register the session so signal handlers can stop it. */
  onSession?(s: LabSession): void;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_BAD_INPUT = 2;

const MiB = 1024 * 1024;

export function secs(t: number): string {
  return `${(t / 1000).toFixed(1).padStart(5)}s`;
}

/** The destination's blocktime in the counters line: what the backend measured, or why not. */
function blocktimePart(dp: PagesInfo): string {
  if (dp['blocktime-unknown']) return 'blocktime not measured';
  if (dp['blocktime-at-end']) return 'blocktime reported at the end';
  const blocktime = `blocktime ${(dp['blocktime-ms'] / 1000).toFixed(1)} vCPU·s`;
  return dp.unreported?.includes('blocked-vcpus') ? blocktime : `${dp['blocked-vcpus']} vCPU${dp['blocked-vcpus'] === 1 ? '' : 's'} blocked, ${blocktime}`;
}

/**
 * One line of live counters for both sides and the link, each number named as PagesInfo
 * defines it (src/types.ts): the source's pages sent and remaining, the destination's pages
 * received, blocked vCPUs (now) and blocktime (vCPU·s, summed over vCPUs).
 */
export function countersLine(s: Snapshot): string {
  const src = s.source;
  const dst = s.destination;
  const ram = src.ram ?? {};
  const sp = src.pages;
  const srcPart = sp
    ? `sent ${sp.sent ?? sp.received}/${sp.total} pages, remaining ${sp.missing}`
    : ram.total
      ? `sent ${((ram.transferred ?? 0) / MiB).toFixed(0)} MiB, remaining ${((ram.remaining ?? 0) / MiB).toFixed(0)} MiB`
      : '-';
  const mbs = ram.mbps !== undefined ? `, ${(ram.mbps / 8).toFixed(0)} MB/s` : '';
  // auto-converge at work: the throttle and what it leaves of the guest's speed, side by side.
  const thr = src.throttle ? `, throttle ${src.throttle}%${src.guest ? ` (guest at ${src.guest.percent}% speed)` : ''}` : '';
  const quiet = (side: typeof src) => (side.stalledMs > 1000 ? `, no bytes for ${fmtDuration(side.stalledMs)}` : '');
  const dp = dst.pages;
  // libvirt gives no page counts for the destination: its state alone, never zeros.
  const dstPart = dp?.['counts-unknown']
    ? `dst ${dst.status} (page counts not reported)`
    : dp
    ? `dst ${dst.status} received ${dp.received}/${dp.total} pages, ${blocktimePart(dp)}, fault p99 ${dp['fault-latency-us'].count ? `${(dp['fault-latency-us'].p99 / 1000).toFixed(1)} ms` : '–'}` +
      (dp.walker.active ? `, walker ${((dp.walker.position / dp.walker.total) * 100).toFixed(0)}%` : '') +
      quiet(dst)
    : `dst ${dst.status}${dst.alive ? '' : ' (dead)'}`;
  const l = s.link;
  const ld = (d: 'source-to-destination' | 'destination-to-source') => l[d].state;
  const linkPart = l.up ? 'link up' : `link ${ld('source-to-destination')}/${ld('destination-to-source')}`;
  return `src ${src.status} ${srcPart}${mbs}${thr}${quiet(src)} | ${dstPart} | ${linkPart}`;
}

export function summaryLines(sum: RunSummary, snap: Snapshot | null): string[] {
  const pages = snap?.destination.pages?.total ?? 0;
  const lines: string[] = [];
  if (sum.ok && sum.expectedFailure) {
    lines.push(chalk.green(`✓ ${sum.labId}: ended as the lab expects (${sum.expectedFailure.reason}) in ${fmtDuration(sum.durationMs)}: ${sum.expectedFailure.message}`));
  } else if (sum.ok) {
    lines.push(chalk.green(`✓ ${sum.labId}: completed in ${fmtDuration(sum.durationMs)}, every page verified (${pages} pages)`));
  } else if (sum.knownBug) {
    // Still a failure (exit 1): the bug the lab declares for this QEMU version happened.
    lines.push(chalk.yellow(`⚠ ${sum.labId}: bug reproduced: ${sum.failure?.message ?? 'failed'}`));
  } else {
    lines.push(chalk.red(`✗ ${sum.labId}: ${sum.failure?.message ?? 'failed'}`));
    if (sum.failure?.step) lines.push(chalk.red(`  at step ${sum.failure.step}${sum.failure.stepTitle ? ` '${sum.failure.stepTitle}'` : ''}`));
  }
  lines.push(`  ${summaryCountersLine(sum)}`);
  // The lab's closing words: what the run just showed.
  if (sum.ok && sum.summaryText?.trim()) lines.push('', ...sum.summaryText.trim().split('\n'));
  return lines;
}

export function eventLine(e: LabEvent, verbose: boolean): string | null {
  const side = e.side ? `${e.side}: ` : '';
  switch (e.kind) {
    case 'step':
      return (e.data as { done?: boolean })?.done ? chalk.green(`✓ ${e.text}`) : chalk.bold(`▶ ${e.text}`);
    case 'qmp':
      return `  ${chalk.cyan(side + e.text)}`;
    case 'fault':
      return `  ${chalk.magenta(e.text)}`;
    case 'state':
      return `  ${chalk.yellow(side + e.text)}`;
    case 'error':
      return `  ${chalk.red(side + e.text)}`;
    case 'warning':
      return `  ${chalk.yellow(side + e.text)}`;
    case 'hint':
    case 'hold':
      return `  ${chalk.dim(e.text)}`;
    case 'event':
    case 'info':
      // An operator's act on a VM (killed, started, a recovery source in the source's place) and
      // a recovery file written are said without --verbose: they are the lab's steps.
      return verbose || (e.data as { say?: boolean } | undefined)?.say === true ? `  ${chalk.dim(side + e.text)}` : null;
  }
}

/**
 * Whether a snapshot taken at `t` gets a counters line: once a second, and (as text) not when
 * it was taken before the last link change already printed. A slow backend's poll (libvirt's
 * virsh calls) can land after "link: restored" still saying `link cut/cut`.
 */
export function counterLineDue(t: number, lastPrinted: number, lastLinkEvent: number): boolean {
  return t - lastPrinted >= 1000 && t >= lastLinkEvent;
}

/**
 * The header's backend: "sim as QEMU 10.0", "backend qemu 7.2", "backend libvirt 9.0, QEMU 7.2"
 * (libvirt's version and the QEMU it runs are two different numbers).
 */
export function backendLabel(b: AnyBackend): string {
  if (b.kind === 'sim') return `sim as QEMU ${b.qemuVersion}`;
  if (b.kind === 'libvirt') {
    const libvirt = 'libvirtVersion' in b && typeof b.libvirtVersion === 'string' ? ` ${b.libvirtVersion}` : '';
    return `backend libvirt${libvirt}, QEMU ${b.qemuVersion}`;
  }
  return `backend ${b.kind} ${b.qemuVersion}`;
}

/** Runs a drill to the end; returns the exit code. Never throws. */
export async function runDrill(o: DrillOptions): Promise<number> {
  const out = o.out ?? process.stdout;
  const print = (line: string) => out.write(line + '\n');
  const json = (obj: Record<string, unknown>) => out.write(JSON.stringify(obj) + '\n');
  const session = new LabSession(o.lab, {
    mode: 'drill',
    seed: o.seed,
    makeLink: o.makeLink,
    backend: o.backend,
    recordPath: o.recordPath,
    recordMeta: o.recordMeta,
    hold: o.hold,
    learnerDelayMs: o.learnerDelayMs,
  });
  o.onSession?.(session);
  // Every event as it happens, and the counters once a second, in the order they came.
  // When the last link change was printed: a snapshot taken before it would contradict it.
  let lastLinkEvent = -Infinity;
  const offEvent = session.onEvent((e) => {
    if (e.kind === 'fault') lastLinkEvent = Math.max(lastLinkEvent, e.t);
    if (o.json) return json({ type: 'event', ...e });
    const line = eventLine(e, o.verbose);
    if (line) print(`${chalk.dim(`[${secs(e.t)}]`)} ${line}`);
  });
  let lastCounters = -Infinity;
  let lastJsonSnapshot: Snapshot | null = null;
  // The snapshot the summary's counters were read from: the one current when it was made
  // (polling goes on until the session stops, so the final state may be newer).
  let summarySnapshot: Snapshot | null = null;
  const offFinished = session.subscribe(() => {
    const st = session.getState();
    if (st.finished && !summarySnapshot) summarySnapshot = st.snapshot;
  });
  const offSnapshot = session.onSnapshot((snap) => {
    if (!counterLineDue(snap.t, lastCounters, o.json ? -Infinity : lastLinkEvent)) return;
    lastCounters = snap.t;
    lastJsonSnapshot = snap;
    if (o.json) json({ type: 'snapshot', ...snap });
    else print(`${chalk.dim(`[${secs(snap.t)}]`)}   ${chalk.dim(countersLine(snap))}`);
  });
  if (!o.json) print(chalk.bold(`postcopy-lab drill ${o.lab.id}: ${o.lab.title}`) + chalk.dim(`  (seed ${o.seed}, link ${o.linkKind}${o.backend ? `, ${backendLabel(o.backend)}` : ''})`));
  let summary: RunSummary;
  const timer = setTimeout(() => {
    void session.stop('timeout');
  }, o.timeoutMs);
  try {
    await session.start();
    summary = await session.run();
  } catch (e) {
    summary = session.fail(e);
  } finally {
    clearTimeout(timer);
  }
  await session.stop();
  offEvent();
  offSnapshot();
  offFinished();
  if (summary.failure?.reason === 'timeout') {
    summary = { ...summary, failure: { ...summary.failure, message: `the drill did not finish within --timeout ${formatDuration(o.timeoutMs)}` } };
  }
  const snap = session.getState().snapshot;
  // The snapshot the summary's counters come from goes out first, so the last snapshot line
  // and the summary agree (the once-a-second lines may have skipped it).
  const counted = summarySnapshot ?? snap;
  if (o.json && counted && counted !== lastJsonSnapshot) json({ type: 'snapshot', ...counted });
  if (o.json) json({ type: 'summary', ...summary, snapshot: snap ? { source: snap.source.status, destination: snap.destination.status } : null });
  else for (const l of summaryLines(summary, snap)) print(l);
  return summary.ok ? EXIT_OK : EXIT_FAILED;
}
