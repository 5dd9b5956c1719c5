import { describe, expect, it } from 'vitest';
import type { RunDriver } from '../../../src/driver/backend.js';
import { VirshError } from '../../../src/libvirt/pair.js';
import { unixUri, virsh } from '../../../src/libvirt/virsh.js';
import { Operator } from '../../../src/lab/operator.js';
import { QmpError } from '../../../src/qmp/error.js';
import type { LabEvent } from '../../../src/types.js';

/** A driver that has only virsh, answering as libvirt 9.0 does to an unknown subcommand. */
function operatorWithVirsh(stderr: string): { op: Operator; events: Array<Omit<LabEvent, 't'>> } {
  const events: Array<Omit<LabEvent, 't'>> = [];
  const driver = {
    link: null,
    virsh: (_side: string, args: string[]) => Promise.reject(new VirshError(virsh(unixUri('/run/pcl/r1/src/run/libvirt-sock'), ...args), stderr, 1)),
  } as unknown as RunDriver;
  const op = new Operator({ driver: () => driver, vars: () => ({}), backendKind: 'libvirt', emit: (e) => events.push(e) });
  return { op, events };
}

describe('the console on the libvirt backend', () => {
  it('answers a virsh typo with the nearest subcommand, in the reply and the log, without the socket URI', async () => {
    const { op, events } = operatorWithVirsh("error: unknown command: 'migrate-postcop'\n");
    const r = await op.consoleLine('source', 'virsh migrate-postcop pcl-guest');
    expect(r).toEqual({ ok: false, text: "virsh has no command 'migrate-postcop': did you mean migrate-postcopy?" });
    expect(events.map((e) => e.text)).toEqual(["virsh migrate-postcop pcl-guest -> error: virsh has no command 'migrate-postcop': did you mean migrate-postcopy?"]);
  });

  it("shows virsh's other errors in its own words, without the socket URI", async () => {
    const { op } = operatorWithVirsh("error: Requested operation is not valid: domain is not running\n");
    const r = await op.consoleLine('destination', 'virsh suspend pcl-guest');
    expect(r.text).toBe('virsh suspend pcl-guest failed: Requested operation is not valid: domain is not running');
  });
});

describe('the console, a migration command sent to the wrong side', () => {
  function operatorRefusing(message: string): Operator {
    const driver = {
      link: null,
      status: () => 'postcopy-paused',
      send: () => Promise.reject(new QmpError('GenericError', message)),
    } as unknown as RunDriver;
    return new Operator({ driver: () => driver, vars: () => ({}), backendKind: 'sim', emit: () => {} });
  }

  it("keeps QEMU's error and says which side the command is for", async () => {
    const op = operatorRefusing('Migrate recover can only be run when postcopy is paused.');
    const r = await op.consoleLine('source', 'migrate-recover {"uri": "tcp:127.0.0.1:4445"}');
    expect(r.ok).toBe(false);
    expect(r.text).toBe(
      "Error: Migrate recover can only be run when postcopy is paused. (GenericError)\n(migrate-recover is a destination's command)",
    );
    const resume = await operatorRefusing('Cannot resume if there is no paused migration').consoleLine('destination', 'migrate {"uri": "tcp:127.0.0.1:4445", "resume": true}');
    expect(resume.text).toMatch(/\(migrate with resume is a source's command\)$/);
  });

  it('adds nothing to an error on the right side', async () => {
    const r = await operatorRefusing('Migrate recover can only be run when postcopy is paused.').consoleLine('destination', 'migrate-recover {"uri": "tcp:127.0.0.1:4445"}');
    expect(r.text).not.toContain('Shift-Tab');
  });
});

describe('the console, a setting taken by a side where it does nothing', () => {
  function operatorAccepting(): Operator {
    const driver = { link: null, status: () => 'failed', send: () => Promise.resolve({}) } as unknown as RunDriver;
    return new Operator({ driver: () => driver, vars: () => ({}), backendKind: 'sim', emit: () => {} });
  }
  const line = 'migrate-set-capabilities {"capabilities": [{"capability": "auto-converge", "state": true}]}';

  it("keeps QEMU's reply and says which side the setting acts on", async () => {
    const r = await operatorAccepting().consoleLine('destination', line);
    expect(r).toEqual({ ok: true, text: '{}\n(auto-converge acts on the source: the destination takes it and does nothing with it)' });
  });

  it('adds nothing on the side it acts on', async () => {
    expect(await operatorAccepting().consoleLine('source', line)).toEqual({ ok: true, text: '{}' });
  });
});
