/**
 * The command line's words: every command's name (the dispatcher in src/cli.ts switches over
 * exactly these), the --help text, and the error for a command that is none of them. One table,
 * so a new command cannot be dispatched yet missing from --help or from that error.
 */
import { COMPARE_DEFAULTS } from '../compare/options.js';
import { DEFAULT_POSTCOPY_AFTER } from '../compare/strategies.js';
import { DEFAULT_EMULATED_VERSION, EMULATED_VERSIONS } from '../sim/versions.js';

export const PKG_VERSION = '0.1.0';

/** Every command, in the order --help lists them (no command at all opens the picker). */
export const COMMANDS = ['lab', 'drill', 'compare', 'list', 'replay', 'doctor', 'cleanup', 'reset', 'recovery-source', 'recovery-file'] as const;
export type CommandName = (typeof COMMANDS)[number];

export function isCommand(word: string): word is CommandName {
  return (COMMANDS as readonly string[]).includes(word);
}

/** "unknown command 'x' (expected lab, drill, ..., or recovery-file)". */
export function unknownCommandMessage(word: string): string {
  return `unknown command '${word}' (expected ${COMMANDS.slice(0, -1).join(', ')} or ${COMMANDS[COMMANDS.length - 1]})`;
}

const D = COMPARE_DEFAULTS;

export const USAGE = `postcopy-lab ${PKG_VERSION}: a terminal lab for postcopy live migration under network faults

Usage:
  postcopy-lab                         open the lab picker (interactive terminal)
  postcopy-lab lab <id|file> [options] open one lab in the TUI (headless without a terminal, then
                                       exactly a drill: it takes drill's options)
  postcopy-lab drill <id|file> [--json] [--seed N] [--timeout S] [--link relay|kernel]
                               [--backend sim|qemu|libvirt] [--qemu PATH] [--emulate ${EMULATED_VERSIONS.join('|')}]
                               [--source-uri URI --dest-uri URI]
                               [--record FILE | --no-record] [--no-compare] [--verbose]
                               [--hold] [--learner-delay 30s]
                                       run a lab headless; exit 0 if every check held and memory verified
  postcopy-lab compare [--memory ${D.memory}] [--vcpus ${D.vcpus}] [--workload ${D.workload}] [--dirty-rate ${D.dirtyRate}] [--read-rate ${D.readRate}]
                       [--bandwidth ${D.bandwidth}] [--latency ${D.latency}] [--threads 1] [--backend sim|qemu] [--qemu PATH]
                       [--emulate V] [--seed ${D.seed}] [--max-passes ${D.maxPasses}] [--max-seconds ${D.maxSeconds}] [--postcopy-after ${DEFAULT_POSTCOPY_AFTER}]
                       [--max-cpu-throttle P] [--strategies a,b,...] [--json]
                                       migrate the same guest on the same link with each strategy
                                       (precopy, auto-converge, dirty-limit, postcopy, postcopy-after-N,
                                       precopy-postcopy-ram) and print a table of what each cost;
                                       the values shown are the defaults
  postcopy-lab list [--json]           list the labs
  postcopy-lab replay <file.jsonl>     print a recorded run (every run writes one) as the drill showed it
  postcopy-lab doctor                  check this machine for the kernel link and QEMU
  postcopy-lab cleanup                 remove what a killed run left: socket directories, namespaces, nft tables
  postcopy-lab reset [lab]             forget lab progress (all labs, or one)
  postcopy-lab recovery-source FILE --qmp SOCK [--expect-digest HEX]
                                       serve a recovery file to a paused destination, as its lost source would
  postcopy-lab recovery-source --qemu-frozen FILE (--connect HOST:PORT | --qmp SOCK) --qemu BIN --image ROM --memory MIB
                                       finish a real QEMU destination's postcopy from its lost source's saved RAM
  postcopy-lab recovery-file inspect FILE [--json]
                                       what a recovery file holds, and whether every record is intact

Options:
  --json          one JSON object per line on stdout, nothing else
  --seed N        guest workload seed (default: the lab's, else 1)
  --timeout S     give up after S seconds, or a duration like 30m (default 300)
  --link KIND     relay (default, no privileges) or kernel (root: netns + tc + nftables); none
                  (no link at all) is what --source-uri/--dest-uri imply, and only there
  --backend KIND  sim (default: our VMs, nothing to install) or qemu (two qemu-system-x86_64
                  running a generated test guest; KVM when /dev/kvm is usable, else TCG) or
                  libvirt (root: two libvirtd in the kernel link's namespaces, driven by virsh;
                  implies --link kernel; labs that say backends: [libvirt]; not for compare)
  --source-uri URI, --dest-uri URI
                  with --backend libvirt: run on two libvirt daemons you already have (e.g.
                  qemu+ssh://root@host-a/system and qemu+ssh://root@host-b/system) instead of the
                  local pair; the link is then none (labs that break it are refused), and there is
                  no memory check (it needs the daemons' host)
  --qemu PATH     the QEMU binary to run (implies --backend qemu; libvirt runs it too); to compare QEMU versions
  --emulate V     the QEMU version the sim behaves as: ${EMULATED_VERSIONS.join(' or ')} (default ${DEFAULT_EMULATED_VERSION}):
                  its states, events, capabilities and greeting. Sim only (a real QEMU is its own version)
  --record FILE   write the run's JSONL event log here (default: under the state directory)
  --no-record     do not write an event log
  --no-compare    skip the comparison a lab with compare: runs after it passes
  --verbose       also print the VMs' own log lines
  --hold          play at a person's pace, as the TUI does: the steps' holds and the lab's
                  interactive-parameters (a drill ignores both by default)
  --learner-delay D  wait D (e.g. 30s) when each step begins, before its actions: a slow learner
Exit codes: 0 ok, 1 a check failed (or the migration did not verify), 2 bad input.`;
