/**
 * The default link: our userspace relay (relay-main.ts) as a separate process between the
 * source and destination VMs. RelayLink starts it, talks to its control socket and stops it.
 *
 * Routes: the destination listens on two loopback ports RelayLink picks (incoming, recover);
 * the relay listens on two ports of its own choosing (it binds port 0 and reports them), and
 * the source connects to those.
 */
import { builtEntry } from '../entry-path.js';
import fs from 'node:fs';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { Link, LinkEndpoints, LinkFault, LinkSnapshot, Side } from '../types.js';
import { parseLinkFault } from './fault-model.js';
import { RelayControl } from './relay-control.js';
import { freePorts } from '../util/ports.js';
import type { Route } from './relay-server.js';

export { RelayControl } from './relay-control.js';

/** The compiled relay entry point, beside this module (works from dist/). */
export const RELAY_MAIN = builtEntry('./relay-main.js', import.meta.url);

export interface RelayLinkOptions {
  /** Where the control socket goes (relay.sock). Must exist. */
  runtimeDir: string;
  /** Loopback address for every socket; 127.0.0.1 unless told. */
  host?: string;
  /** Seed for the relay's jitter and loss draws, for reproducible runs. */
  seed?: number;
  /** How long to wait for the relay's ready line (default 30 s: a Node start on a loaded machine can take 10). */
  startTimeoutMs?: number;
  /** The relay entry point to run; RELAY_MAIN unless told (tests running from sources pass dist's). */
  relayMain?: string;
}

const STDERR_TAIL_BYTES = 2000;

export class RelayLink implements Link {
  readonly kind = 'relay' as const;
  private readonly host: string;
  private readonly socketPath: string;
  private readonly control: RelayControl;
  private child: ResultPromise | undefined;
  private exit: { code: number | undefined; signal: string | undefined } | undefined;
  private stderrTail = '';
  private stopping = false;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly options: RelayLinkOptions) {
    this.host = options.host ?? '127.0.0.1';
    this.socketPath = path.join(options.runtimeDir, 'relay.sock');
    this.control = new RelayControl(this.socketPath);
  }

  /** The relay's pid while it runs (for diagnostics and cleanup). */
  get pid(): number | undefined {
    return this.exit ? undefined : this.child?.pid;
  }

  async start(): Promise<LinkEndpoints> {
    if (this.child) throw new Error('RelayLink.start() was already called');
    // The destination VM binds these later, so there is an unavoidable window between asking
    // the OS for a free port and the VM binding it; the relay's own ports have no such window.
    const [incoming, recover] = await freePorts(this.host, 2);
    const args = [
      this.options.relayMain ?? RELAY_MAIN,
      '--control',
      this.socketPath,
      '--route',
      `${this.host}:0=${this.host}:${incoming}`,
      '--route',
      `${this.host}:0=${this.host}:${recover}`,
      '--parent-pid',
      String(process.pid),
    ];
    if (this.options.seed !== undefined) args.push('--seed', String(this.options.seed));
    const child = execa(process.execPath, args, { stdin: 'ignore', buffer: false, reject: false, cleanup: true });
    this.child = child;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-STDERR_TAIL_BYTES);
    });
    this.exited = child.then((result) => {
      this.exit = { code: result.exitCode, signal: result.signal };
    });
    const routes = await this.readReady(child, this.options.startTimeoutMs ?? 30_000);
    const [inRoute, recoverRoute] = routes;
    return {
      incoming: { listen: { host: this.host, port: incoming }, connect: inRoute.listen },
      recover: { listen: { host: this.host, port: recover }, connect: recoverRoute.listen },
    };
  }

  wrapCommand(_side: Side, file: string, args: string[]): { file: string; args: string[] } {
    return { file, args };
  }

  async apply(fault: LinkFault): Promise<void> {
    const checked = parseLinkFault(fault);
    await this.call(() => this.control.apply(checked));
  }

  async restore(): Promise<void> {
    await this.call(() => this.control.restore());
  }

  async snapshot(): Promise<LinkSnapshot> {
    return this.call(() => this.control.snapshot());
  }

  /** quit over the control socket, then SIGTERM, then SIGKILL; never throws. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || this.stopping) {
      await this.exited;
      return;
    }
    this.stopping = true;
    if (!this.exit) await this.control.quit().catch(() => {});
    if (!(await this.waitExit(1000))) {
      child.kill('SIGTERM');
      if (!(await this.waitExit(2000))) {
        child.kill('SIGKILL');
        await this.waitExit(2000);
      }
    }
    // A killed relay cannot remove its own socket file.
    fs.rmSync(this.socketPath, { force: true });
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    this.assertRunning();
    try {
      return await fn();
    } catch (err) {
      // If the relay died under us, say so rather than "connection refused".
      await this.waitExit(50);
      this.assertRunning();
      throw err;
    }
  }

  private assertRunning(): void {
    if (!this.child) throw new Error('the relay is not started: call start() first');
    if (this.exit) throw new Error(this.exitMessage());
    if (this.stopping) throw new Error('the relay is stopping');
  }

  private exitMessage(): string {
    const how = this.exit?.signal ? `signal ${this.exit.signal}` : `code ${this.exit?.code ?? 'unknown'}`;
    const tail = this.stderrTail.trim();
    return `the relay process exited (${how})${tail ? `: ${tail}` : ''}`;
  }

  private async waitExit(ms: number): Promise<boolean> {
    if (this.exit) return true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
    return this.exit !== undefined;
  }

  private readReady(child: ResultPromise, timeoutMs: number): Promise<Route[]> {
    return new Promise((resolve, reject) => {
      let buffered = '';
      const stdout = child.stdout!;
      stdout.setEncoding('utf8');
      const timer = setTimeout(() => {
        finish();
        child.kill('SIGKILL');
        reject(new Error(`the relay did not report ready within ${timeoutMs} ms${this.stderrTail ? `: ${this.stderrTail.trim()}` : ''}`));
      }, timeoutMs);
      const onData = (text: string): void => {
        buffered += text;
        const newline = buffered.indexOf('\n');
        if (newline < 0) return;
        finish();
        try {
          const ready = JSON.parse(buffered.slice(0, newline)) as { ready?: boolean; routes?: Route[] };
          if (ready.ready !== true || !Array.isArray(ready.routes) || ready.routes.length !== 2) throw new Error('unexpected');
          // Keep draining stdout so the relay can never block on a full pipe.
          stdout.resume();
          resolve(ready.routes);
        } catch {
          reject(new Error(`the relay printed something other than its ready line: ${buffered.slice(0, 200)}`));
        }
      };
      const onExit = (): void => {
        finish();
        reject(new Error(this.exitMessage()));
      };
      const finish = (): void => {
        clearTimeout(timer);
        stdout.off('data', onData);
      };
      stdout.on('data', onData);
      void this.exited.then(() => {
        if (buffered.indexOf('\n') < 0) onExit();
      });
    });
  }
}
