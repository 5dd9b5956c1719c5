/**
 * The interactive lab: picker, lab screen, summary. Every way out of the TUI (q, the Ctrl-C
 * key, a render error, or the caller's stop step on a signal) goes through one `finish(code)`
 * that stops the lab session, unmounts Ink and gives the terminal back as it was. Signals and
 * process exit belong to the caller (src/cli.ts): this file installs no process handlers.
 */
import { writeFileSync } from 'node:fs';
import chalk from 'chalk';
import { Box, render, Text } from 'ink';
import { KeyProvider, useKeys } from './use-keys.js';
import { useCallback, useEffect, useRef, useState } from 'react';
import type { LabSessionApi, RunSummary } from '../types.js';
import { LabPicker, type LabEntry, type ResetConfirm } from './components/LabPicker.js';
import { Summary, summaryMaxScroll, type SummaryProps } from './components/Summary.js';
import { calculateLayout, tooSmallMessage } from './layout.js';
import { defaultProgressPath, loadProgress, markCompleted, resetProgress, type Progress } from './progress.js';
import { LabScreen } from './screens/LabScreen.js';
import { usePickerKeys } from './use-picker-keys.js';
import { scrollTarget } from './use-lab-keys.js';
import { useTerminalSize } from './use-terminal-size.js';
import { frameBuild, renderCounter } from './use-session.js';
import { diffScreenWrites } from './screen-diff.js';
import { shareInkOutputCaches } from './ink-output-cache.js';

/** How to open a lab: `startAt` (0-based) replays the steps before it on the fresh VMs (a rewind). */
export interface OpenLabOptions {
  startAt?: number;
}

export interface RunTuiOptions {
  labs: LabEntry[];
  openLab(id: string, opts?: OpenLabOptions): Promise<LabSessionApi>;
  /** Open this lab at once instead of showing the picker first. */
  initialLab?: string;
  progressPath?: string;
  /** Streams and environment; default to the process's. */
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
  env?: Record<string, string | undefined>;
  /** Use the terminal's alternate screen (as htop and less do); default: when stdout is a TTY. */
  altScreen?: boolean;
  /** Route console.* through Ink so stray logs do not tear the screen; default true. */
  patchConsole?: boolean;
  /**
   * Receives, once the terminal is taken, the TUI's stop step: stop the lab and restore the
   * terminal, then resolve runTui with `code`. The owner of exit runs it on a signal.
   */
  onStop?(stop: (code: number) => Promise<void>): void;
  /** A lab with `compare:`: run its comparison for the end screen (progress, then the table); null: none. */
  compareLab?: CompareLab;
}

/** Runs a lab's comparison (src/compare): calls `progress` as it goes, resolves with the table, or null when the lab has none. */
export type CompareLab = (labId: string, progress: (line: string) => void, signal: AbortSignal) => Promise<string | null>;

/**
 * Frames Ink actually wrote and the time Ink spent building each one's output (its `onRender`
 * renderTime: the tree walked into the screen's text), for bench/ui.ts. React renders of the
 * lab screen are in renderCounter; the whole cost of a session-driven frame (React, layout and
 * Ink together) in frameBuild.
 */
export const frameStats = { frames: 0, renderMs: 0, renderTimes: [] as number[], written: 0 };

/** Per-frame samples kept for the percentiles: the bench's window is a few hundred frames. */
const MAX_SAMPLES = 20_000;

/** Kept to 0.01 ms: the stats file is rewritten every 500 ms by the process it measures, and full doubles made it ~3 times longer. */
function pushSample(xs: number[], x: number): void {
  if (xs.length < MAX_SAMPLES) xs.push(Math.round(x * 100) / 100);
}

/**
 * For bench/ui.ts: with POSTCOPY_LAB_UI_STATS=<file>, the app keeps `{ t, cpuUs, systemUs,
 * written, frames, renderMs, renderTimes, renders, builds, keys }` in that file (t: this
 * process's performance.now(), ms; cpuUs: process.cpuUsage() user+system, µs; written:
 * characters written to the terminal), rewritten every 500 ms and on exit, so a
 * measurement window is the difference of two readings (and the per-frame arrays' slices).
 */
function startStatsFile(file: string | undefined, stdout: NodeJS.WriteStream): () => void {
  if (!file) return () => {};
  frameBuild.enabled = true;
  // What the frames cost the terminal (and this process's writes): characters written.
  const write = stdout.write;
  stdout.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
    if (typeof chunk === 'string' || chunk instanceof Uint8Array) frameStats.written += chunk.length;
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as NodeJS.WriteStream['write'];
  const save = () => {
    try {
      const cpu = process.cpuUsage();
      const body = JSON.stringify({
        t: performance.now(),
        cpuUs: cpu.user + cpu.system,
        systemUs: cpu.system,
        written: frameStats.written,
        frames: frameStats.frames,
        renderMs: frameStats.renderMs,
        renderTimes: frameStats.renderTimes,
        renders: renderCounter.count,
        builds: frameBuild.times,
        keys: frameBuild.keys,
      });
      // In place, no rename: a rename cost ~4 ms of this process's CPU each (1.5 % of a core,
      // counted in the very CPU figure the file reports); the reader retries a torn read.
      writeFileSync(file, body);
    } catch {
      // a measurement aid; never a reason to fail
    }
  };
  save();
  // Every 500 ms: each write costs this process ~1-2 ms (syscalls, more under load), counted in
  // the CPU figure the file reports; the bench's window is 4 s.
  const timer = setInterval(save, 500);
  timer.unref();
  return () => {
    clearInterval(timer);
    save();
  };
}

/** Exit codes: q from the picker or a lab, an error, the Ctrl-C key (raw mode: not a signal). */
export const EXIT = { ok: 0, error: 1, interrupted: 130 } as const;

/**
 * Tracks the lab sessions the UI has opened so that every exit path can stop them. Stopping is
 * idempotent; `stopAll` waits for every stop ever started.
 */
export class SessionLifecycle {
  private current: LabSessionApi | null = null;
  private readonly stopping = new Set<Promise<void>>();

  set(session: LabSessionApi | null): void {
    this.current = session;
  }

  get(): LabSessionApi | null {
    return this.current;
  }

  /** Stop the current session (if any) and forget it; errors are reported, never thrown. */
  stopCurrent(onError?: (err: unknown) => void): Promise<void> {
    const s = this.current;
    this.current = null;
    if (!s) return Promise.resolve();
    const p = s.stop().catch((err: unknown) => onError?.(err));
    this.stopping.add(p);
    return p;
  }

  async stopAll(onError?: (err: unknown) => void): Promise<void> {
    await this.stopCurrent(onError);
    await Promise.all([...this.stopping]);
  }
}

export interface AppProps {
  labs: LabEntry[];
  openLab(id: string, opts?: OpenLabOptions): Promise<LabSessionApi>;
  initialLab?: string;
  progressPath: string;
  lifecycle: SessionLifecycle;
  /** Called once when the person leaves; the caller stops the session and unmounts. */
  onExit(code: number): void;
  sampleIntervalMs?: number;
  compareLab?: CompareLab;
}

type Screen =
  | { kind: 'picker' }
  /** `via`: the picker (which stays, saying it starts), or not (lab <id>, a rewind): a screen of its own. */
  | { kind: 'opening'; labId: string; startAt?: number; via: 'picker' | 'direct' }
  | { kind: 'lab'; session: LabSessionApi }
  /** `atStep`: the step (0-based) the run was on when it ended, for a retry of a failure that names none. */
  | { kind: 'summary'; labId: string; title: string; summary: RunSummary; lesson?: string; atStep: number }
  | { kind: 'exiting' };

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Enter on the end screen counts only this long after it appeared (an Enter meant for the lab screen would skip it). */
export const SUMMARY_KEY_GRACE_MS = 800;

/**
 * The step (0-based) a failed run can be retried at on fresh VMs, the earlier ones replayed;
 * null for a success or a run someone stopped. A failure that names no step (a VM died) is
 * retried at the step the run was on; a setup failure starts over.
 */
export function retryableStep(summary: RunSummary, atStep: number): number | null {
  if (summary.ok || summary.failure?.reason === 'stopped') return null;
  if (summary.failure?.reason === 'setup') return 0;
  return Math.max(0, summary.failure?.step !== undefined ? summary.failure.step - 1 : atStep);
}

export function App(props: AppProps) {
  const { labs, openLab, progressPath, lifecycle, onExit } = props;
  const { columns, rows } = useTerminalSize();
  const [screen, setScreen] = useState<Screen>(props.initialLab ? { kind: 'opening', labId: props.initialLab, via: 'direct' } : { kind: 'picker' });
  const [initial] = useState(() => loadProgress(progressPath));
  const [progress, setProgress] = useState<Progress>(initial.progress);
  const [notice, setNotice] = useState<string | undefined>(initial.warning);
  // Picker state is mirrored in refs: key handlers read it at key time, renders lag behind.
  const [selected, setSelectedState] = useState(() => Math.max(0, labs.findIndex((l) => l.id === props.initialLab)));
  const selectedRef = useRef(selected);
  const setSelected = (i: number) => {
    selectedRef.current = i;
    setSelectedState(i);
  };
  const [confirm, setConfirmState] = useState<ResetConfirm>(null);
  const confirmRef = useRef<ResetConfirm>(null);
  const setConfirm = (c: ResetConfirm) => {
    confirmRef.current = c;
    setConfirmState(c);
  };
  const exited = useRef(false);
  /** When the end screen appeared (performance.now()). */
  const summaryShownAt = useRef(0);
  /** The end screen's first row shown (it scrolls when taller than the terminal). */
  const [summaryScroll, setSummaryScroll] = useState(0);

  const exit = useCallback(
    (code: number) => {
      if (exited.current) return;
      exited.current = true;
      setScreen({ kind: 'exiting' });
      onExit(code);
    },
    [onExit],
  );

  // Ctrl-C works on every screen, including the too-small message: quit now, no questions.
  useKeys((input, key) => {
    if (key.ctrl && input === 'c') exit(EXIT.interrupted);
  });

  const open = useCallback(
    (labId: string, startAt?: number, via: 'picker' | 'direct' = 'picker') => setScreen({ kind: 'opening', labId, startAt, via }),
    [],
  );

  /**
   * A rewind: the current VMs and link stop, fresh ones start with the same seed, and the steps
   * before `step` are replayed for the person (the lab screen shows the progress).
   */
  const rewind = useCallback(
    (labId: string, step: number) => {
      void lifecycle.stopCurrent((err) => setNotice(`Stopping the lab failed: ${errorText(err)}`));
      setNotice(undefined);
      open(labId, step, 'direct');
    },
    [lifecycle, open],
  );

  useEffect(() => {
    if (screen.kind !== 'opening') return;
    let cancelled = false;
    openLab(screen.labId, screen.startAt ? { startAt: screen.startAt } : undefined).then(
      (session) => {
        if (cancelled || exited.current) {
          void session.stop().catch(() => {});
          return;
        }
        lifecycle.set(session);
        setScreen({ kind: 'lab', session });
      },
      (err: unknown) => {
        if (cancelled) return;
        setNotice(`Could not open ${screen.labId}: ${errorText(err)}`);
        setScreen({ kind: 'picker' });
      },
    );
    return () => {
      cancelled = true;
    };
  }, [screen, openLab, lifecycle]);

  const onFinished = useCallback(
    (summary: RunSummary) => {
      if (screen.kind !== 'lab') return;
      const session = screen.session;
      let note: string | undefined;
      if (summary.ok) {
        try {
          setProgress(markCompleted(summary.labId || session.labId, summary.durationMs, progressPath));
        } catch (err) {
          note = `Could not save progress: ${errorText(err)}`;
        }
      }
      setNotice(note);
      void lifecycle.stopCurrent((err) => setNotice(`Stopping the lab failed: ${errorText(err)}`));
      const atStep = session.getState().currentStep;
      summaryShownAt.current = performance.now();
      setSummaryScroll(0);
      setScreen({ kind: 'summary', labId: session.labId, title: session.title, summary, lesson: session.summaryText, atStep });
    },
    [screen, lifecycle, progressPath],
  );

  const quitLab = useCallback(() => exit(EXIT.ok), [exit]);

  // The end screen of a lab with `compare:` runs the comparison and shows its table; leaving
  // the screen stops it (its VMs and relay).
  const [comparison, setComparison] = useState<string | undefined>(undefined);
  const summaryLab = screen.kind === 'summary' ? screen.labId : null;
  useEffect(() => {
    setComparison(undefined);
    if (!summaryLab || !props.compareLab) return;
    const abort = new AbortController();
    const run = props.compareLab(summaryLab, (line) => !abort.signal.aborted && setComparison(`Comparing strategies on this lab's guest and link…\n${line}`), abort.signal);
    run.then(
      (table) => !abort.signal.aborted && setComparison(table ?? undefined),
      (err) => !abort.signal.aborted && setComparison(`The comparison failed: ${errorText(err)}`),
    );
    return () => abort.abort();
  }, [summaryLab, props.compareLab]);

  const layout = calculateLayout(columns, rows);
  const pickerActive = screen.kind === 'picker' && !layout.tooSmall;
  usePickerKeys({
    labs,
    getSelected: () => selectedRef.current,
    setSelected,
    getConfirm: () => confirmRef.current,
    setConfirm,
    onOpen: (id) => {
      setNotice(undefined);
      open(id);
    },
    onReset: (labId) => {
      try {
        setProgress(resetProgress(labId, progressPath));
        setNotice(labId ? `Progress for ${labId} reset.` : 'All progress reset.');
      } catch (err) {
        setNotice(`Could not reset progress: ${errorText(err)}`);
      }
    },
    onQuit: () => exit(EXIT.ok),
    isActive: pickerActive,
  });

  const summaryIndex = screen.kind === 'summary' ? labs.findIndex((l) => l.id === screen.labId) : -1;
  const nextLab = summaryIndex >= 0 ? labs[summaryIndex + 1] : undefined;
  const retryStep = screen.kind === 'summary' ? retryableStep(screen.summary, screen.atStep) : null;
  const summaryProps: SummaryProps | null =
    screen.kind === 'summary'
      ? { summary: screen.summary, title: screen.title, lesson: screen.lesson, hasNext: !!nextLab, retryStep, notice, comparison, width: columns, height: rows, scroll: summaryScroll }
      : null;
  useKeys(
    (input, key) => {
      // The lab screen's scroll keys, and Space for a page as in a pager.
      const w = { start: summaryScroll, page: Math.max(1, rows - 3), maxStart: summaryProps ? summaryMaxScroll(summaryProps) : 0 };
      const to = input === ' ' ? Math.min(w.maxStart, w.start + w.page) : scrollTarget(input, key, w);
      if (to !== null) {
        setSummaryScroll(to);
      } else if ((input === 'r' || input === 'w') && retryStep !== null && screen.kind === 'summary') {
        rewind(screen.labId, retryStep);
      } else if (key.escape) {
        // Esc is the console's close key: the console is often still open when the lab ends, and
        // closing it seconds later would skip the end screen unread (found playing walk-recovery,
        // whose walk ends ~2 s after the resume). The footer offers Enter.
      } else if (key.return && performance.now() - summaryShownAt.current < SUMMARY_KEY_GRACE_MS) {
        // An Enter meant for the lab screen (the console's last resume) as the lab completed.
      } else if (key.return) {
        setScreen({ kind: 'picker' });
      } else if (input === 'n' && nextLab) {
        setSelected(summaryIndex + 1);
        setNotice(undefined);
        open(nextLab.id);
      } else if (input === 'q') exit(EXIT.ok);
    },
    { isActive: screen.kind === 'summary' && !layout.tooSmall },
  );

  let content;
  switch (screen.kind) {
    case 'opening':
    case 'picker':
      // Opened without the picker (lab <id>, a rewind): a screen of its own. The picker behind
      // "Starting …" read as being sent back out of the lab (a newcomer's README walk, on a
      // libvirt rewind). Opened from the picker, the picker stays with its busy line.
      if (screen.kind === 'opening' && screen.via === 'direct') {
        const title = labs.find((l) => l.id === screen.labId)?.title ?? screen.labId;
        content = (
          <Box flexDirection="column" paddingX={1} paddingY={1}>
            <Text bold>{title}</Text>
            <Text color="cyan">
              {screen.startAt
                ? `Rewinding to step ${screen.startAt}: fresh VMs and link, the same seed; the steps before it are replayed for you…`
                : `Starting ${screen.labId}: the VMs and the link…`}
            </Text>
          </Box>
        );
        break;
      }
      content = (
        <LabPicker
          labs={labs}
          progress={progress}
          selected={selected}
          confirm={confirm}
          notice={notice}
          busy={screen.kind === 'opening' ? `Starting ${screen.labId}…` : undefined}
          width={columns}
          height={layout.height}
        />
      );
      break;
    case 'lab':
      content = (
        <LabScreen
          session={screen.session}
          columns={columns}
          rows={rows}
          isActive={!layout.tooSmall}
          onQuit={quitLab}
          onFinished={onFinished}
          onRewind={(step) => rewind(screen.session.labId, step)}
          sampleIntervalMs={props.sampleIntervalMs}
        />
      );
      break;
    case 'summary':
      content = (
        <Summary {...summaryProps!} />
      );
      break;
    case 'exiting':
      content = <Text>Stopping the lab and restoring the terminal…</Text>;
      break;
  }

  // Screens mounted later (the lab) take their keys through the provider: see use-keys.ts.
  return (
    <KeyProvider>
      {layout.tooSmall ? (
        <Box flexDirection="column">
          <Text color="yellow">{tooSmallMessage(columns, rows)}</Text>
          <Text dimColor>Resize the terminal to continue; Ctrl-C quits.</Text>
        </Box>
      ) : null}
      {/* Kept mounted while too small, so the console's history and the lab's state survive. */}
      <Box display={layout.tooSmall ? 'none' : 'flex'} flexDirection="column">
        {content}
      </Box>
    </KeyProvider>
  );
}

const ALT_SCREEN_ON = '\u001b[?1049h';
const ALT_SCREEN_OFF = '\u001b[?1049l';
const SHOW_CURSOR = '\u001b[?25h';

/** How long exit waits for the session to stop before giving the terminal back anyway. */
export const STOP_TIMEOUT_MS = 15_000;

/**
 * Run the interactive lab until the person quits. Resolves with the exit code; never calls
 * process.exit (the caller does, after anything else it must flush).
 */
export async function runTui(opts: RunTuiOptions): Promise<number> {
  const stdin = opts.stdin ?? process.stdin;
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const env = opts.env ?? process.env;
  // NO_COLOR (https://no-color.org): present and not empty means no colour. Ink colours with
  // the same chalk instance, so this covers every panel.
  if (env.NO_COLOR) chalk.level = 0;
  const altScreen = opts.altScreen ?? Boolean(stdout.isTTY);
  const lifecycle = new SessionLifecycle();
  const progressPath = opts.progressPath ?? defaultProgressPath(env);
  const stopErrors: string[] = [];
  const stopStats = startStatsFile(env.POSTCOPY_LAB_UI_STATS, stdout);
  // Full-screen frames reach the terminal as their changed rows only (see the module).
  const stopDiff = stdout.isTTY ? diffScreenWrites(stdout, [stderr]) : () => {};
  // Frames reuse Ink's tokenized lines instead of tokenizing every line again (see the module).
  await shareInkOutputCaches();

  return new Promise<number>((resolve) => {
    let finished: Promise<void> | null = null;
    let instance: ReturnType<typeof render> | undefined;

    // Every caller waits for the same restore: the owner of exit must not exit half-way through.
    const finish = (code: number, error?: unknown): Promise<void> => (finished ??= restore(code, error));
    const restore = async (code: number, error?: unknown) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>((r) => {
        timer = setTimeout(() => {
          stopErrors.push(`the lab did not stop within ${STOP_TIMEOUT_MS / 1000}s`);
          r();
        }, STOP_TIMEOUT_MS);
      });
      await Promise.race([lifecycle.stopAll((err) => stopErrors.push(errorText(err))), timeout]);
      clearTimeout(timer);
      try {
        instance?.unmount();
        instance?.cleanup();
      } catch {
        // Unmounting after a render error can throw again; the terminal is restored below.
      }
      stopStats();
      stopDiff();
      if (altScreen) stdout.write(ALT_SCREEN_OFF);
      stdout.write(SHOW_CURSOR);
      if (stdin.isTTY && typeof stdin.setRawMode === 'function') {
        try {
          stdin.setRawMode(false);
        } catch {
          // stdin already closed
        }
      }
      if (error !== undefined) stderr.write(`postcopy-lab: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      for (const e of stopErrors) stderr.write(`postcopy-lab: stopping the lab: ${e}\n`);
      resolve(error !== undefined && code === EXIT.ok ? EXIT.error : code);
    };
    opts.onStop?.((code) => finish(code));

    if (altScreen) stdout.write(ALT_SCREEN_ON);
    try {
      instance = render(
        <App
          labs={opts.labs}
          openLab={opts.openLab}
          initialLab={opts.initialLab}
          progressPath={progressPath}
          lifecycle={lifecycle}
          onExit={(code) => void finish(code)}
          compareLab={opts.compareLab}
        />,
        {
          stdin,
          stdout,
          stderr,
          exitOnCtrlC: false,
          patchConsole: opts.patchConsole ?? true,
          // Ink's frame limit is a debounce: a commit within 1000/maxFps ms of the last frame
          // waits out a fresh window, so at Ink's 30 a key pressed just after a counter sample
          // showed ~34 ms late (the bench's key p95). Session samples are limited already
          // (SampledStore, ~12 a second); this only merges commits that come together (a paste).
          maxFps: 250,
          // Not incrementalRendering (Ink 6.8): with it, rows of this full-height frame came out
          // shifted and duplicated in a real terminal (the e2e's xterm), and the frame's cost is
          // in building it, not in writing it.
          onRender: ({ renderTime }) => {
            frameStats.frames++;
            frameStats.renderMs += renderTime;
            if (frameBuild.enabled) {
              pushSample(frameStats.renderTimes, renderTime);
              if (frameBuild.since !== null) pushSample(frameBuild.times, performance.now() - frameBuild.since);
              if (frameBuild.keySince !== null) pushSample(frameBuild.keys, performance.now() - frameBuild.keySince);
              frameBuild.since = null;
              frameBuild.keySince = null;
            }
          },
        },
      );
    } catch (err) {
      void finish(EXIT.error, err);
      return;
    }
    // A render error unmounts Ink with that error; anything else ends through finish().
    instance.waitUntilExit().then(
      () => void finish(EXIT.ok),
      (err: unknown) => void finish(EXIT.error, err),
    );
  });
}

