/** Reading the kernel link's counters against a fake runner: what is parsed, what a failed read keeps. */
import { describe, expect, it } from 'vitest';
import type { Argv } from '../../../src/kernel/argv.js';
import { KernelCommandError } from '../../../src/kernel/errors.js';
import { LinkCounters } from '../../../src/kernel/link-counters.js';

const DIRS = {
  'source-to-destination': { ns: 'pcl-c1-src', dev: 'pcl-src' },
  'destination-to-source': { ns: 'pcl-c1-dst', dev: 'pcl-dst' },
} as const;

/** Answers as ip, nft and ss would, from `k`; fails every call while `broken` is set. */
function fakeKernel() {
  const k = { broken: false, tx: { 'pcl-src': 1000, 'pcl-dst': 20 } as Record<string, number>, dropped: { 'pcl-c1-src': 7, 'pcl-c1-dst': 0 } as Record<string, number>, conns: 2 };
  const runner = async (argv: Argv) => {
    if (k.broken) throw new KernelCommandError({ argv, exitCode: 1, stderr: 'Cannot open network namespace' });
    if (argv.includes('ss')) return { stdout: 'ESTAB 0 0 10.213.0.1:1 10.213.0.2:4444\n'.repeat(k.conns), stderr: '' };
    if (argv.includes('nft')) {
      const ns = argv[argv.indexOf('exec') + 1];
      return { stdout: JSON.stringify({ nftables: [{ metainfo: {} }, { counter: { packets: 1, bytes: k.dropped[ns] } }] }), stderr: '' };
    }
    return { stdout: JSON.stringify([{ stats64: { tx: { bytes: k.tx[argv[argv.length - 1]] } } }]), stderr: '' };
  };
  return { k, runner };
}

describe('LinkCounters', () => {
  it('reads bytes sent per veth end, bytes dropped per namespace, and established connections', async () => {
    const { runner } = fakeKernel();
    const c = new LinkCounters({ runner, dirs: DIRS, sourceNs: 'pcl-c1-src', destinationAddress: '10.213.0.2', nftOk: () => true });
    expect(c.of('source-to-destination')).toEqual({ forwarded: 0, dropped: 0 });
    await c.update(true);
    expect(c.of('source-to-destination')).toEqual({ forwarded: 1000, dropped: 7 });
    expect(c.of('destination-to-source')).toEqual({ forwarded: 20, dropped: 0 });
    expect(c.connections).toBe(2);
  });

  it('a failed read keeps the last values instead of throwing', async () => {
    const { k, runner } = fakeKernel();
    const c = new LinkCounters({ runner, dirs: DIRS, sourceNs: 'pcl-c1-src', destinationAddress: '10.213.0.2', nftOk: () => true });
    await c.update(true);
    k.broken = true;
    await expect(c.update(true)).resolves.toBeUndefined();
    expect(c.of('source-to-destination')).toEqual({ forwarded: 1000, dropped: 7 });
    expect(c.connections).toBe(2);
  });

  it('does not ask nft for dropped bytes when our table is not there', async () => {
    const calls: Argv[] = [];
    const { runner } = fakeKernel();
    const c = new LinkCounters({ runner: async (argv) => (calls.push(argv), runner(argv)), dirs: DIRS, sourceNs: 'pcl-c1-src', destinationAddress: '10.213.0.2', nftOk: () => false });
    await c.update(true);
    expect(calls.some((a) => a.includes('nft'))).toBe(false);
    expect(c.of('source-to-destination').dropped).toBe(0);
  });
});
