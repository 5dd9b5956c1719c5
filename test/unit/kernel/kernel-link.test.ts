/** The kernel link's logic against a fake runner: what it runs, what it refuses, how it rolls back. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { Argv } from '../../../src/kernel/argv.js';
import { KernelApplyError, KernelCommandError, KernelUnsupportedError } from '../../../src/kernel/errors.js';
import { KernelLink, NOT_ROOT_MESSAGE } from '../../../src/kernel/kernel-link.js';
import type { RunOptions } from '../../../src/kernel/run.js';
import { LinkFaultError } from '../../../src/link/fault-model.js';

interface Call {
  argv: Argv;
  input?: string;
}

/** A runner that records calls and fails those `fail` matches, with a kernel-like message. */
function fakeRunner(fail: (c: Call) => string | null = () => null) {
  const calls: Call[] = [];
  const runner = async (argv: Argv, opts?: RunOptions) => {
    const c = { argv, input: opts?.input };
    calls.push(c);
    const msg = fail(c);
    if (msg) throw new KernelCommandError({ argv, exitCode: 2, stderr: msg });
    return { stdout: '', stderr: '' };
  };
  return { runner, calls, text: () => calls.map((c) => c.argv.join(' ') + (c.input ? ` <<< ${c.input.trim().replace(/\n/g, ' | ')}` : '')) };
}

const OWNER_DIR = mkdtempSync(path.join(os.tmpdir(), 'pcl-owner-'));
const ownerDir = () => OWNER_DIR;
afterAll(() => rmSync(OWNER_DIR, { recursive: true, force: true }));
const NO_NETEM = (c: Call) => (c.argv.includes('netem') ? 'Error: Specified qdisc kind is unknown.' : null);

describe('KernelLink (fake runner)', () => {
  it('refuses to start when not root, with the message the CLI shows', async () => {
    const f = fakeRunner();
    const link = new KernelLink({ runId: 'r1', runner: f.runner, isRoot: () => false, ownerDir: ownerDir() });
    await expect(link.start()).rejects.toThrow(NOT_ROOT_MESSAGE);
    expect(NOT_ROOT_MESSAGE).toMatch(/--link relay/);
    expect(f.calls).toEqual([]);
  });

  it('start() builds the topology inside the namespaces and returns the destination address', async () => {
    const f = fakeRunner();
    const link = new KernelLink({ runId: 'r1', subnet: '10.9.8.0/24', migrationPort: 7000, recoverPort: 7001, runner: f.runner, isRoot: () => true, ownerDir: ownerDir() });
    const ep = await link.start();
    expect(ep).toEqual({
      incoming: { listen: { host: '10.9.8.2', port: 7000 }, connect: { host: '10.9.8.2', port: 7000 } },
      recover: { listen: { host: '10.9.8.2', port: 7001 }, connect: { host: '10.9.8.2', port: 7001 } },
    });
    expect(f.text()).toEqual([
      'ip netns add pcl-r1-src',
      'ip netns add pcl-r1-dst',
      'ip -n pcl-r1-src link add pcl-src type veth peer name pcl-dst netns pcl-r1-dst',
      'ip -n pcl-r1-src addr add 10.9.8.1/24 dev pcl-src',
      'ip -n pcl-r1-dst addr add 10.9.8.2/24 dev pcl-dst',
      'ip -n pcl-r1-src link set dev lo up',
      'ip -n pcl-r1-dst link set dev lo up',
      'ip -n pcl-r1-src link set dev pcl-src up',
      'ip -n pcl-r1-dst link set dev pcl-dst up',
      'tc -n pcl-r1-src qdisc add dev lo root netem delay 1ms',
      'tc -n pcl-r1-src qdisc del dev lo root',
      'ip netns exec pcl-r1-src nft -f - <<< add table inet pcl-link | add counter inet pcl-link dropped | add chain inet pcl-link egress { type filter hook output priority 0 ; policy accept ; }',
      'ip netns exec pcl-r1-dst nft -f - <<< add table inet pcl-link | add counter inet pcl-link dropped | add chain inet pcl-link egress { type filter hook output priority 0 ; policy accept ; }',
    ]);
    expect(link.wrapCommand('source', 'node', ['vm.js', '--side', 'source'])).toEqual({
      file: 'ip',
      args: ['netns', 'exec', 'pcl-r1-src', 'node', 'vm.js', '--side', 'source'],
    });
  });

  it('shapes each direction on its own veth end: rate, then cut, then down', async () => {
    const f = fakeRunner(NO_NETEM);
    const link = new KernelLink({ runId: 'r2', runner: f.runner, isRoot: () => true, ownerDir: ownerDir() });
    await link.start();
    f.calls.length = 0;
    await link.apply({ kind: 'bandwidth', direction: 'destination-to-source', bytesPerSec: 1_000_000 });
    await link.apply({ kind: 'bandwidth', direction: 'destination-to-source', bytesPerSec: 2_000_000 });
    await link.apply({ kind: 'cut', direction: 'source-to-destination' });
    await link.apply({ kind: 'down', direction: 'source-to-destination' });
    expect(f.text()).toEqual([
      'tc -n pcl-r2-dst qdisc del dev pcl-dst root',
      'tc -n pcl-r2-dst qdisc add dev pcl-dst root handle 1: tbf rate 8000000bit burst 20000b latency 200ms',
      // Same qdisc, new rate: changed in place.
      'tc -n pcl-r2-dst qdisc replace dev pcl-dst root handle 1: tbf rate 16000000bit burst 40000b latency 200ms',
      'ip netns exec pcl-r2-src nft -f - <<< flush chain inet pcl-link egress | ' +
        'add rule inet pcl-link egress oifname "pcl-src" meta l4proto tcp counter name "dropped" reject with tcp reset | ' +
        'add rule inet pcl-link egress oifname "pcl-src" counter name "dropped" reject',
      // A cut also aborts the live sockets on both ends, so an idle receiver hears of it.
      'ip netns exec pcl-r2-src ss -K -t state connected dst 10.213.0.2',
      'ip netns exec pcl-r2-dst ss -K -t state connected dst 10.213.0.1',
      'ip netns exec pcl-r2-src nft -f - <<< flush chain inet pcl-link egress',
      'ip -n pcl-r2-src link set dev pcl-src down',
    ]);
    const snap = await link.snapshot();
    expect(snap['source-to-destination'].state).toBe('down');
    expect(snap['destination-to-source']).toMatchObject({ state: 'down', rateBytesPerSec: 2_000_000 });
  });

  it('refuses latency and loss without netem, before running anything; rate still works', async () => {
    const f = fakeRunner(NO_NETEM);
    const link = new KernelLink({ runId: 'r3', runner: f.runner, isRoot: () => true, ownerDir: ownerDir() });
    await link.start();
    f.calls.length = 0;
    const err = await link.apply({ kind: 'latency', ms: 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelUnsupportedError);
    expect((err as Error).message).toBe(
      'latency needs the kernel\'s netem qdisc (module sch_netem), which this kernel lacks (tc said: Error: Specified qdisc kind is unknown.); ' +
        'use --link relay for latency, jitter and loss (rate, blackhole, cut and down work on the kernel link)',
    );
    await expect(link.apply({ kind: 'loss', percent: 1, direction: 'source-to-destination' })).rejects.toThrow(/sch_netem/);
    expect(f.calls).toEqual([]);
    await link.apply({ kind: 'bandwidth', bytesPerSec: 1000 });
    expect(f.calls.length).toBeGreaterThan(0);
  });

  it('rolls back the direction already changed when the second one fails', async () => {
    let sabotage = false;
    const f = fakeRunner((c) => (sabotage && c.argv.includes('pcl-r4-dst') && c.input?.includes('drop') ? 'Error: Could not process rule: Operation not permitted' : null));
    const link = new KernelLink({ runId: 'r4', runner: f.runner, isRoot: () => true, ownerDir: ownerDir() });
    await link.start();
    f.calls.length = 0;
    sabotage = true;
    const err = await link.apply({ kind: 'blackhole' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelApplyError);
    expect((err as KernelApplyError).rolledBack).toBe(true);
    expect((err as Error).message).toMatch(/Operation not permitted.*rolled back/);
    const text = f.text();
    expect(text[0]).toMatch(/pcl-r4-src nft -f - <<< flush chain .* drop$/);
    expect(text[1]).toMatch(/pcl-r4-dst nft -f - <<< flush chain .* drop$/);
    // The undo: the source direction fully re-rendered to "up" (no rule, no qdisc, link up).
    expect(text.slice(2)).toEqual([
      'tc -n pcl-r4-src qdisc del dev pcl-src root',
      'ip netns exec pcl-r4-src nft -f - <<< flush chain inet pcl-link egress',
      'ip -n pcl-r4-src link set dev pcl-src up',
      'tc -n pcl-r4-dst qdisc del dev pcl-dst root',
      'ip netns exec pcl-r4-dst nft -f - <<< flush chain inet pcl-link egress',
      'ip -n pcl-r4-dst link set dev pcl-dst up',
    ]);
    expect((await link.snapshot()).up).toBe(true);
  });

  it('stop() is idempotent and ignores things already gone', async () => {
    const f = fakeRunner((c) => (c.argv[0] === 'ip' && c.argv.includes('del') ? 'Cannot find device "pcl-src"' : null));
    const link = new KernelLink({ runId: 'r5', runner: f.runner, isRoot: () => true, ownerDir: ownerDir() });
    await link.start();
    await link.stop();
    await link.stop();
    await expect(link.apply({ kind: 'up' })).rejects.toThrow(/not running/);
  });
});

describe('KernelLink and the fault model', () => {
  const started = async (runId: string) => {
    const f = fakeRunner();
    const link = new KernelLink({ runId, runner: f.runner, isRoot: () => true, ownerDir: ownerDir() });
    await link.start();
    f.calls.length = 0;
    return { f, link };
  };

  it('bandwidth 0 means no cap: it removes the tbf (the TUI\'s unlimited-rate preset)', async () => {
    const { f, link } = await started('r6');
    await link.apply({ kind: 'bandwidth', direction: 'source-to-destination', bytesPerSec: 1_000_000 });
    f.calls.length = 0;
    await link.apply({ kind: 'bandwidth', direction: 'source-to-destination', bytesPerSec: 0 });
    expect(f.text()).toEqual(['tc -n pcl-r6-src qdisc del dev pcl-src root']);
    expect((await link.snapshot())['source-to-destination'].rateBytesPerSec).toBe(0);
    // On a direction with no cap it changes nothing at all.
    f.calls.length = 0;
    await link.apply({ kind: 'bandwidth', bytesPerSec: 0 });
    expect(f.calls).toEqual([]);
  });

  it('refuses a bad fault with the fault model\'s message, before running anything', async () => {
    const { f, link } = await started('r7');
    const err = await link.apply({ kind: 'latency', ms: -5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkFaultError);
    expect((err as Error).message).toMatch(/^latency ms must be from 0 to 60000 milliseconds, got -5/);
    await expect(link.apply({ kind: 'cut', direction: 'sideways' as never })).rejects.toThrow(/direction must be/);
    expect(f.calls).toEqual([]);
  });

  it('a flap covers its directions as one schedule; a cable fault on one of them ends it', async () => {
    const { link } = await started('r8');
    await link.apply({ kind: 'flap', upMs: 3_600_000, downMs: 3_600_000, mode: 'blackhole' });
    let snap = await link.snapshot();
    expect(snap).toMatchObject({ flapping: true, up: false });
    expect(snap['destination-to-source'].state).toBe('blackhole');
    await link.apply({ kind: 'cut', direction: 'source-to-destination' });
    snap = await link.snapshot();
    expect(snap.flapping).toBe(false);
    expect(snap['source-to-destination'].state).toBe('cut');
    await link.stop();
  });

  it('a counted flap ends up and stops flapping', async () => {
    const { link } = await started('r9');
    await link.apply({ kind: 'flap', upMs: 1, downMs: 1, count: 2 });
    await vi.waitFor(async () => expect(await link.snapshot()).toMatchObject({ flapping: false, up: true }));
    await link.stop();
  });
});
