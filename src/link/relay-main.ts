/**
 * The relay process:
 *   node dist/src/link/relay-main.js --control <path.sock> \
 *     --route 127.0.0.1:<listen>=127.0.0.1:<target> [--route ...] [--parent-pid <pid>] [--seed <n>]
 *
 * Prints one JSON line on stdout when ready: {"ready":true,"routes":[{"listen":{host,port},"target":{host,port}}]}.
 * Exit codes: 0 after quit / SIGTERM / SIGINT / the parent going away; 2 for bad arguments or
 * a listen port in use (the message names the port); 1 for anything unexpected.
 */
import fs from 'node:fs';
import type net from 'node:net';
import { parseRelayArgs, seededRandom, UsageError } from './relay-args.js';
import { serveControl } from './relay-control.js';
import { PortInUseError, Relay } from './relay-server.js';

function parentAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but is not ours to signal; still alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const args = parseRelayArgs(argv);
  const relay = new Relay(args.routes, { random: args.seed === undefined ? Math.random : seededRandom(args.seed) });
  const handles: { control?: net.Server; parentTimer?: NodeJS.Timeout } = {};
  let stopping = false;

  const shutdown = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    clearInterval(handles.parentTimer);
    // Stop taking control requests; an idle control client must not hold the exit up.
    handles.control?.close();
    // Resets every relayed connection; bounded, so a stuck socket cannot keep us alive.
    await Promise.race([relay.close(), new Promise((resolve) => setTimeout(resolve, 1000))]);
    try {
      fs.unlinkSync(args.control);
    } catch {
      // Already gone.
    }
    process.exit(code);
  };

  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGINT', () => void shutdown(0));

  const routes = await relay.listen();
  handles.control = await serveControl(args.control, {
    apply: (fault) => relay.apply(fault),
    restore: () => relay.restore(),
    snapshot: () => relay.snapshot(),
    quit: () => void shutdown(0),
  });
  if (args.parentPid !== undefined) {
    const pid = args.parentPid;
    handles.parentTimer = setInterval(() => {
      if (!parentAlive(pid)) void shutdown(0);
    }, 500);
  }
  process.stdout.write(`${JSON.stringify({ ready: true, routes })}\n`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const expected = err instanceof UsageError || err instanceof PortInUseError;
  process.stderr.write(`relay: ${err instanceof Error ? (expected ? err.message : err.stack) : String(err)}\n`);
  process.exit(expected ? 2 : 1);
});
