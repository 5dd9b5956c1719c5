/**
 * A lab whose faults need the kernel's netem qdisc (latency, jitter, loss), on a kernel link
 * where sch_netem is missing, is refused before its VMs start: otherwise the setup's fault fails
 * after both VMs are up, exit 1, as if the lab were broken. Rate (tbf), cut and blackhole (nft)
 * and down (the veth) do not need netem (src/kernel/render.ts says which needs what).
 */
import type { Lab } from '../lab/schema.js';
import type { LinkFault } from '../types.js';
import { CLEAR_CONFIG, describeFaultKind, nextConfig } from '../link/fault-model.js';
import { needsNetem, probeNetem } from '../kernel/render.js';
import { netnsAdd, netnsDel } from '../kernel/ip.js';
import { run, type Runner } from '../kernel/run.js';
import { scratchNamespaceName } from '../kernel/probe.js';

/** The lab's faults that need netem, as "setup (latency 20 ms)" or "step 3 (loss 1%)". */
export function netemFaultsOf(lab: Lab): string[] {
  const needs = (f: LinkFault) => needsNetem(nextConfig(CLEAR_CONFIG, f));
  const found = lab.setup.link.filter(needs).map((f) => `setup (${describeFaultKind(f)})`);
  lab.steps.forEach((step, i) => {
    for (const a of step.actions) if (a.type === 'link' && needs(a.fault)) found.push(`step ${i + 1} (${describeFaultKind(a.fault)})`);
  });
  return found;
}

/** What a netem probe found: null when it could not be tried (then the link says what is wrong). */
export type NetemCapability = { ok: boolean; detail: string } | null;

/** Why `lab` cannot run on this kernel link (one paragraph), or undefined when it can. */
export function netemProblem(lab: Lab, netem: NetemCapability): string | undefined {
  if (!netem || netem.ok) return undefined;
  const faults = netemFaultsOf(lab);
  if (faults.length === 0) return undefined;
  return (
    `lab '${lab.id}' needs the kernel's netem qdisc (module sch_netem) on --link kernel for ${faults.join(', ')}, and this kernel lacks it (tc said: ${netem.detail.trim().replace(/\.$/, '')}). ` +
    `Most Linux hosts and the Vagrant lab host (README: The Vagrant lab host) have it; here, --link relay runs this lab. postcopy-lab doctor shows how to get sch_netem.`
  );
}

/**
 * Try netem for real, in a scratch namespace that is always removed (~50 ms, root only). Null
 * when no namespace can be made (not root, no ip): the kernel link then refuses with its reason.
 */
export async function probeNetemHere(runner: Runner = run): Promise<NetemCapability> {
  if (process.getuid?.() !== 0) return null;
  const ns = scratchNamespaceName();
  try {
    await runner(netnsAdd(ns));
  } catch {
    return null;
  }
  try {
    return await probeNetem(runner, ns);
  } finally {
    await runner(netnsDel(ns)).catch(() => undefined);
  }
}

/** The refusal for `lab` on `linkKind`, probing netem only when the lab needs it on the kernel link. */
export async function kernelLinkProblem(lab: Lab, linkKind: string, probe: () => Promise<NetemCapability> = probeNetemHere): Promise<string | undefined> {
  if (linkKind !== 'kernel' || netemFaultsOf(lab).length === 0) return undefined;
  return netemProblem(lab, await probe());
}
