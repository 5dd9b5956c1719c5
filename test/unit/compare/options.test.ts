import { describe, expect, it } from 'vitest';
import { COMPARE_DEFAULTS, CompareOptionError, parseCompareFlags } from '../../../src/compare/options.js';
import { planStrategy } from '../../../src/compare/strategies.js';

const bad = (f: Parameters<typeof parseCompareFlags>[0]) => {
  try {
    parseCompareFlags(f);
  } catch (e) {
    expect(e).toBeInstanceOf(CompareOptionError);
    return (e as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('compare options', () => {
  it('defaults describe a guest that dirties faster than the link carries', () => {
    const o = parseCompareFlags({});
    const dirtied = o.guest.vcpus * o.guest.dirtyRate * o.guest.pageSize;
    const bw = o.link.find((f) => f.kind === 'bandwidth');
    expect(bw && 'bytesPerSec' in bw ? bw.bytesPerSec : 0).toBe(32 * 1024 * 1024);
    expect(dirtied).toBeGreaterThan(32 * 1024 * 1024);
    expect(o.strategies).toEqual(['precopy', 'auto-converge', 'dirty-limit', 'postcopy', 'postcopy-after', 'precopy-postcopy-ram']);
    expect(o.maxSeconds).toBe(COMPARE_DEFAULTS.maxSeconds);
  });
  it('passes --threads into the guest and --latency onto the link', () => {
    const o = parseCompareFlags({ threads: '4', latency: '5ms' });
    expect(o.guest.threadsPerVcpu).toBe(4);
    expect(o.link).toContainEqual({ kind: 'latency', ms: 5 });
  });
  it('refuses bad input naming the option and what it takes', () => {
    expect(bad({ memory: 'lots' })).toMatch(/^--memory: 'lots' must be a guest size, like 32M/);
    expect(bad({ vcpus: '0' })).toBe("--vcpus: '0' must be a whole number from 1 to 64");
    expect(bad({ workload: 'zipf' })).toBe("--workload: 'zipf' is not a workload (expected sequential, random, hotset)");
    expect(bad({ bandwidth: '0' })).toMatch(/^--bandwidth: '0' must be from 64K to 10G/);
    expect(bad({ latency: '5' })).toMatch(/^--latency: '5' must be a duration/);
    expect(bad({ backend: 'xen' })).toBe("--backend: 'xen' is not a backend (expected sim, qemu or libvirt)");
    expect(bad({ emulate: '9.9' })).toMatch(/^--emulate: '9.9' is not a QEMU version the sim emulates/);
    expect(bad({ emulate: '7.2', backend: 'qemu' })).toMatch(/^--emulate is for the sim backend/);
    expect(bad({ strategies: 'precopy,warp' })).toMatch(/^--strategies: 'warp' is not a strategy \(expected a comma-separated list of precopy, auto-converge/);
    expect(bad({ strategies: 'postcopy,postcopy' })).toBe("--strategies: strategy 'postcopy' is listed twice");
    expect(bad({ strategies: 'postcopy-after-0' })).toMatch(/^--strategies: strategy 'postcopy-after-0': N must be a whole number of passes from 1/);
    expect(bad({ 'max-seconds': '1.5' })).toBe("--max-seconds: '1.5' must be a whole number from 1 to 3600");
    expect(bad({ threads: '0' })).toBe("--threads: '0' must be a whole number from 1 to 64");
  });
  it('postcopy-after takes N from --postcopy-after, or from its own name', () => {
    expect(planStrategy('postcopy-after', 5).name).toBe('postcopy-after-5');
    expect(planStrategy('postcopy-after-3', 5)).toMatchObject({ name: 'postcopy-after-3', postcopyAfterPasses: 3 });
    expect(planStrategy('postcopy').postcopyAfterPasses).toBe(0);
    expect(planStrategy('precopy-postcopy-ram')).toMatchObject({ postcopyAfterPasses: null, capabilities: { 'postcopy-ram': true } });
  });
});

describe("a lab's compare: field", () => {
  it('is read, and a wrong strategy is refused at its path', async () => {
    const { LAB_SCHEMA } = await import('../../../src/lab/schema.js');
    const lab = (compare: unknown) => ({
      id: 'x',
      title: 'x',
      summary: 'x',
      setup: { memory: '8M' },
      steps: [{ title: 't', text: 't', hints: ['h'], until: 'source.status == "completed"' }],
      expect: ['source.status == "completed"'],
      'summary-text': 's',
      compare,
    });
    const ok = LAB_SCHEMA.safeParse(lab({ strategies: ['precopy', 'auto-converge', 'postcopy'], 'max-seconds': 10 }));
    expect(ok.success && ok.data.compare).toEqual({ strategies: ['precopy', 'auto-converge', 'postcopy'], maxSeconds: 10 });
    const bad = LAB_SCHEMA.safeParse(lab({ strategies: ['precopy', 'warp'] }));
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]).toMatchObject({ path: ['compare', 'strategies'], message: expect.stringContaining("'warp' is not a strategy") });
  });
});
