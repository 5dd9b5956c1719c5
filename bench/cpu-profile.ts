/**
 * Where the TUI process's CPU went inside the bench's measured windows: a V8 CPU profile
 * (`node --cpu-prof`) cut to the windows and summed by self time per part of the app. The whole
 * profile is mostly startup (module loading, the lab's YAML) and the migration's setup; only the
 * window is what the bench's CPU figure measures.
 *
 * Profile timestamps are V8's TimeTicks (CLOCK_MONOTONIC, µs), the clock of
 * process.hrtime in any process on the machine, so the bench's window marks apply to the TUI's
 * profile directly.
 */
import fs from 'node:fs';
import path from 'node:path';

/** A window as process.hrtime microseconds. */
export interface Window {
  startUs: number;
  endUs: number;
}

export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The part of the app a frame's self time belongs to, from its script's URL. */
function part(url: string, fn: string): string {
  if (!url) return fn === '(garbage collector)' ? 'GC' : fn === '(program)' ? 'V8 (program)' : `native: ${fn}`;
  if (url.includes('react-reconciler')) return 'React reconciler';
  if (url.includes('yoga') || url.startsWith('wasm:')) return 'Yoga layout';
  if (url.includes('/ui/ink-output-cache')) return 'Ink output (row cache)';
  if (/node_modules\/(ink|@alcalzone|string-width|widest-line|slice-ansi|wrap-ansi|cli-truncate|ansi-|strip-ansi|chalk|emoji-regex|get-east-asian-width)/.test(url)) return 'Ink output and text';
  if (url.includes('/src/ui/') || url.includes('/dist/src/ui/')) return 'app: ui';
  if (url.includes('/qmp/')) return 'app: qmp';
  if (url.includes('/lab/') || url.includes('/driver/') || url.includes('/link/')) return 'app: lab, driver, link';
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/').slice(0, 2).join('/')}`;
  return url.replace(/.*node_modules\//, 'npm: ').split('/')[0];
}

/** Self time (ms) per part and per function in the windows, over every profile in `dir`. */
export function summarize(dir: string, windows: Window[]): { windowMs: number; parts: [string, number][]; functions: [string, number][] } {
  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, us: number) => m.set(k, (m.get(k) ?? 0) + us);
  let windowUs = 0;
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.cpuprofile'))) {
    const p = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Profile;
    const mine = windows.filter((w) => w.startUs >= p.startTime && w.endUs <= p.endTime);
    if (!mine.length) continue;
    windowUs += mine.reduce((a, w) => a + w.endUs - w.startUs, 0);
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    let t = p.startTime;
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i];
      // A sample's delta is the time since the previous one: it is charged to this sample.
      if (!mine.some((w) => t > w.startUs && t <= w.endUs)) continue;
      const { functionName, url, lineNumber } = byId.get(p.samples[i])!.callFrame;
      if (functionName === '(idle)') continue;
      add(parts, part(url, functionName), p.timeDeltas[i]);
      add(functions, `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`, p.timeDeltas[i]);
    }
  }
  const sorted = (m: Map<string, number>) => [...m].map(([k, us]) => [k, us / 1000] as [string, number]).sort((a, b) => b[1] - a[1]);
  return { windowMs: windowUs / 1000, parts: sorted(parts), functions: sorted(functions) };
}
