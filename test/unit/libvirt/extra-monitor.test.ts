/**
 * The one command allowed around libvirt's job (src/libvirt/commands.ts EXTRA_MONITOR): its rule,
 * and the lab format's `via: x-extra-monitor` (and a virsh action's `expect-error`) as a lab
 * file meets them, with what a wrong one is told.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXTRA_MONITOR_CONSOLE, extraMonitorProblem, mapQmpCommand } from '../../../src/libvirt/commands.js';
import { loadLabText } from '../../../src/lab/load.js';
import { describeAction } from '../../../src/lab/describe.js';

const LAB = readFileSync(fileURLToPath(new URL('../../../labs/libvirt-blackhole.yaml', import.meta.url)), 'utf8');
const VIA = `      - qmp: destination
        execute: migrate-pause
        oob: true
        via: x-extra-monitor
`;

/** The shipped lab with its out-of-band pause replaced by `action` (YAML lines at the do list's indent). */
function withAction(action: string): string {
  expect(LAB).toContain(VIA);
  return LAB.replace(VIA, action);
}

describe('x-extra-monitor: migrate-pause to the destination, out-of-band, and nothing else', () => {
  it('allows exactly that', () => {
    expect(extraMonitorProblem('destination', 'migrate-pause', true)).toBeNull();
  });

  it('refuses anything else, saying what would be right', () => {
    expect(extraMonitorProblem('destination', 'migrate-start-postcopy', true)).toMatch(/one command: migrate-pause to the destination.*got execute: migrate-start-postcopy/);
    expect(extraMonitorProblem('source', 'migrate-pause', true)).toMatch(/virsh domjobabort --postcopy.*got qmp: source/);
    expect(extraMonitorProblem('destination', 'migrate-pause', false)).toMatch(/add oob: true/);
  });

  it('is what the plain mapping points to when it refuses the destination\'s migrate-pause', () => {
    const plan = mapQmpCommand('destination', 'migrate-pause', undefined, { domain: 'g', destUri: 'qemu+tcp://10.0.0.2/system' });
    expect(plan).toMatchObject({ kind: 'refused', reason: expect.stringContaining(EXTRA_MONITOR_CONSOLE) });
  });
});

describe('the lab format: via and expect-error', () => {
  it('loads the shipped lab, with the pause described as the console takes it', () => {
    const lab = loadLabText(LAB, 'libvirt-blackhole.yaml');
    const pause = lab.steps.flatMap((s) => s.actions).find((a) => a.type === 'qmp' && a.via !== undefined);
    expect(pause).toEqual({ type: 'qmp', side: 'destination', execute: 'migrate-pause', arguments: {}, oob: true, via: 'x-extra-monitor' });
    expect(describeAction(pause!, {})).toBe('destination: x-extra-monitor exec-oob migrate-pause');
    const refused = lab.steps.flatMap((s) => s.actions).find((a) => a.type === 'virsh' && a.expectError !== undefined);
    expect(refused).toMatchObject({ type: 'virsh', side: 'source', expectError: 'has not failed' });
  });

  it.each([
    ['another command', VIA.replace('migrate-pause', 'migrate-start-postcopy'), /via: x-extra-monitor takes one command: migrate-pause to the destination.*got execute: migrate-start-postcopy/],
    ['the source', VIA.replace('qmp: destination', 'qmp: source'), /virsh domjobabort --postcopy.*got qmp: source/],
    ['in-band', VIA.replace('        oob: true\n', ''), /add oob: true/],
    ['an unknown path', VIA.replace('x-extra-monitor', 'extra-monitor'), /via: expected the path around the backend: x-extra-monitor, got 'extra-monitor' \(did you mean 'x-extra-monitor'\?\)/],
  ])('refuses %s, at the field, saying what is right', (_what, action, message) => {
    expect(() => loadLabText(withAction(action), 'bad.yaml')).toThrow(message);
  });
});
