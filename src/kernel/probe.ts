/**
 * What this machine can do for the kernel link, found by trying rather than assuming: a scratch
 * namespace is created (named `pcl-probe-<pid>-<random>`, always removed), a veth pair is made
 * inside it, and each qdisc is added for real. A kernel without a qdisc answers with its own
 * text (`Error: Specified qdisc kind is unknown.` on recent iproute2, other words on older
 * ones): any failure of the add counts as "missing" and the text is kept for the report.
 */
import { constants as fsConstants } from 'node:fs';
import { access, open, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Argv } from './argv.js';
import { findLeftovers, type Leftovers } from './cleanup.js';
import { KernelCommandError } from './errors.js';
import { linkSetUp, netnsAdd, netnsDel, vethAdd } from './ip.js';
import { nft, tableAdd } from './nft.js';
import { run as defaultRun, runIgnoringNotExist, type Runner } from './run.js';
import { htbArgs, netemArgs, qdiscAdd, qdiscDelRoot, tbfArgs } from './tc.js';

export interface ToolInfo {
  present: boolean;
  /** Where it was found. */
  path?: string;
  /** The first line of its version output, trimmed to the useful part. */
  version?: string;
}

export interface CheckResult {
  /** true: works; false: tried and failed; null: could not be tried (see `detail`). */
  ok: boolean | null;
  /** The kernel's or the program's own words when it failed, or why it was not tried. */
  detail: string;
}

export type QdiscKind = 'netem' | 'tbf' | 'htb';

export interface DistroInfo {
  id: string;
  idLike: string[];
  prettyName: string;
}

export interface KernelProbe {
  kernelRelease: string;
  distro: DistroInfo;
  /** /lib/modules/<release> exists: the kernel can load modules we might be missing. */
  moduleTree: boolean;
  root: boolean;
  uid: number;
  tools: { ip: ToolInfo; tc: ToolInfo; nft: ToolInfo; modprobe: ToolInfo; qemu: ToolInfo };
  netns: CheckResult;
  qdiscs: Record<QdiscKind, CheckResult>;
  nftables: CheckResult;
  kvm: CheckResult;
  leftovers: Leftovers;
}

const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Find a program on PATH (plus the sbin directories, which a non-root PATH often lacks). */
export async function which(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...SBIN_DIRS];
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      await access(p, fsConstants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

async function tool(runner: Runner, name: string, versionArgs: string[] | null, pick: (out: string) => string): Promise<ToolInfo> {
  const p = await which(name);
  if (!p) return { present: false };
  if (!versionArgs) return { present: true, path: p };
  try {
    const { stdout, stderr } = await runner([p, ...versionArgs], { timeoutMs: 10_000 });
    return { present: true, path: p, version: pick((stdout || stderr).trim()) };
  } catch {
    return { present: true, path: p };
  }
}

/** "ip utility, iproute2-6.1.0, libbpf 1.1.2" → "iproute2-6.1.0"; otherwise the first line. */
export function pickVersion(out: string): string {
  const first = out.split('\n')[0] ?? '';
  const m = /(iproute2-[\w.]+|nftables v[\w.]+|QEMU emulator version [\w.+~-]+)/.exec(first);
  return m ? m[1] : first.trim();
}

export async function readDistro(file = '/etc/os-release'): Promise<DistroInfo> {
  try {
    const text = await readFile(file, 'utf8');
    const get = (k: string) => new RegExp(`^${k}=("?)(.*)\\1$`, 'm').exec(text)?.[2] ?? '';
    return { id: get('ID'), idLike: get('ID_LIKE').split(/\s+/).filter(Boolean), prettyName: get('PRETTY_NAME') };
  } catch {
    return { id: '', idLike: [], prettyName: '' };
  }
}

function words(err: unknown): string {
  if (err instanceof KernelCommandError) return err.stderr || err.message;
  return err instanceof Error ? err.message : String(err);
}

async function checkKvm(): Promise<CheckResult> {
  try {
    const fh = await open('/dev/kvm', 'r+');
    await fh.close();
    return { ok: true, detail: '/dev/kvm opened read/write' };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, detail: '/dev/kvm does not exist' };
    if (code === 'EACCES' || code === 'EPERM') return { ok: false, detail: '/dev/kvm exists but this user cannot open it read/write' };
    return { ok: false, detail: `/dev/kvm: ${(err as Error).message}` };
  }
}

const QDISC_TRIALS: Record<QdiscKind, string[]> = {
  netem: netemArgs({ delayMs: 1 }),
  tbf: tbfArgs({ bytesPerSec: 125_000 }),
  htb: htbArgs(),
};

export interface ProbeOptions {
  runner?: Runner;
  /** Skip the leftover scan (doctor wants it; the kernel link's own start-up check does not). */
  leftovers?: boolean;
}

/** A scratch namespace name carrying our pid, so cleanup knows whose it is while we live. */
export function scratchNamespaceName(): string {
  return `pcl-probe-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export async function probeKernel(opts: ProbeOptions = {}): Promise<KernelProbe> {
  const runner = opts.runner ?? defaultRun;
  const uid = process.getuid?.() ?? -1;
  const root = uid === 0;
  const kernelRelease = os.release();
  const [distro, moduleTree, ip, tc, nftTool, modprobe, qemu, kvm] = await Promise.all([
    readDistro(),
    access(`/lib/modules/${kernelRelease}`).then(
      () => true,
      () => false,
    ),
    tool(runner, 'ip', ['-V'], pickVersion),
    tool(runner, 'tc', ['-V'], pickVersion),
    tool(runner, 'nft', ['--version'], pickVersion),
    tool(runner, 'modprobe', null, pickVersion),
    tool(runner, 'qemu-system-x86_64', ['--version'], pickVersion),
    checkKvm(),
  ]);

  const notTried = (why: string): CheckResult => ({ ok: null, detail: why });
  let netns: CheckResult;
  const qdiscs: Record<QdiscKind, CheckResult> = {
    netem: notTried('not tried'),
    tbf: notTried('not tried'),
    htb: notTried('not tried'),
  };
  let nftables: CheckResult = nftTool.present ? notTried('not tried') : { ok: false, detail: 'nft is not installed' };

  if (!root) {
    const why = 'needs root to create a scratch network namespace';
    netns = notTried(why);
    for (const k of Object.keys(qdiscs) as QdiscKind[]) qdiscs[k] = notTried(why);
    if (nftTool.present) nftables = notTried(why);
  } else if (!ip.present) {
    netns = { ok: false, detail: 'ip (iproute2) is not installed' };
    for (const k of Object.keys(qdiscs) as QdiscKind[]) qdiscs[k] = notTried('needs ip to create a scratch namespace');
  } else {
    const ns = scratchNamespaceName();
    try {
      try {
        await runner(netnsAdd(ns));
        netns = { ok: true, detail: `created and removed ${ns}` };
      } catch (err) {
        netns = { ok: false, detail: words(err) };
      }
      if (netns.ok) {
        // A veth end is what the link shapes, so try the qdiscs on one; fall back to lo.
        let dev = 'pcl-pa';
        try {
          await runner(vethAdd('pcl-pa', 'pcl-pb', { ns }));
          await runner(linkSetUp('pcl-pa', { ns }));
        } catch {
          dev = 'lo';
        }
        for (const kind of Object.keys(QDISC_TRIALS) as QdiscKind[]) {
          if (!tc.present) {
            qdiscs[kind] = { ok: false, detail: 'tc (iproute2) is not installed' };
            continue;
          }
          const add: Argv = qdiscAdd({ dev, ns }, QDISC_TRIALS[kind]);
          try {
            await runner(add);
            qdiscs[kind] = { ok: true, detail: `added and removed on ${dev === 'lo' ? 'lo' : 'a veth end'}` };
            await runIgnoringNotExist(runner, qdiscDelRoot(dev, { ns })).catch(() => undefined);
          } catch (err) {
            qdiscs[kind] = { ok: false, detail: words(err) };
          }
        }
        if (nftTool.present) {
          try {
            await runner(nft(ns, tableAdd('pcl-probe')));
            nftables = { ok: true, detail: 'created an inet table in a scratch namespace' };
          } catch (err) {
            nftables = { ok: false, detail: words(err) };
          }
        }
      } else {
        for (const k of Object.keys(qdiscs) as QdiscKind[]) qdiscs[k] = notTried('no scratch namespace');
        if (nftTool.present) nftables = notTried('no scratch namespace');
      }
    } finally {
      await runIgnoringNotExist(runner, netnsDel(ns)).catch(() => undefined);
    }
  }

  const leftovers =
    opts.leftovers === false ? { namespaces: [], nftTables: [], staleMarkers: [], runtimeDirs: [], notes: [] } : await findLeftovers({ runner });

  return {
    kernelRelease,
    distro,
    moduleTree,
    root,
    uid,
    tools: { ip, tc, nft: nftTool, modprobe, qemu },
    netns,
    qdiscs,
    nftables,
    kvm,
    leftovers,
  };
}
