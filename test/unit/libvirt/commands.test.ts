import { describe, expect, it } from 'vitest';
import { mapQmpCommand } from '../../../src/libvirt/commands.js';

const ctx = { domain: 'g', destUri: 'qemu+tcp://10.213.0.2/system' };

describe('QMP commands on the libvirt backend', () => {
  it('maps the postcopy flow to the virsh commands an operator types', () => {
    expect(mapQmpCommand('source', 'migrate', { uri: 'tcp:x:4444' }, ctx)).toMatchObject({ kind: 'virsh', side: 'source', args: ['migrate', '--live', '--postcopy', 'g', ctx.destUri], long: true });
    expect(mapQmpCommand('source', 'migrate-start-postcopy', undefined, ctx)).toEqual({ kind: 'virsh', side: 'source', args: ['migrate-postcopy', 'g'], long: false });
    expect(mapQmpCommand('source', 'migrate', { uri: 'tcp:x:4445', resume: true }, ctx)).toMatchObject({
      kind: 'virsh',
      args: ['migrate', '--live', '--postcopy', '--postcopy-resume', 'g', ctx.destUri],
      long: true,
    });
    expect(mapQmpCommand('source', 'migrate-pause', undefined, ctx)).toMatchObject({ kind: 'virsh', args: ['domjobabort', '--postcopy', 'g'] });
    expect(mapQmpCommand('source', 'migrate_cancel', undefined, ctx)).toMatchObject({ kind: 'virsh', args: ['domjobabort', 'g'] });
  });

  it('maps the holds (bandwidth) to migrate-setspeed in whole MiB/s, never 0', () => {
    expect(mapQmpCommand('source', 'migrate-set-parameters', { 'max-postcopy-bandwidth': 2 * 1024 * 1024 }, ctx)).toMatchObject({ args: ['migrate-setspeed', '--postcopy', 'g', '2'] });
    expect(mapQmpCommand('source', 'migrate-set-parameters', { 'max-bandwidth': 1000 }, ctx)).toMatchObject({ args: ['migrate-setspeed', 'g', '1'] });
    expect(mapQmpCommand('source', 'migrate-set-parameters', { 'max-bandwidth': 1, 'max-postcopy-bandwidth': 1 }, ctx)).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/one at a time/) });
    expect(mapQmpCommand('source', 'migrate-set-parameters', { 'downtime-limit': 300 }, ctx)).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/not downtime-limit/) });
    expect(mapQmpCommand('source', 'migrate-set-parameters', { 'max-bandwidth': -1 }, ctx)).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/bytes per second/) });
  });

  it("refuses what would bypass libvirt's job, naming what to do instead", () => {
    const dest = mapQmpCommand('destination', 'migrate-pause', undefined, ctx);
    expect(dest.kind).toBe('refused');
    expect(dest.kind === 'refused' && dest.reason).toMatch(/state-change lock.*domjobabort --postcopy/);
    expect(mapQmpCommand('destination', 'migrate-recover', { uri: 'tcp:0:4445' }, ctx)).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/--postcopy-resume/) });
    expect(mapQmpCommand('destination', 'migrate-incoming', { uri: 'tcp:0:4444' }, ctx)).toMatchObject({ kind: 'refused' });
    expect(mapQmpCommand('source', 'migrate-set-capabilities', { capabilities: [] }, ctx)).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/--postcopy/) });
    expect(mapQmpCommand('destination', 'migrate', {}, ctx)).toMatchObject({ kind: 'refused' });
    expect(mapQmpCommand('destination', 'migrate-start-postcopy', undefined, ctx)).toMatchObject({ kind: 'refused' });
    expect(mapQmpCommand('source', 'human-monitor-command', { 'command-line': 'info status' }, ctx)).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/not mapped to libvirt/) });
  });

  it('lets query commands through to the extra QMP socket, and maps stop/cont/quit', () => {
    expect(mapQmpCommand('destination', 'query-migrate', undefined, ctx)).toEqual({ kind: 'qmp-read', side: 'destination', command: 'query-migrate' });
    expect(mapQmpCommand('source', 'stop', undefined, ctx)).toMatchObject({ args: ['suspend', 'g'] });
    expect(mapQmpCommand('destination', 'cont', undefined, ctx)).toMatchObject({ side: 'destination', args: ['resume', 'g'] });
    expect(mapQmpCommand('source', 'quit', undefined, ctx)).toMatchObject({ args: ['destroy', 'g'] });
  });
});
