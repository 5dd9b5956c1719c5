/**
 * The libvirt backend's pure parts: libvirt's `domstate --reason` as QEMU's migration states
 * (one table), the rule for a lab's virsh action, the virsh action in the lab format, and the
 * CLI-facing refusals (compare and bench cannot drive libvirt).
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { migrationStatus, resumeBeforeQemuPaused, STATE_TABLE } from '../../../src/driver/libvirt-backend.js';
import { makeVmBackend } from '../../../src/driver/select-backend.js';
import { virshActionProblem } from '../../../src/libvirt/virsh-action.js';
import { loadLabText } from '../../../src/lab/load.js';
import { backendProblem } from '../../../src/lab/backend-fit.js';

describe('libvirt states as QEMU migration states', () => {
  it.each([
    ['source', 'running', 'booted', true, 'active'],
    ['source', 'running', 'booted', false, 'none'],
    ['source', 'paused', 'post-copy', true, 'postcopy-active'],
    ['source', 'paused', 'post-copy failed', false, 'postcopy-paused'],
    ['source', 'shut off', 'migrated', false, 'completed'],
    ['destination', 'paused', 'migrating', false, 'active'],
    ['destination', 'running', 'post-copy', false, 'postcopy-active'],
    ['destination', 'running', 'post-copy failed', false, 'postcopy-paused'],
    ['destination', 'running', 'migrated', false, 'completed'],
    ['destination', 'paused', 'user', false, 'none'],
    ['source', 'shut off', 'destroyed', false, 'none'],
  ] as const)('%s %s (%s), job %s -> %s', (side, state, reason, job, want) => {
    expect(migrationStatus(side, { state, reason }, job)).toBe(want);
  });

  it('no domain (the destination before virsh migrate starts it) is none', () => {
    expect(migrationStatus('destination', null, false)).toBe('none');
  });

  it('the table has one row per side, state and reason', () => {
    const keys = STATE_TABLE.map((r) => `${r.side}|${r.state}|${r.reason}`);
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe('a --postcopy-resume refused before the source QEMU paused', () => {
  const resume = ['migrate', '--live', '--postcopy', '--postcopy-resume', 'pcl-guest', 'qemu+tcp://10.0.0.2/system'];
  it('is tried again: libvirt said post-copy failed before QEMU reached postcopy-paused', () => {
    expect(resumeBeforeQemuPaused(resume, 'error: Requested operation is not valid: QEMU reports migration is still running')).toBe(true);
  });
  it('no other refusal is, and no other migrate', () => {
    expect(resumeBeforeQemuPaused(resume, 'error: Requested operation is not valid: post-copy migration of domain pcl-guest has not failed')).toBe(false);
    expect(resumeBeforeQemuPaused(['migrate', '--live', '--postcopy', 'pcl-guest', 'qemu+tcp://10.0.0.2/system'], 'QEMU reports migration is still running')).toBe(false);
  });
});

describe('a lab virsh action', () => {
  it('accepts a subcommand and its arguments', () => {
    expect(virshActionProblem(['migrate-postcopy', 'pcl-guest'])).toBeNull();
  });
  it.each([
    [[], /needs a subcommand/],
    [['--connect', 'qemu:///system', 'list'], /subcommand .* not the option '--connect'/],
    [['list', '-c', 'qemu:///system'], /'-c' is not allowed/],
    [['migrate', ''], /argument 2 must be a non-empty string/],
    [['migrate', 3], /argument 2 must be a non-empty string, got 3/],
  ] as const)('refuses %j', (args, why) => {
    expect(virshActionProblem(args as unknown as unknown[])).toMatch(why);
  });

  const lab = (action: string) => `id: x
title: t
summary: s
summary-text: done
backends: [libvirt]
setup: { memory: 64M }
steps:
  - title: one
    text: t
    hints: [h]
    do:
      - ${action}
    until: 'source.status == "completed"'
expect:
  - 'source.status == "completed"'
`;

  it('parses { virsh: side, args: [...] } with templates', () => {
    const l = loadLabText(lab('{ virsh: source, args: [migrate-postcopy, "${libvirt.domain}"] }'), 'x.yaml');
    expect(l.steps[0].actions[0]).toEqual({ type: 'virsh', side: 'source', args: ['migrate-postcopy', '${libvirt.domain}'] });
  });
  it('names what is wrong in args', () => {
    expect(() => loadLabText(lab('{ virsh: source, args: migrate }'), 'x.yaml')).toThrow(/args: expected a list of virsh arguments/);
    expect(() => loadLabText(lab('{ virsh: source, args: [list, -c, "qemu:///system"] }'), 'x.yaml')).toThrow(/'-c' is not allowed/);
    expect(() => loadLabText(lab('{ virsh: host, args: [list] }'), 'x.yaml')).toThrow(/steps\[0\]\.do\[0\]\.virsh: .*source/);
    expect(() => loadLabText(lab('{ virsh: source, args: [domstate, "${libvirt.domian}"] }'), 'x.yaml')).toThrow(/unknown template variable '\$\{libvirt.domian\}'/);
  });
});

describe('the libvirt labs and backend', () => {
  it('libvirt-postcopy-recovery runs on libvirt only, and says so elsewhere', async () => {
    const l = loadLabText(await readFile('labs/libvirt-postcopy-recovery.yaml', 'utf8'), 'labs/libvirt-postcopy-recovery.yaml');
    expect(l.backends).toEqual(['libvirt']);
    expect(backendProblem(l, 'libvirt')).toBeUndefined();
    expect(backendProblem(l, 'sim')).toMatch(/runs on libvirt only.*--backend libvirt/);
  });
  it('compare and bench refuse libvirt (it owns its migration job)', async () => {
    await expect(makeVmBackend('libvirt')).rejects.toThrow(/sim or QEMU backend only/);
  });
});
