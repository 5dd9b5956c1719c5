/**
 * nftables commands, as argv words for `nft` (the program joins them and parses the result, so
 * interface names are passed quoted). Every table is in the `inet` family, so one rule covers
 * IPv4 and IPv6. Commands can run one at a time (`nft(ns, cmd)`) or as one atomic transaction
 * (`nftBatch(ns, cmds)`: `nft -f -` with the commands on stdin, all applied or none).
 */
import type { Argv } from './argv.js';
import { netnsExec } from './ip.js';
import { validateIfName, validateNftName } from './validate.js';

/** One nft command, without the leading `nft`. */
export type NftCommand = string[];

export type NftHook = 'output' | 'forward' | 'input' | 'prerouting' | 'postrouting';

/** `nft CMD...`, inside `ns` when given (`ip netns exec NS nft CMD...`). */
export function nft(ns: string | undefined, cmd: NftCommand): Argv {
  return ns === undefined ? ['nft', ...cmd] : netnsExec(ns, 'nft', cmd);
}

/** An atomic batch: the argv (`nft -f -`, inside `ns` when given) and the script for its stdin. */
export function nftBatch(ns: string | undefined, cmds: readonly NftCommand[]): { argv: Argv; input: string } {
  return { argv: nft(ns, ['-f', '-']), input: cmds.map((c) => c.join(' ')).join('\n') + '\n' };
}

const quote = (s: string): string => `"${s}"`;

export function tableAdd(table: string): NftCommand {
  return ['add', 'table', 'inet', validateNftName(table, 'table')];
}

const FAMILIES = new Set(['inet', 'ip', 'ip6', 'arp', 'bridge', 'netdev']);

/** `delete table FAMILY NAME` (our tables are inet; cleanup may meet others with our prefix). */
export function tableDelete(table: string, family = 'inet'): NftCommand {
  if (!FAMILIES.has(family)) throw new TypeError(`tableDelete: unknown nft family ${JSON.stringify(family)}`);
  return ['delete', 'table', family, validateNftName(table, 'table')];
}

/** A named counter: it survives `flush chain`, so byte totals outlive rule changes. */
export function counterAdd(table: string, name: string): NftCommand {
  return ['add', 'counter', 'inet', validateNftName(table, 'table'), validateNftName(name, 'counter')];
}

/** A base chain of type filter on `hook`, policy accept: it only drops what its rules say. */
export function chainAdd(table: string, chain: string, hook: NftHook, priority = 0): NftCommand {
  if (!Number.isInteger(priority)) throw new TypeError(`chainAdd: priority must be an integer, got ${priority}`);
  return [
    'add',
    'chain',
    'inet',
    validateNftName(table, 'table'),
    validateNftName(chain, 'chain'),
    '{',
    'type',
    'filter',
    'hook',
    hook,
    'priority',
    String(priority),
    ';',
    'policy',
    'accept',
    ';',
    '}',
  ];
}

export function chainFlush(table: string, chain: string): NftCommand {
  return ['flush', 'chain', 'inet', validateNftName(table, 'table'), validateNftName(chain, 'chain')];
}

export interface RuleMatch {
  /** Match packets leaving through this interface (`oifname "X"`). */
  oifname?: string;
  /** Count matched packets in this named counter (`counter name "X"`). */
  counter?: string;
}

function head(table: string, chain: string, m: RuleMatch): string[] {
  return [
    'add',
    'rule',
    'inet',
    validateNftName(table, 'table'),
    validateNftName(chain, 'chain'),
    ...(m.oifname === undefined ? [] : ['oifname', quote(validateIfName(m.oifname, 'oifname'))]),
  ];
}

function count(m: RuleMatch): string[] {
  return m.counter === undefined ? [] : ['counter', 'name', quote(validateNftName(m.counter, 'counter'))];
}

/** Silently drop: the blackhole. */
export function ruleDrop(table: string, chain: string, m: RuleMatch = {}): NftCommand {
  return [...head(table, chain, m), ...count(m), 'drop'];
}

/** Answer TCP with a RST: the cut, as the sending socket sees it (ECONNRESET). */
export function ruleRejectTcpReset(table: string, chain: string, m: RuleMatch = {}): NftCommand {
  return [...head(table, chain, m), 'meta', 'l4proto', 'tcp', ...count(m), 'reject', 'with', 'tcp', 'reset'];
}

/** Reject anything else with ICMP port-unreachable (inet default): non-TCP traffic on a cut link. */
export function ruleReject(table: string, chain: string, m: RuleMatch = {}): NftCommand {
  return [...head(table, chain, m), ...count(m), 'reject'];
}

export function listCounter(table: string, name: string): NftCommand {
  return ['-j', 'list', 'counter', 'inet', validateNftName(table, 'table'), validateNftName(name, 'counter')];
}

export function listTables(): NftCommand {
  return ['-j', 'list', 'tables'];
}

/** Parse `nft -j list tables` output into `{family, name}` pairs. */
export function parseTables(json: string): { family: string; name: string }[] {
  if (json.trim() === '') return [];
  const doc = JSON.parse(json) as { nftables?: Array<{ table?: { family: string; name: string } }> };
  return (doc.nftables ?? []).flatMap((e) => (e.table ? [{ family: e.table.family, name: e.table.name }] : []));
}

/** Parse `nft -j list counter ...` output into its packet and byte counts. */
export function parseCounter(json: string): { packets: number; bytes: number } {
  const doc = JSON.parse(json) as { nftables?: Array<{ counter?: { packets: number; bytes: number } }> };
  const c = (doc.nftables ?? []).find((e) => e.counter)?.counter;
  return { packets: c?.packets ?? 0, bytes: c?.bytes ?? 0 };
}
