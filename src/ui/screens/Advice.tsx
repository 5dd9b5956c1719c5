/**
 * The lines above the event log that say what the person must know now, whatever the step:
 * a question before a fault the step does not call for (or of another kind than the step's
 * own), a retry or rewind replaying steps, a step that can no longer happen (why, and the keys
 * out), a step that went another way (the lab's `missed`: what happened, the way back), how
 * to start again after a failed migration in a step that starts one (restoring the
 * link first if it is still broken), or — whenever both sides are postcopy-paused — the two
 * recovery commands with this run's real addresses (after "u restores it" while the person
 * left the link broken). Pure: the lines are computed from the state, then drawn.
 */
import { Box, Text } from 'ink';
import { memo } from 'react';
import { describeDirection, describeFault } from '../../link/fault-model.js';
import { brokenLink, brokenOutsideStep, faultConsequence, faultsNotInPlace, faultTooEarly, oneWayWanted, preemptRefused, recoveryCommands, restartAdvice, stepsBefore } from '../../lab/reach.js';
import type { LinkFault, SessionState } from '../../types.js';
import { fit, wrapWords } from '../format.js';

export interface AdviceLine {
  text: string;
  color: 'red' | 'yellow' | 'cyan' | 'green';
  bold?: boolean;
}

/** The most lines an expected ending takes above the log, which keeps its title and a line (the summary has the ending whole). */
const FINISHED_LINES = 3;

/** `line` marked as cut: the summary (Enter) has the rest. */
function ellipsis(line: string, width: number): string {
  const room = Math.max(0, width - 2);
  return `${line.length > room ? line.slice(0, room).trimEnd() : line} …`;
}

/** What to say now, wrapped to `width`; at most `maxLines` (the most important first). */
export function adviceLines(state: SessionState, pendingFault: LinkFault | null, width: number, maxLines: number): AdviceLine[] {
  const out: AdviceLine[] = [];
  const say = (text: string, color: AdviceLine['color'], bold = false) => {
    for (const l of wrapWords(text, width)) out.push({ text: l, color, bold });
  };
  const current = state.steps.find((st) => st.index === state.currentStep);
  // Over: nothing is left to do but read. Recovery commands would invite a recovery the lab
  // has ended (recovery-file-window ends, as it expects, with both sides still paused); a lab
  // that ends in the failure it declares says which, while its last step is read.
  if (state.finished) {
    const f = state.finished.expectedFailure;
    if (f) {
      const lines = wrapWords(`Ended as the lab expects: ${f.message}`, width);
      const keep = lines.slice(0, Math.min(FINISHED_LINES, Math.max(1, maxLines - 2)));
      if (keep.length < lines.length && keep.length > 0) keep[keep.length - 1] = ellipsis(keep[keep.length - 1], width);
      for (const l of keep) out.push({ text: l, color: 'green' });
    }
    return out;
  }
  if (pendingFault) {
    const what = describeFault(pendingFault);
    const own = current?.linkFaults ?? [];
    // "This step cuts the link" read as if the lab would, in a step where the person does
    // (a newcomer's README walk, libvirt-double-failure's second cut): it calls for one.
    const wanted: Record<string, string> = { cut: 'a cut (c)', blackhole: 'a blackhole (b)', down: 'the link down' };
    const head = own.length ? `This step calls for ${own.map((k) => wanted[k] ?? k).join(' and ')}` : 'This step does not break the link';
    // Asked in an earlier step, the question can outlive it: once the step under way calls
    // for this very fault, it is no longer a warning.
    // Unless it comes before the postcopy the step waits for (its own cut, during precopy).
    const early = faultTooEarly(current, pendingFault, state.snapshot);
    const oneWay = oneWayWanted(current, pendingFault);
    if (oneWay && !early) {
      say(
        `Step ${state.currentStep + 1} calls for a ${describeFault(oneWay)} only (l, the link menu, sets one direction); both ways, what goes ${describeDirection(oneWay.direction === 'destination-to-source' ? 'source-to-destination' : 'destination-to-source')} is lost too — ${what} anyway? y/N`,
        'yellow',
        true,
      );
    } else if (own.includes(pendingFault.kind) && !early) say(`Step ${state.currentStep + 1} calls for this: y applies the ${what} now, n/Esc not yet`, 'yellow', true);
    else say(`${early && own.length ? `${head} once postcopy runs` : head}; ${faultConsequence(pendingFault, state.snapshot)} — ${what} anyway? y/N`, 'yellow', true);
  }
  const r = state.replaying;
  if (r) {
    say(`${r.why === 'retry' ? 'Retrying' : 'Rewinding'}: replaying step ${r.step} of ${r.to} for you, then step ${r.to + 1} is yours…`, 'cyan');
  } else if (state.blocked) {
    const b = state.blocked;
    // Step 1 has no earlier steps to replay: the rewind is a fresh start.
    const keys = b.retry
      ? `r retries on the same VMs (${b.step > 1 ? `${stepsBefore(b.step)} again` : 'from the start'}); w rewinds (fresh VMs, same seed).`
      : b.step > 1
        ? `w rewinds: fresh VMs, same seed, ${stepsBefore(b.step)} replayed for you.`
        : 'w starts again on fresh VMs (same seed).';
    // How the step went another way, when the lab named it before the block settled, is the
    // reason; the lab's words also name the way back.
    const why = state.missed?.step === b.step ? state.missed.text : undefined;
    say(`Step ${b.step} can no longer happen. ${why ?? `${b.message} ${keys}`}`, 'red', true);
  } else if (state.missed && state.missed.step === state.currentStep + 1) {
    const m = state.missed;
    // The key bar offers w (rewind); the lab's text says whether that or something else is the way back.
    say(`Step ${m.step}: ${m.text}`, 'yellow', true);
  } else {
    const restart = restartAdvice(current, state.snapshot, state.addresses ?? {});
    if (restart) say(restart, 'yellow', true);
  }
  // Over a broken link the resume cannot get through (the console refuses it): u comes first,
  // unless the step under way broke it that way itself (double-failure's stalled handshake).
  // A cut in a step that blackholes (blackhole's "Pull the cable") is the person's: u first.
  const stepFaults = current?.linkFaults ?? [];
  const snap = state.snapshot;
  const theirs = !!snap && brokenOutsideStep(snap, stepFaults);
  // A step that broke the link, or acts on a VM, for a purpose of its own and recovers nothing
  // (qemu-recovery-file's "Cut the link; save the paused source's RAM", "Lose the source host")
  // is not helped by the recovery commands: they would end its lesson before it begins.
  // A blackhole pauses nobody: both sides paused in a step that only blackholes (blackhole's "Pull
  // the cable", after a cut pressed instead and then u) were paused by the person, and need the
  // commands (found playing blackhole on QEMU 10.0: they vanished once the link was restored).
  const pausing = stepFaults.filter((k) => k !== 'blackhole');
  const stepsOwnPause = !current?.recoverySides?.length && (current?.actsOnVm === true || (pausing.length > 0 && !theirs));
  // The destination refused the preempt channel: a recovery would be refused the same way.
  const refused = preemptRefused(state);
  if (refused) {
    say(
      "Both sides paused: the destination refused the source's second connection, so postcopy-preempt is on the source only. A recovery meets the same refusal: w rewinds (fresh VMs), then set it on both sides before migrate.",
      'yellow',
      true,
    );
  }
  const rec = stepsOwnPause || refused ? null : recoveryCommands(snap, state.addresses ?? {}, current?.actions);
  if (rec) {
    // In a step that recovers nothing, its own fault is in the way too (blackhole's "Pull the
    // cable", pressed b after a cut and before the recovery): u first.
    const link = theirs || !current?.recoverySides?.length ? brokenLink(snap!) : null;
    if (link) out.push({ text: fit(`paused · the link is ${link}: u restores it; then:`, width), color: 'yellow' });
    // The step's own fault before its recovery (qemu-recover-hang's blackholed return path):
    // without it the recovery goes through, and the step is missed.
    const first = snap ? faultsNotInPlace(snap, current?.faultsBeforeRecovery ?? []) : [];
    if (first.length) out.push({ text: fit(`paused · this step's ${first.map(describeFault).join(', ')}: l, the link menu; then:`, width), color: 'yellow' });
    // A step that sends one of the two itself (double-failure resumes the source before the
    // destination listens, on purpose) is not contradicted by the other.
    const stepSides = current?.recoverySides ?? [];
    // A command wider than the screen (libvirt's virsh migrate … --postcopy-resume with both
    // URIs) wraps under itself: cut, it lost the destination's URI at 80 columns.
    // The destination's migrate-recover, once it was taken, is done: the paused lines kept
    // showing it (a newcomer's walk), as if it were still to send.
    const listening = state.recoverListening === true;
    for (const c of rec.filter((c) => (stepSides.length === 0 || stepSides.includes(c.side)) && !(listening && c.side === 'destination'))) {
      const head = `paused · ${c.side}: `;
      const lines = wrapWords(c.line, Math.max(10, width - head.length));
      lines.forEach((l, i) => out.push({ text: fit(`${i === 0 ? head : ' '.repeat(head.length)}${l}`, width), color: 'yellow' }));
    }
  }
  return out.slice(0, Math.max(0, maxLines));
}

const sameLine = (a: AdviceLine, b: AdviceLine) => a.text === b.text && a.color === b.color && a.bold === b.bold;

/** adviceLines makes new lines on every render; the same words do not re-render. */
export function sameAdviceProps(a: { lines: AdviceLine[]; width: number }, b: { lines: AdviceLine[]; width: number }): boolean {
  return a.width === b.width && a.lines.length === b.lines.length && a.lines.every((l, i) => sameLine(l, b.lines[i]));
}

export const Advice = memo(AdviceView, sameAdviceProps);

function AdviceView(props: { lines: AdviceLine[]; width: number }) {
  if (props.lines.length === 0) return null;
  return (
    <Box flexDirection="column" width={props.width}>
      {props.lines.map((l, i) => (
        <Text key={i} color={l.color} bold={l.bold} wrap="truncate">
          {l.text}
        </Text>
      ))}
    </Box>
  );
}
