/** Spawns the fixture programs inside a namespace and reads their JSON-line events. */
import { execa, type ResultPromise } from 'execa';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

export interface Ev {
  t: number;
  event: string;
  total?: number;
  code?: string;
  n?: number;
}

export class NsProc {
  readonly events: Ev[] = [];
  private waiters: Array<() => void> = [];
  readonly proc: ResultPromise<{ stdin: 'pipe'; stdout: 'pipe'; stderr: 'pipe'; reject: false }>;
  private buf = '';

  constructor(ns: string, script: string, args: string[]) {
    this.proc = execa('ip', ['netns', 'exec', ns, process.execPath, FIXTURES + script, ...args], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      reject: false,
    });
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (chunk: string) => {
      this.buf += chunk;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        try {
          this.events.push(JSON.parse(line) as Ev);
        } catch {
          /* ignore */
        }
        for (const w of this.waiters.splice(0)) w();
      }
    });
  }

  send(line: string): void {
    this.proc.stdin.write(line + '\n');
  }

  /** Resolves with the first event (from index `from`) matching `pred`, or rejects after timeoutMs. */
  waitFor(pred: (e: Ev) => boolean, timeoutMs: number, from = 0): Promise<Ev> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.events.slice(from).find(pred);
        if (hit) {
          clearTimeout(timer);
          resolve(hit);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms; events: ${JSON.stringify(this.events.slice(-5))}`)), timeoutMs);
      if (check()) return;
      const loop = () => {
        if (!check()) this.waiters.push(loop);
      };
      this.waiters.push(loop);
    });
  }

  /** The last data total (server). */
  get total(): number {
    return [...this.events].reverse().find((e) => e.event === 'data')?.total ?? 0;
  }

  async kill(): Promise<void> {
    this.proc.stdin.end();
    this.proc.kill('SIGTERM');
    await this.proc;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Why root-needing tests cannot run here, or null when they can. */
export function rootSkipReason(): string | null {
  if (!isRoot()) return 'not root: the kernel link creates network namespaces';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch (err) {
    return `ip netns does not work here: ${(err as Error).message}`;
  }
  return null;
}

export function namespacesNow(): string[] {
  const out = execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }).trim();
  return out ? (JSON.parse(out) as Array<{ name: string }>).map((r) => r.name) : [];
}

export function uniqueRunId(tag: string): string {
  return `t${process.pid}${tag}${Math.random().toString(36).slice(2, 6)}`;
}
