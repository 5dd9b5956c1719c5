/**
 * `postcopy-lab replay <file.jsonl>`: print a recorded run as the drill printed it — its steps,
 * commands, state changes, faults, counters once a second and the summary — from the JSONL
 * record every run writes. For reading a run someone attached to a bug report.
 */
import { readFile } from 'node:fs/promises';
import chalk from 'chalk';
import type { LabEvent, RunSummary, Snapshot } from '../types.js';
import { countersLine, eventLine, secs, summaryLines } from './drill.js';

export class RecordError extends Error {
  override name = 'RecordError';
}

interface RunHeader {
  type: 'run';
  lab: string;
  seed?: number;
  mode?: string;
  startedAt?: string;
  version?: string;
  node?: string;
  link?: string;
  backend?: string;
}

/** Parses a record; a line that is not a JSON object with a known type is an error naming it. */
export function parseRecord(text: string, file: string): Array<Record<string, unknown> & { type: string }> {
  const out: Array<Record<string, unknown> & { type: string }> = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new RecordError(`${file}:${i + 1}: not JSON (a postcopy-lab run record has one JSON object per line)`);
    }
    const type = (v as { type?: unknown })?.type;
    if (typeof v !== 'object' || v === null || !['run', 'event', 'snapshot', 'summary'].includes(String(type))) {
      throw new RecordError(`${file}:${i + 1}: expected an object with type run, event, snapshot or summary`);
    }
    out.push(v as Record<string, unknown> & { type: string });
  });
  if (out[0]?.type !== 'run') throw new RecordError(`${file}: the first line must be the run header ({"type":"run",...}); is this a postcopy-lab record?`);
  return out;
}

export async function runReplay(file: string, o: { verbose: boolean; out?: NodeJS.WritableStream }): Promise<number> {
  const out = o.out ?? process.stdout;
  const print = (line: string) => out.write(line + '\n');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new RecordError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const records = parseRecord(text, file);
  const h = records[0] as unknown as RunHeader;
  print(
    chalk.bold(`replay of ${h.lab}`) +
      chalk.dim(`  (recorded ${h.startedAt ?? '?'}, ${h.mode ?? 'drill'}, seed ${h.seed ?? '?'}, link ${h.link ?? '?'}, backend ${h.backend ?? 'sim'}, postcopy-lab ${h.version ?? '?'}, node ${h.node ?? '?'})`),
  );
  let lastSnapshot: Snapshot | null = null;
  let lastCounters = -Infinity;
  let summary: RunSummary | null = null;
  for (const r of records.slice(1)) {
    if (r.type === 'event') {
      const line = eventLine(r as unknown as LabEvent, o.verbose);
      if (line) print(`${chalk.dim(`[${secs(Number(r.t))}]`)} ${line}`);
    } else if (r.type === 'snapshot') {
      lastSnapshot = r as unknown as Snapshot;
      if (lastSnapshot.t - lastCounters >= 1000) {
        lastCounters = lastSnapshot.t;
        print(`${chalk.dim(`[${secs(lastSnapshot.t)}]`)}   ${chalk.dim(countersLine(lastSnapshot))}`);
      }
    } else if (r.type === 'summary') {
      summary = r as unknown as RunSummary;
    }
  }
  if (!summary) {
    print(chalk.yellow('the record has no summary: the run was killed before it finished'));
    return 1;
  }
  for (const l of summaryLines(summary, lastSnapshot)) print(l);
  return summary.ok ? 0 : 1;
}
