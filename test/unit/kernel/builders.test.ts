import { describe, expect, it } from 'vitest';
import { KernelValidationError } from '../../../src/kernel/errors.js';
import * as ip from '../../../src/kernel/ip.js';
import * as nft from '../../../src/kernel/nft.js';
import * as tc from '../../../src/kernel/tc.js';

describe('ip builders', () => {
  it('namespaces', () => {
    expect(ip.netnsAdd('pcl-r1-src')).toEqual(['ip', 'netns', 'add', 'pcl-r1-src']);
    expect(ip.netnsDel('pcl-r1-src')).toEqual(['ip', 'netns', 'del', 'pcl-r1-src']);
    expect(ip.netnsList()).toEqual(['ip', '-j', 'netns', 'list']);
    expect(ip.netnsPids('pcl-r1-src')).toEqual(['ip', 'netns', 'pids', 'pcl-r1-src']);
    expect(ip.netnsExec('pcl-r1-dst', 'qemu-system-x86_64', ['-m', '1G', '; rm -rf /'])).toEqual([
      'ip', 'netns', 'exec', 'pcl-r1-dst', 'qemu-system-x86_64', '-m', '1G', '; rm -rf /',
    ]);
  });

  it('veth pairs, addresses, link state', () => {
    expect(ip.vethAdd('vethA', 'vethB')).toEqual(['ip', 'link', 'add', 'vethA', 'type', 'veth', 'peer', 'name', 'vethB']);
    expect(ip.vethAdd('pcl-src', 'pcl-dst', { ns: 'pcl-r-src', peerNs: 'pcl-r-dst' })).toEqual([
      'ip', '-n', 'pcl-r-src', 'link', 'add', 'pcl-src', 'type', 'veth', 'peer', 'name', 'pcl-dst', 'netns', 'pcl-r-dst',
    ]);
    expect(ip.linkSetNetns('vethB', 'pcl-r-dst')).toEqual(['ip', 'link', 'set', 'dev', 'vethB', 'netns', 'pcl-r-dst']);
    expect(ip.addrAdd('pcl-src', '10.213.0.1/24', { ns: 'pcl-r-src' })).toEqual(['ip', '-n', 'pcl-r-src', 'addr', 'add', '10.213.0.1/24', 'dev', 'pcl-src']);
    expect(ip.linkSetUp('lo', { ns: 'n1' })).toEqual(['ip', '-n', 'n1', 'link', 'set', 'dev', 'lo', 'up']);
    expect(ip.linkSetDown('pcl-src', { ns: 'n1' })).toEqual(['ip', '-n', 'n1', 'link', 'set', 'dev', 'pcl-src', 'down']);
    expect(ip.linkDel('pcl-src', { ns: 'n1' })).toEqual(['ip', '-n', 'n1', 'link', 'del', 'dev', 'pcl-src']);
    expect(ip.linkStats('pcl-src', { ns: 'n1' })).toEqual(['ip', '-n', 'n1', '-s', '-j', 'link', 'show', 'dev', 'pcl-src']);
  });

  it('refuses bad names before building anything', () => {
    expect(() => ip.vethAdd('a-very-long-name-16', 'b')).toThrow(/1 to 15 characters/);
    expect(() => ip.vethAdd('eth 0', 'b')).toThrow(KernelValidationError);
    expect(() => ip.linkSetUp('$(reboot)')).toThrow(/not a valid interface name/);
    expect(() => ip.netnsAdd('../etc')).toThrow(/not a valid namespace name/);
    expect(() => ip.netnsAdd('')).toThrow(KernelValidationError);
    expect(() => ip.netnsExec('ns;x', 'true')).toThrow(KernelValidationError);
    expect(() => ip.addrAdd('eth0', '10.0.0.1')).toThrow(/address\/prefix/);
  });
});

describe('tc builders', () => {
  it('netem: the documented example, and only what is non-zero', () => {
    expect(tc.netemReplaceRoot('pcl-src', { delayMs: 10, jitterMs: 2, lossPercent: 1 })).toEqual([
      'tc', 'qdisc', 'replace', 'dev', 'pcl-src', 'root', 'netem', 'delay', '10ms', '2ms', 'loss', '1%',
    ]);
    expect(tc.netemArgs({ lossPercent: 0.25 })).toEqual(['netem', 'loss', '0.25%']);
    expect(tc.netemArgs({ delayMs: 0.5, limit: 5000 })).toEqual(['netem', 'limit', '5000', 'delay', '500us']);
    expect(tc.netemArgs({})).toEqual(['netem']);
  });

  it('tbf: rate in bits, burst in bytes, latency in ms', () => {
    expect(tc.tbfReplaceRoot('pcl-src', { ns: 'n1', bytesPerSec: 1_000_000, burstBytes: 32_768, latencyMs: 50 })).toEqual([
      'tc', '-n', 'n1', 'qdisc', 'replace', 'dev', 'pcl-src', 'root', 'tbf', 'rate', '8000000bit', 'burst', '32768b', 'latency', '50ms',
    ]);
    // Default burst: 20 ms worth of the rate, never under 16 KiB.
    expect(tc.tbfArgs({ bytesPerSec: 125_000 })).toEqual(['tbf', 'rate', '1000000bit', 'burst', '16384b', 'latency', '200ms']);
    expect(tc.tbfArgs({ bytesPerSec: 100_000_000 })).toEqual(['tbf', 'rate', '800000000bit', 'burst', '2000000b', 'latency', '200ms']);
  });

  it('qdisc placement, delete, show; htb', () => {
    expect(tc.qdiscAdd({ dev: 'd', ns: 'n', parent: '1:1', handle: '10:' }, ['tbf', 'rate', '8bit'])).toEqual([
      'tc', '-n', 'n', 'qdisc', 'add', 'dev', 'd', 'parent', '1:1', 'handle', '10:', 'tbf', 'rate', '8bit',
    ]);
    expect(tc.qdiscReplace({ dev: 'd', handle: '1:' }, ['netem'])).toEqual(['tc', 'qdisc', 'replace', 'dev', 'd', 'root', 'handle', '1:', 'netem']);
    expect(tc.qdiscDelRoot('d', { ns: 'n' })).toEqual(['tc', '-n', 'n', 'qdisc', 'del', 'dev', 'd', 'root']);
    expect(tc.qdiscShow('d')).toEqual(['tc', '-s', '-j', 'qdisc', 'show', 'dev', 'd']);
    expect(tc.htbArgs({ defaultClass: 16 })).toEqual(['htb', 'default', '10']);
    expect(tc.htbClassAdd({ dev: 'd', parent: '1:', classid: '1:1', bytesPerSec: 125 })).toEqual([
      'tc', 'class', 'add', 'dev', 'd', 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '1000bit',
    ]);
    expect(() => tc.qdiscAdd({ dev: 'd', parent: 'root; x' }, [])).toThrow(/not a tc handle/);
  });

  it('refuses out-of-range units, naming the field and the range', () => {
    expect(() => tc.tbfArgs({ bytesPerSec: 0 })).toThrow(/bytesPerSec must be bytes per second, greater than 0/);
    expect(() => tc.tbfArgs({ bytesPerSec: -5 })).toThrow(KernelValidationError);
    expect(() => tc.tbfArgs({ bytesPerSec: Number.NaN })).toThrow(/finite number/);
    expect(() => tc.netemArgs({ delayMs: -1 })).toThrow(/delayMs must be milliseconds, from 0 to 60000, got -1/);
    expect(() => tc.netemArgs({ jitterMs: -0.1 })).toThrow(/jitterMs/);
    expect(() => tc.netemArgs({ lossPercent: 100.5 })).toThrow(/lossPercent must be percent, from 0 to 100/);
    expect(() => tc.netemArgs({ lossPercent: -1 })).toThrow(KernelValidationError);
    try {
      tc.tbfArgs({ bytesPerSec: 0 });
    } catch (e) {
      expect((e as KernelValidationError).field).toBe('bytesPerSec');
    }
  });
});

describe('nft builders', () => {
  it('table, counter, chain, rules', () => {
    expect(nft.tableAdd('pcl-link')).toEqual(['add', 'table', 'inet', 'pcl-link']);
    expect(nft.tableDelete('pcl-link')).toEqual(['delete', 'table', 'inet', 'pcl-link']);
    expect(nft.tableDelete('pcl-x', 'ip')).toEqual(['delete', 'table', 'ip', 'pcl-x']);
    expect(nft.counterAdd('pcl-link', 'dropped')).toEqual(['add', 'counter', 'inet', 'pcl-link', 'dropped']);
    expect(nft.chainAdd('pcl-link', 'egress', 'output')).toEqual([
      'add', 'chain', 'inet', 'pcl-link', 'egress', '{', 'type', 'filter', 'hook', 'output', 'priority', '0', ';', 'policy', 'accept', ';', '}',
    ]);
    expect(nft.chainFlush('pcl-link', 'egress')).toEqual(['flush', 'chain', 'inet', 'pcl-link', 'egress']);
    const m = { oifname: 'pcl-src', counter: 'dropped' };
    expect(nft.ruleDrop('pcl-link', 'egress', m)).toEqual(['add', 'rule', 'inet', 'pcl-link', 'egress', 'oifname', '"pcl-src"', 'counter', 'name', '"dropped"', 'drop']);
    expect(nft.ruleRejectTcpReset('pcl-link', 'egress', m)).toEqual([
      'add', 'rule', 'inet', 'pcl-link', 'egress', 'oifname', '"pcl-src"', 'meta', 'l4proto', 'tcp', 'counter', 'name', '"dropped"', 'reject', 'with', 'tcp', 'reset',
    ]);
    expect(nft.ruleReject('t', 'c')).toEqual(['add', 'rule', 'inet', 't', 'c', 'reject']);
    expect(nft.listCounter('t', 'dropped')).toEqual(['-j', 'list', 'counter', 'inet', 't', 'dropped']);
  });

  it('runs inside a namespace, one command or one atomic batch', () => {
    expect(nft.nft(undefined, nft.listTables())).toEqual(['nft', '-j', 'list', 'tables']);
    expect(nft.nft('n1', nft.tableAdd('t'))).toEqual(['ip', 'netns', 'exec', 'n1', 'nft', 'add', 'table', 'inet', 't']);
    expect(nft.nftBatch('n1', [nft.chainFlush('t', 'c'), nft.ruleDrop('t', 'c')])).toEqual({
      argv: ['ip', 'netns', 'exec', 'n1', 'nft', '-f', '-'],
      input: 'flush chain inet t c\nadd rule inet t c drop\n',
    });
  });

  it('refuses names nft would misparse', () => {
    expect(() => nft.tableAdd('1abc')).toThrow(/not a valid nftables name/);
    expect(() => nft.tableAdd('a b')).toThrow(KernelValidationError);
    expect(() => nft.ruleDrop('t', 'c', { oifname: 'x"; flush ruleset; "' })).toThrow(KernelValidationError);
  });

  it('parses nft JSON', () => {
    const tables = '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "inet", "name": "pcl-x", "handle": 1}}]}';
    expect(nft.parseTables(tables)).toEqual([{ family: 'inet', name: 'pcl-x' }]);
    expect(nft.parseTables('')).toEqual([]);
    const counter = '{"nftables": [{"metainfo": {}}, {"counter": {"family": "inet", "name": "dropped", "table": "t", "handle": 1, "packets": 3, "bytes": 180}}]}';
    expect(nft.parseCounter(counter)).toEqual({ packets: 3, bytes: 180 });
  });
});
