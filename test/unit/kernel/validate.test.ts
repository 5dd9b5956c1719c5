import { describe, expect, it } from 'vitest';
import { KernelCommandError, isNotExist } from '../../../src/kernel/errors.js';
import { parseSubnet, renderPercent, renderRate, renderSize, renderTime, validateRunId } from '../../../src/kernel/validate.js';

describe('unit rendering', () => {
  it('bytes per second become bits, never tc’s ambiguous mbps', () => {
    expect(renderRate(1)).toBe('8bit');
    expect(renderRate(125_000)).toBe('1000000bit');
    expect(renderRate(1024 * 1024)).toBe('8388608bit');
    expect(renderRate(0.5)).toBe('4bit');
    expect(renderRate(12_500_000_000)).toBe('100000000000bit');
    expect(renderRate(1_000_000)).not.toMatch(/mbps|mbit/);
  });
  it('times, sizes, percentages', () => {
    expect(renderTime(0)).toBe('0ms');
    expect(renderTime(250)).toBe('250ms');
    expect(renderTime(1.5)).toBe('1500us');
    expect(renderSize(16384)).toBe('16384b');
    expect(renderPercent(1)).toBe('1%');
    expect(renderPercent(0.125)).toBe('0.125%');
    expect(renderPercent(100)).toBe('100%');
    expect(() => renderSize(0)).toThrow(/greater than 0/);
    expect(() => renderRate(200_000_000_000)).toThrow(/at most 125000000000/);
  });
});

describe('run ids and subnets', () => {
  it('validates run ids', () => {
    expect(validateRunId('run-1_a')).toBe('run-1_a');
    expect(() => validateRunId('')).toThrow(/runId/);
    expect(() => validateRunId('-x')).toThrow(/runId/);
    expect(() => validateRunId('a/b')).toThrow(/runId/);
    expect(() => validateRunId('x'.repeat(41))).toThrow(/1 to 40/);
  });
  it('takes the first two host addresses of the subnet', () => {
    expect(parseSubnet('10.213.0.0/24')).toEqual({ network: '10.213.0.0', prefixLength: 24, sourceAddress: '10.213.0.1', destinationAddress: '10.213.0.2' });
    expect(parseSubnet('192.168.77.130/29')).toMatchObject({ network: '192.168.77.128', sourceAddress: '192.168.77.129', destinationAddress: '192.168.77.130' });
    expect(() => parseSubnet('10.0.0.0/31')).toThrow(/\/8 to \/30/);
    expect(() => parseSubnet('300.0.0.0/24')).toThrow(/subnet/);
    expect(() => parseSubnet('fd00::/64')).toThrow(/IPv4 CIDR/);
  });
});

describe('isNotExist', () => {
  const err = (stderr: string, code?: string) => new KernelCommandError({ argv: ['ip', 'x'], exitCode: 1, stderr, code });
  it('recognises "already gone" answers from ip, tc and nft', () => {
    expect(isNotExist(err('Cannot find device "pcl-src"'))).toBe(true);
    expect(isNotExist(err('Cannot remove namespace file "/run/netns/x": No such file or directory'))).toBe(true);
    expect(isNotExist(err('Cannot open network namespace "x": No such file or directory'))).toBe(true);
    expect(isNotExist(err('Error: Could not process rule: No such file or directory'))).toBe(true);
    expect(isNotExist(err('Error: Cannot delete qdisc with handle of zero.'))).toBe(true);
    expect(isNotExist(err('RTNETLINK answers: Object does not exist'))).toBe(true);
  });
  it('does not hide real failures or a missing tool', () => {
    expect(isNotExist(err('Error: Specified qdisc kind is unknown.'))).toBe(false);
    expect(isNotExist(err('RTNETLINK answers: Operation not permitted'))).toBe(false);
    expect(isNotExist(err('', 'ENOENT'))).toBe(false);
    expect(isNotExist(new Error('Cannot find device'))).toBe(false);
  });
});
