/**
 * Rendering one direction's config (the fault model's DirectionConfig) into the kernel, on the
 * egress of the sending side's veth end:
 *
 * latency/jitter/loss: netem as the root qdisc; rate: tbf (the child of netem when both are set);
 * blackhole: nft `drop` on the output hook; cut: nft `reject with tcp reset` (TCP) and `reject`
 * (anything else) on the output hook, so the sending socket gets a RST (ECONNRESET); down:
 * `ip link set down` on that side's veth end.
 *
 * What a fault means lives in src/link/fault-model.ts; this module only turns a config into
 * commands and runs them.
 */
import type { LinkDirectionState, LinkFault } from '../types.js';
import type { DirectionConfig } from '../link/fault-model.js';
import { KernelCommandError, KernelUnsupportedError } from './errors.js';
import { linkSetDown, linkSetUp } from './ip.js';
import { chainAdd, chainFlush, counterAdd, nftBatch, ruleDrop, ruleReject, ruleRejectTcpReset, tableAdd, type NftCommand } from './nft.js';
import { runIgnoringNotExist, type Runner } from './run.js';
import { netemArgs, qdiscAdd, qdiscDelRoot, qdiscReplace, tbfArgs } from './tc.js';

/** Our nft table in each namespace, its output chain, and the named counter of dropped bytes. */
export const TABLE = 'pcl-link';
export const CHAIN = 'egress';
export const COUNTER = 'dropped';
/** netem's default queue (1000 packets) overflows with a long delay at veth speed. */
const NETEM_LIMIT = 100_000;

/** Where one direction is shaped: the sending side's namespace and veth end. */
export interface DirTopo {
  ns: string;
  dev: string;
}

export interface QdiscSpec {
  parent: string;
  handle: string;
  args: string[];
}

/** The qdiscs a direction's egress needs, root first. */
export function qdiscPlan(s: DirectionConfig): QdiscSpec[] {
  const netem = s.latencyMs > 0 || s.jitterMs > 0 || s.lossPercent > 0;
  const plan: QdiscSpec[] = [];
  if (netem) {
    plan.push({ parent: 'root', handle: '1:', args: netemArgs({ delayMs: s.latencyMs, jitterMs: s.jitterMs, lossPercent: s.lossPercent, limit: NETEM_LIMIT }) });
  }
  if (s.rateBytesPerSec > 0) {
    plan.push({ parent: netem ? '1:1' : 'root', handle: netem ? '10:' : '1:', args: tbfArgs({ bytesPerSec: s.rateBytesPerSec }) });
  }
  return plan;
}

/** The nft rules a direction's state needs on its egress interface. */
export function nftRules(state: LinkDirectionState, dev: string): NftCommand[] {
  const m = { oifname: dev, counter: COUNTER };
  if (state === 'blackhole') return [ruleDrop(TABLE, CHAIN, m)];
  if (state === 'cut') return [ruleRejectTcpReset(TABLE, CHAIN, m), ruleReject(TABLE, CHAIN, m)];
  return [];
}

/** Try netem once, on lo of `ns`, so latency/loss can be refused up front where it is missing. */
export async function probeNetem(r: Runner, ns: string): Promise<{ ok: boolean; detail: string }> {
  try {
    await r(qdiscAdd({ dev: 'lo', ns }, netemArgs({ delayMs: 1 })));
    await runIgnoringNotExist(r, qdiscDelRoot('lo', { ns }));
    return { ok: true, detail: 'netem qdisc added and removed' };
  } catch (err) {
    return { ok: false, detail: err instanceof KernelCommandError ? err.stderr || err.message : String(err) };
  }
}

/** One table per namespace: a named counter (outlives rule changes) and an output chain. */
export async function setupNft(r: Runner, namespaces: string[]): Promise<{ ok: boolean; error: string }> {
  try {
    for (const ns of namespaces) {
      const b = nftBatch(ns, [tableAdd(TABLE), counterAdd(TABLE, COUNTER), chainAdd(TABLE, CHAIN, 'output')]);
      await r(b.argv, { input: b.input });
    }
    return { ok: true, error: '' };
  } catch (err) {
    return { ok: false, error: err instanceof KernelCommandError ? (err.code === 'ENOENT' ? 'nft is not installed' : err.stderr || err.message) : String(err) };
  }
}

/** Change only what differs between `from` and `to`. */
export async function render(r: Runner, { ns, dev }: DirTopo, from: DirectionConfig, to: DirectionConfig): Promise<void> {
  const pFrom = qdiscPlan(from);
  const pTo = qdiscPlan(to);
  if (JSON.stringify(pFrom) !== JSON.stringify(pTo)) {
    const sameShape = pFrom.length === pTo.length && pFrom.every((q, i) => q.args[0] === pTo[i].args[0] && q.handle === pTo[i].handle);
    if (sameShape && pTo.length > 0) {
      // Same qdiscs, new parameters: change them in place (no packet is let through unshaped).
      for (const q of pTo) await r(qdiscReplace({ dev, ns, parent: q.parent, handle: q.handle }, q.args));
    } else {
      await renderQdiscs(r, { ns, dev }, pTo);
    }
  }
  if (JSON.stringify(nftRules(from.state, dev)) !== JSON.stringify(nftRules(to.state, dev))) await renderNft(r, { ns, dev }, to.state);
  if ((from.state === 'down') !== (to.state === 'down')) await r(to.state === 'down' ? linkSetDown(dev, { ns }) : linkSetUp(dev, { ns }));
}

/** Put a direction in `s` whatever the kernel has now (rollback and restore). */
export async function renderFully(r: Runner, topo: DirTopo, s: DirectionConfig, nftOk: boolean): Promise<void> {
  await renderQdiscs(r, topo, qdiscPlan(s));
  if (nftOk) await renderNft(r, topo, s.state);
  await r(s.state === 'down' ? linkSetDown(topo.dev, { ns: topo.ns }) : linkSetUp(topo.dev, { ns: topo.ns }));
}

async function renderQdiscs(r: Runner, { ns, dev }: DirTopo, plan: QdiscSpec[]): Promise<void> {
  // A root qdisc of another kind cannot be replaced in place ("Invalid qdisc name: must match
  // existing qdisc"), so start again from the default one.
  await runIgnoringNotExist(r, qdiscDelRoot(dev, { ns }));
  for (const q of plan) await r(qdiscAdd({ dev, ns, parent: q.parent, handle: q.handle }, q.args));
}

/** Flush and refill the direction's chain in one nft transaction: all or nothing. */
async function renderNft(r: Runner, { ns, dev }: DirTopo, state: LinkDirectionState): Promise<void> {
  const b = nftBatch(ns, [chainFlush(TABLE, CHAIN), ...nftRules(state, dev)]);
  await r(b.argv, { input: b.input });
}

/** What start() found this kernel can do: netem (null before the probe) and our nft table. */
export interface Capabilities {
  netem: { ok: boolean; detail: string } | null;
  nft: { ok: boolean; error: string };
}

/** Whether a direction's config needs netem (delay, jitter, loss); rate is tbf, cut/blackhole nft, down the veth. */
export function needsNetem(c: Readonly<DirectionConfig>): boolean {
  return c.latencyMs > 0 || c.jitterMs > 0 || c.lossPercent > 0;
}

/** Refuse, before touching anything, a config this kernel cannot render. */
export function checkSupported(caps: Capabilities, next: DirectionConfig, fault: LinkFault): void {
  if (needsNetem(next) && caps.netem && !caps.netem.ok) {
    throw new KernelUnsupportedError(
      `${fault.kind} needs the kernel's netem qdisc (module sch_netem), which this kernel lacks (tc said: ${caps.netem.detail}); ` +
        `use --link relay for latency, jitter and loss (rate, blackhole, cut and down work on the kernel link)`,
      'postcopy-lab doctor shows how to get sch_netem here',
    );
  }
  if ((next.state === 'cut' || next.state === 'blackhole') && !caps.nft.ok) {
    throw new KernelUnsupportedError(
      `${fault.kind} needs nftables, which does not work here (${caps.nft.error}); install it (apt-get install nftables) or use --link relay`,
      'apt-get install nftables',
    );
  }
}
