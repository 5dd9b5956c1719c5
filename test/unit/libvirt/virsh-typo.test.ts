import { describe, expect, it } from 'vitest';
import { VirshError } from '../../../src/libvirt/pair.js';
import { tcpUri, unixUri, virsh } from '../../../src/libvirt/virsh.js';
import { closestVirshCommands, LAB_VIRSH_COMMANDS, stripNoise, virshErrorForPerson } from '../../../src/libvirt/virsh-typo.js';

/** A VirshError as the pair throws it: virsh run inside the source's namespace against a local daemon. */
function localError(args: string[], stderr: string): VirshError {
  return new VirshError(['ip', 'netns', 'exec', 'pcl-src', ...virsh(unixUri('/run/pcl/r1/src/run/libvirt-sock'), ...args)], stderr, 1);
}

describe('closest lab virsh subcommands', () => {
  it('a typo finds the subcommand it was meant to be, nearest first', () => {
    expect(closestVirshCommands('migrate-postcop')[0]).toBe('migrate-postcopy');
    expect(closestVirshCommands('domstat')[0]).toBe('domstate');
    expect(closestVirshCommands('domjobabrot')[0]).toBe('domjobabort');
    expect(closestVirshCommands('migrat')[0]).toBe('migrate');
  });

  it('a word like none of them finds none, and an exact name is no typo', () => {
    expect(closestVirshCommands('snapshot-create')).toEqual([]);
    expect(closestVirshCommands('migrate-postcopy')).not.toContain('migrate-postcopy');
  });
});

describe('virsh errors as a learner reads them', () => {
  it("strips the local daemon's socket URI, keeping virsh's words and the subcommand", () => {
    const e = localError(['domstate', '--reason', 'pcl-guest'], "error: failed to get domain 'pcl-guest'\n");
    expect(e.message).toContain('?socket=');
    const said = virshErrorForPerson(e.message);
    expect(said).toBe("virsh domstate --reason pcl-guest failed: failed to get domain 'pcl-guest'");
  });

  it("drops virsh's polkit notice, which comes before the real error where no polkit runs", () => {
    const e = localError(['domstate', 'nosuch'], "error: Authorization not available. Check if polkit service is running or see debug message for more information.\nerror: failed to get domain 'nosuch'\n");
    expect(e.message).toContain('polkit');
    expect(virshErrorForPerson(e.message)).toBe("virsh domstate nosuch failed: failed to get domain 'nosuch'");
  });

  it("keeps a remote host's URI: it says which host answered", () => {
    const remote = "virsh -c qemu+tcp://10.213.0.2/system domstate x failed: failed to get domain 'x'";
    expect(stripNoise(remote)).toBe(remote);
    expect(virsh(tcpUri('10.213.0.2'), 'list')).toContain('qemu+tcp://10.213.0.2/system');
  });

  it('an unknown subcommand gets one line naming the nearest lab subcommand', () => {
    // libvirt 9.0's words for it.
    const e = localError(['migrate-postcop', 'pcl-guest'], "error: unknown command: 'migrate-postcop'\n");
    const said = virshErrorForPerson(e.message);
    expect(said).toBe("virsh has no command 'migrate-postcop': did you mean migrate-postcopy?");
    expect(said).not.toContain('\n');
  });

  it("an option the subcommand does not have gets virsh's words and the nearest option", () => {
    const e = localError(['migrate', '--live', '--bandwith', '1', 'pcl-guest', 'qemu+tcp://10.213.0.2/system'], "error: command 'migrate' doesn't support option --bandwith\n");
    const said = virshErrorForPerson(e.message);
    expect(said).toMatch(/^virsh migrate --live --bandwith 1 pcl-guest qemu\+tcp:\/\/10\.213\.0\.2\/system failed: command 'migrate' doesn't support option --bandwith: did you mean --bandwidth\?$/);
    const resume = virshErrorForPerson(localError(['migrate', '--postcopy-resum'], "error: command 'migrate' doesn't support option --postcopy-resum\n").message);
    expect(resume).toMatch(/did you mean --postcopy-resume\?$/);
    // Nothing near: virsh's words alone.
    expect(virshErrorForPerson(localError(['domstate', '--frobnicate'], "error: command 'domstate' doesn't support option --frobnicate\n").message)).toMatch(/doesn't support option --frobnicate$/);
  });

  it('an unknown subcommand like none of the lab\'s lists the ones the labs use', () => {
    const said = virshErrorForPerson(localError(['frobnicate'], "error: unknown command: 'frobnicate'\n").message);
    expect(said).toBe(`virsh has no command 'frobnicate': the labs use ${LAB_VIRSH_COMMANDS.join(', ')}`);
  });
});
