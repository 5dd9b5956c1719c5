/**
 * The interactive lab end to end, in a real pseudo-terminal: the picker, link-cut-recovery
 * done the way a person does it (QMP typed into the console, show me, the cut and restore
 * keys, the recovery commands typed from the hints), the summary, quitting; a resize to below
 * the minimum and back; Ctrl-C during a lab. Every check reads the rendered screen.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { CLI_BIN, ROOT, ensureBuilt } from '../helpers/sim.js';
import { eventually, killAllTerms, pidsWith, spawnTerm, type Term } from '../helpers/term.js';

const LAB_TITLE = 'Cut the link during postcopy, then recover';

/** Starts the app in its own terminal, killed when the test that started it ends. */
function startApp(ctx: TestContext, args: string[] = [], size = { cols: 120, rows: 36 }): Term {
  const t = spawnTerm(process.execPath, [CLI_BIN, ...args], { cwd: ROOT, ...size });
  // The test's own hook: the tests run side by side, and a shared afterEach would kill the
  // terminals of the others.
  ctx.onTestFinished(() => t.kill());
  return t;
}

/** The VM and relay processes this terminal's run started (their sockets live under its dir). */
function children(t: Term): number[] {
  return [...pidsWith('vm-main.js', t.dir), ...pidsWith('relay-main.js', t.dir)];
}

/** The line of the picker that is selected (marked ›). */
function selectedLine(t: Term): string {
  return t.lines().find((l) => l.trimStart().startsWith('›')) ?? '';
}

/** Moves the picker's selection down to the lab titled `title`, one key at a time. */
async function selectLab(t: Term, title: string): Promise<void> {
  for (let i = 0; i < 20 && !selectedLine(t).includes(title.slice(0, 30)); i++) {
    const before = selectedLine(t);
    t.press('Down');
    await t.waitUntil(() => selectedLine(t) !== before, 'the selection to move');
  }
  expect(selectedLine(t)).toContain(title.slice(0, 30));
}

/** One line of the counters table, e.g. `state  postcopy-paused  postcopy-paused`. */
function counterRow(screen: string, label: string): string {
  return screen.split('\n').find((l) => new RegExp(`\\s${label}\\s`).test(l)) ?? '';
}

/** Types a line into the (open) QMP console and waits until the reply is on screen. */
async function consoleSend(t: Term, side: 'source' | 'destination', line: string): Promise<string> {
  await t.waitFor(`QMP console to ${side}`);
  const prompt = (ls: string[]) => ls[ls.findIndex((l) => l.startsWith('Enter send')) - 1] ?? '';
  t.type(line);
  await t.waitUntil((s) => prompt(s.split('\n')).includes(line.slice(-25)), 'the typed line on the prompt');
  t.press('Enter');
  // The prompt empties; the line moves above it, and its reply (each line tagged with the side)
  // replaces the '…' under it. A reply taller than the pane shows its end, the line scrolled off.
  return t.waitUntil((s) => {
    const ls = s.split('\n');
    const p = ls.findIndex((l) => l.startsWith('Enter send')) - 1;
    if (p < 0 || ls[p].trim() !== `${side}>`) return false;
    const last = ls.slice(0, p).findLast((l) => l.trim() !== '') ?? '';
    if (!last.startsWith(`${side} › `) || last === `${side} › …`) return false;
    return ls.some((l, j) => j < p && l.startsWith(`${side}> ${line.slice(0, 20)}`)) || ls.some((l) => /^↑ \d+ more lines? above/.test(l));
  }, `the reply to ${line}`);
}

/** A `tcp:host:port` URI in the text of the hint (or event) line that contains `marker`. */
function uriAfter(screen: string, marker: string): string {
  const line = screen.split('\n').find((l) => l.includes(marker)) ?? '';
  if (/\$\{[\w.]+\}/.test(line)) throw new Error(`the hint shows an unexpanded placeholder, so a person cannot type it: '${line.trim()}'`);
  const m = /tcp:[\d.]+:\d+/.exec(line);
  if (!m) throw new Error(`no tcp: address on the line with '${marker}': '${line}'\nscreen:\n${screen}`);
  return m[0];
}

const PG_UP = '\u001b[5~';
const PG_DN = '\u001b[6~';
const HOME = '\u001b[H';

/** The steps panel's rows at 80x24: the left 32 columns, from the title to above the bottom panel. */
function stepsRows(screen: string): string[] {
  const ls = screen.split('\n');
  const bottom = ls.findIndex((l) => /^(Events|QMP console)/.test(l));
  return ls.slice(1, bottom < 0 ? undefined : bottom).map((l) => l.slice(0, 32).trimEnd());
}

/** The text rows of the step being read: below its "step N of M" line, markers left out. */
function stepText(screen: string): string[] {
  const rows = stepsRows(screen);
  return rows.slice(rows.findIndex((l) => /^step \d+ of \d+/.test(l)) + 1).filter((l) => !/^[↑↓] /.test(l));
}

/** Pages through the step being read with PgDn from its top; returns every row it showed. */
async function readWholeStep(t: Term): Promise<string> {
  t.type(HOME);
  await t.waitUntil((x) => !stepsRows(x).some((l) => l.startsWith('↑ ')), 'the step text at its top');
  const seen: string[] = [];
  for (let i = 0; i < 20; i++) {
    const s = t.screen();
    seen.push(...stepText(s));
    const below = stepsRows(s).find((l) => l.startsWith('↓ more'));
    if (!below) break;
    t.type(PG_DN);
    await t.waitUntil((x) => stepsRows(x).find((l) => l.startsWith('↓ more')) !== below, 'PgDn to scroll the step text');
  }
  return seen.join(' ').replace(/\s+/g, ' ');
}

beforeAll(async () => {
  await ensureBuilt();
}, 240_000);

afterAll(() => {
  killAllTerms();
});

// Side by side: a person's pace is mostly waiting (the held migration, the slow interactive
// link), so the two whole labs overlap each other and the short tests, each in its own
// terminal and its own directories (children() tells each run's processes apart by its dir).
describe.concurrent('the lab TUI in a real terminal', () => {
  // The lab holds the migration while a person reads, and its interactive link is slow by
  // design: a quick person still needs about a minute and a half to reach the end.
  it('opens link-cut-recovery from the picker and a person completes it', async (ctx) => {
    const t = startApp(ctx);
    await t.waitFor('labs completed');
    expect(t.screen()).toContain('postcopy-lab');
    expect(t.screen()).toMatch(/↑↓ choose\s+Enter open/);

    await selectLab(t, LAB_TITLE);
    t.press('Enter');

    // Step 1: the step panel explains it; the destination's address is in the event log.
    let s = await t.waitFor('Steps 1/7', 30_000);
    expect(s).toContain(LAB_TITLE);
    s = await t.waitFor(/destination listens on [\d.]+:\d+/, 30_000);
    expect(s).toMatch(/▶ 1\. Get the destination listening/);
    expect(s).toContain('-incoming defer');
    const listen = /destination listens on ([\d.]+:\d+)/.exec(s)![1];
    await t.waitUntil((x) => counterRow(x, 'state').includes('none'), 'both sides idle');

    t.type(':');
    s = await consoleSend(t, 'destination', `migrate-incoming {"uri": "tcp:${listen}"}`);
    s = await t.waitFor('Steps 2/7', 15_000);
    expect(s).toMatch(/✓ 1\. Get the destination listening/);
    expect(s).toMatch(/▶ 2\. Start the migration/);
    expect(counterRow(s, 'state')).toMatch(/setup/);

    // Steps 2 and 3 with "show me".
    t.press('Esc');
    await t.waitFor(/^Events/m);
    await t.waitFor(/s show me/);
    t.type('s');
    s = await t.waitFor('Steps 3/7', 60_000);
    expect(s).toMatch(/✓ 2\. Start the migration/);
    expect(counterRow(s, 'state')).toMatch(/active\s+active/);
    await t.waitFor(/s show me/);
    t.type('s');
    s = await t.waitFor('Steps 4/7', 60_000);
    expect(counterRow(s, 'state')).toMatch(/postcopy-active\s+postcopy-active/);
    expect(s).toMatch(/▶ 4\. Cut the link/);

    // Cut: both sides pause, the link shows cut.
    await t.waitFor(/c cut/);
    t.type('c');
    s = await t.waitUntil((x) => /postcopy-paused\s+postcopy-paused/.test(counterRow(x, 'state')), 'both sides postcopy-paused', 30_000);
    s = await t.waitFor('Steps 5/7', 15_000);
    expect(s).toMatch(/src→dst cut/);
    expect(s).toMatch(/dst→src cut/);
    expect(s).toMatch(/u restore link/);

    // Restore.
    t.type('u');
    s = await t.waitFor('Steps 6/7', 15_000);
    expect(s).toMatch(/src→dst up/);
    expect(counterRow(s, 'state')).toMatch(/postcopy-paused\s+postcopy-paused/);

    // Recover, typing the commands the hints give. Both h in one write: keys that arrive
    // together (typed faster than the app reads) still count one by one.
    t.type('hh');
    s = await t.waitFor('hint 2/2:');
    const recoverListen = uriAfter(s, 'hint 1/2:');
    const recoverConnect = uriAfter(s, 'hint 2/2:');
    expect(s).toContain('Hint 2/2');
    t.type(':');
    s = await consoleSend(t, 'destination', `migrate-recover {"uri": "${recoverListen}"}`);
    expect(s).not.toMatch(/GenericError|CommandNotFound/);
    // The usual slip: the resume typed on the destination. QEMU refuses it there, and the
    // console turns to the source with the same line: Enter sends it.
    const resume = `migrate {"uri": "${recoverConnect}", "resume": true}`;
    t.type(resume);
    await t.waitFor(`destination> ${resume.slice(0, 30)}`);
    t.press('Enter');
    s = await t.waitFor('QMP console to source');
    expect(s).toContain('Cannot resume if there is no paused migration');
    await t.waitFor(`source> ${resume.slice(0, 30)}`);
    t.press('Enter');
    s = await t.waitFor('Steps 7/7', 30_000);
    t.press('Esc');

    // The end: the summary screen.
    s = await t.waitFor('Lab complete', 120_000);
    expect(s).toContain(LAB_TITLE);
    expect(s).toMatch(/time\s+\d/);
    expect(s).toMatch(/pages re-sent\s+\d+/);
    expect(s).toMatch(/recoveries\s+1/);
    expect(s).toMatch(/all pages verified\s+yes/);
    // The lab's closing lesson: its summary-text.
    expect(s).toContain('You cut the network in the one phase where it matters and lost nothing.');

    t.type('q');
    expect(await t.exit).toBe(0);
    await eventually(() => children(t).length === 0, 'no VM or relay process of this run to remain');
  }, 240_000);

  it('at 80x24 every word can be read: step text, a done step, the event log, a long console reply, the closing lesson', async (ctx) => {
    const t = startApp(ctx, ['lab', 'blackhole'], { cols: 80, rows: 24 });
    await t.waitFor('Steps 1/5', 30_000);
    await t.waitFor(/step 1\/5: Start a postcopy migration/, 30_000);

    // Step 2 with "show me"; its text (longer than the panel) read to its last word with PgDn.
    await t.waitFor(/s show me/);
    t.type('s');
    let s = await t.waitFor('Steps 2/5', 60_000);
    expect(stepsRows(s).some((l) => /^↓ more \(\d+ lines\)/.test(l))).toBe(true);
    const text = await readWholeStep(t);
    expect(text).toContain('A blackhole drops every byte in both directions');
    expect(text).toContain("Watch the destination's counters freeze");
    expect(text).toContain('Either way, nothing on either side reports an error.');

    // The done step 1 can be read again with [, and ] comes back.
    t.type('[');
    s = await t.waitFor('step 1 of 5 (done) — ] next');
    expect(stepText(s).join(' ')).toContain('An ordinary start');
    t.type(']');
    await t.waitFor('step 2 of 5 (current)');

    // The event log scrolls back to the line with the addresses (gone from view by now).
    await t.waitUntil((x) => !/destination listens on/.test(x), 'the addresses line to scroll out of the 3-row log');
    t.press('Tab');
    await t.waitFor('scroll here');
    const logTitle = (x: string) => x.split('\n').find((l) => l.startsWith('Events')) ?? '';
    t.type(HOME);
    await t.waitUntil((x) => !logTitle(x).includes('above'), 'Home to show the first events');
    for (let i = 0; i < 10 && !/destination listens on/.test(t.screen()); i++) {
      const before = logTitle(t.screen());
      t.press('Down');
      await t.waitUntil((x) => logTitle(x) !== before, 'Down to scroll the event log');
    }
    s = await t.waitFor(/link 'relay' up; destination listens on [\d.]+:\d+/);
    expect(s).toMatch(/↓ more \(\d+ lines\)/);
    t.press('Tab');

    // A long reply (the source's query-migrate) scrolled to its first line and back to its end.
    t.type(':');
    await t.waitFor('QMP console to destination');
    t.press('Shift-Tab');
    s = await consoleSend(t, 'source', 'query-migrate');
    expect(s).toMatch(/^source › }$/m);
    expect(s).toMatch(/↑ \d+ more lines above/);
    for (let i = 0; i < 10 && !/^source › \{$/m.test(t.screen()); i++) {
      const before = t.screen();
      t.type(PG_UP);
      await t.waitUntil((x) => x !== before, 'PgUp to scroll the reply');
    }
    s = t.screen();
    expect(s).toMatch(/^source> query-migrate$/m);
    expect(s).toMatch(/^source › \{$/m);
    expect(s).toMatch(/^source › {3}"status": "postcopy-active",$/m);
    for (let i = 0; i < 10 && /↓ more/.test(t.screen()); i++) {
      const before = t.screen();
      t.type(PG_DN);
      await t.waitUntil((x) => x !== before, 'PgDn to scroll the reply');
    }
    expect(t.screen()).toMatch(/^source › }$/m);
    t.press('Esc');

    // Finish the lab the quick way and read its closing lesson.
    await t.waitFor(/b blackhole/);
    t.type('b');
    await t.waitFor('Steps 3/5', 30_000);
    for (const step of ['Steps 4/5', 'Steps 5/5']) {
      await t.waitFor(/s show me/);
      t.type('s');
      await t.waitFor(step, 60_000);
    }
    // A step kept on screen after it ended (show me ended step 4 with its text not all read)
    // holds the lab screen at the end until Enter.
    s = await t.waitUntil((x) => x.includes('Lab complete') || x.includes('Enter summary'), 'the end, or the end held for reading', 120_000);
    if (!s.includes('Lab complete')) {
      t.press('Enter');
      s = await t.waitFor('Lab complete');
    }
    expect(s).toContain('A blackhole is the failure that postcopy recovery cannot see by itself.');
    expect(s).toContain('recovery is the same as after a cut.');
    t.type('q');
    expect(await t.exit).toBe(0);
    await eventually(() => children(t).length === 0, 'no VM or relay process of this run to remain');
    // A whole lab run by a person: the bound is for hangs on a loaded machine, not for speed.
  }, 240_000);

  it('says the terminal is too small below 80x24 and comes back on a resize', async (ctx) => {
    const t = startApp(ctx, ['lab', 'link-cut-recovery']);
    await t.waitFor('Steps 1/7', 30_000);
    await t.waitFor(/destination listens on/, 30_000);
    t.resize(60, 20);
    let s = await t.waitFor('Terminal too small');
    expect(s).toContain('need 80x24, have 60x20');
    expect(s).not.toContain('Steps 1/7');
    t.resize(120, 36);
    s = await t.waitFor('Steps 1/7');
    expect(s).not.toContain('Terminal too small');
    expect(s).toMatch(/▶ 1\. Get the destination listening/);
    // The compact layout at the minimum.
    t.resize(80, 24);
    s = await t.waitUntil((x) => x.includes('Steps 1/7') && x.split('\n').every((l) => l.length <= 80), 'the lab at 80x24');
    expect(s).toMatch(/\? help/);
    t.type('q');
    expect(await t.exit).toBe(0);
    await eventually(() => children(t).length === 0, 'no VM or relay process of this run to remain');
  });

  it('Ctrl-C during a lab exits 130 and stops every child process', async (ctx) => {
    const t = startApp(ctx, ['lab', 'link-cut-recovery']);
    await t.waitFor('Steps 1/7', 30_000);
    await t.waitFor(/destination listens on/, 30_000);
    await eventually(() => children(t).length >= 3, 'both VMs and the relay to run');
    t.press('Ctrl-C');
    expect(await t.exit).toBe(130);
    await eventually(() => children(t).length === 0, 'no VM or relay process of this run to remain');
  });

  // One owner of exit (src/cli.ts): a signal stops the lab, restores the terminal, and exits
  // with 128 + the signal's number, whichever signal it is.
  it.for([
    ['SIGTERM', 143],
    ['SIGHUP', 129],
    ['SIGINT', 130],
  ] as const)('%s during a lab exits %i, restores the terminal and leaves nothing behind', async ([signal, code], ctx) => {
    const t = startApp(ctx, ['lab', 'link-cut-recovery']);
    await t.waitFor('Steps 1/7', 30_000);
    await t.waitFor(/destination listens on/, 30_000);
    await eventually(() => children(t).length >= 3, 'both VMs and the relay to run');
    process.kill(t.pid, signal);
    expect(await t.exit).toBe(code);
    const out = t.output();
    // Left the alternate screen and showed the cursor again, after the last frame.
    expect(out.lastIndexOf('\u001b[?1049l')).toBeGreaterThan(out.lastIndexOf('\u001b[?1049h'));
    expect(out.lastIndexOf('\u001b[?25h')).toBeGreaterThan(out.lastIndexOf('\u001b[?25l'));
    await eventually(() => children(t).length === 0, 'no VM or relay process of this run to remain');
    expect(fs.readdirSync(path.join(t.dir, 'run')).filter((f) => f.startsWith('postcopy-lab-'))).toEqual([]);
  });
});
