/** What a direction's config renders to: qdiscs root first, nft rules per state. */
import { describe, expect, it } from 'vitest';
import { nftRules, qdiscPlan } from '../../../src/kernel/render.js';

describe('render plans', () => {
  it('composes netem (root) and tbf (child) when both are set', () => {
    expect(qdiscPlan({ state: 'up', latencyMs: 10, jitterMs: 2, lossPercent: 1, rateBytesPerSec: 125_000 })).toEqual([
      { parent: 'root', handle: '1:', args: ['netem', 'limit', '100000', 'delay', '10ms', '2ms', 'loss', '1%'] },
      { parent: '1:1', handle: '10:', args: ['tbf', 'rate', '1000000bit', 'burst', '16384b', 'latency', '200ms'] },
    ]);
    expect(qdiscPlan({ state: 'cut', latencyMs: 0, jitterMs: 0, lossPercent: 0, rateBytesPerSec: 0 })).toEqual([]);
  });

  it('tbf alone is the root qdisc', () => {
    expect(qdiscPlan({ state: 'up', latencyMs: 0, jitterMs: 0, lossPercent: 0, rateBytesPerSec: 125_000 })).toEqual([
      { parent: 'root', handle: '1:', args: ['tbf', 'rate', '1000000bit', 'burst', '16384b', 'latency', '200ms'] },
    ]);
  });

  it('blackhole drops, cut rejects (TCP with a reset), up and down need no rule', () => {
    expect(nftRules('blackhole', 'pcl-src')).toHaveLength(1);
    expect(nftRules('cut', 'pcl-src')).toHaveLength(2);
    expect(nftRules('cut', 'pcl-src')[0].join(' ')).toMatch(/reject with tcp reset$/);
    expect(nftRules('blackhole', 'pcl-src')[0]).toContain('drop');
    expect(nftRules('up', 'pcl-src')).toEqual([]);
    expect(nftRules('down', 'pcl-src')).toEqual([]);
  });
});
