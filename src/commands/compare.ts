/**
 * `postcopy-lab compare`: the thread's question answered by measurement. Runs each strategy on
 * the same guest and link (src/compare/run.ts) and prints the table, or with --json one JSON
 * object per strategy per line on stdout (progress then goes to stderr).
 * Exit 0 when the comparison ran, whatever each strategy's outcome; 1 on an internal failure.
 */
import chalk from 'chalk';
import type { VmBackend } from '../driver/backend.js';
import { describeOptions, describeRun, type CompareOptions } from '../compare/options.js';
import { CompareAborted, formatCompareTable, runCompare, type CompareProgress, type StrategyResult } from '../compare/run.js';
import { resultCell } from '../compare/table.js';
import { EXIT_FAILED, EXIT_OK } from './drill.js';

export interface CompareCommandOptions {
  compare: CompareOptions;
  backend: VmBackend;
  json: boolean;
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
  signal?: AbortSignal;
  /** JSON lines carry `type: <this>` (a drill's stream is typed lines); none for `compare` itself. */
  jsonType?: string;
}

const MiB = 1024 * 1024;

/** The progress line for one moment of a strategy's run. */
export function progressLine(p: CompareProgress): string {
  const n = `[${p.index + 1}/${p.total}]`;
  switch (p.kind) {
    case 'start':
      return `${n} ${p.strategy}: ${p.description}`;
    case 'tick':
      return `${n} ${p.strategy}: ${(p.elapsedMs / 1000).toFixed(0)} s, ${p.status}, pass ${p.passes}${p.throttlePct ? `, throttle ${p.throttlePct}%` : ''}, sent ${(p.bytesSent / MiB).toFixed(0)} MiB`;
    case 'done':
      return `${n} ${p.result.strategy}: ${resultCell(p.result)} in ${(p.result.totalMs / 1000).toFixed(1)} s`;
  }
}

export async function runCompareCommand(o: CompareCommandOptions): Promise<number> {
  const out = o.out ?? process.stdout;
  const err = o.err ?? process.stderr;
  // With --json, stdout is only the result lines.
  const progress = o.json ? err : out;
  const options = describeOptions(o.compare, o.backend.qemuVersion);
  progress.write(chalk.bold('postcopy-lab compare: ') + describeRun(o.compare, o.backend.qemuVersion) + '\n');
  let lastTick = -Infinity;
  let results: StrategyResult[];
  try {
    results = await runCompare(
      o.compare,
      (p) => {
        // A line every few seconds while a strategy runs: alive, and where it is.
        if (p.kind === 'tick') {
          if (p.elapsedMs - lastTick < 5000) return;
          lastTick = p.elapsedMs;
        } else lastTick = p.kind === 'start' ? 0 : lastTick;
        progress.write((p.kind === 'tick' ? chalk.dim(progressLine(p)) : progressLine(p)) + '\n');
        if (p.kind === 'done' && o.json) out.write(JSON.stringify({ ...(o.jsonType ? { type: o.jsonType } : {}), ...p.result, options }) + '\n');
      },
      { backend: o.backend, signal: o.signal },
    );
  } catch (e) {
    if (e instanceof CompareAborted) return EXIT_FAILED;
    throw e;
  }
  if (!o.json) out.write('\n' + formatCompareTable(results) + '\n');
  return EXIT_OK;
}
