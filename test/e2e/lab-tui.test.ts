/**
 * The interactive lab end to end, in a real pseudo-terminal: the picker, link-cut-recovery
 * done the way a person does it (QMP typed into the console, show me, the cut and restore
 * keys, the recovery commands typed from the hints), the summary, quitting; a resize to below
 * the minimum and back; Ctrl-C during a lab. Every check reads the rendered screen.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, ROOT, ensureBuilt } from '../helpers/sim.js';
import { eventually, killAllTerms, pidsWith, spawnTerm, type Term } from '../helpers/term.js';

const LAB_TITLE = 'Cut the link during postcopy, then recover';

function startApp(args: string[] = [], size = { cols: 120, rows: 36 }): Term {
  return spawnTerm(process.execPath, [CLI_BIN, ...args], { cwd: ROOT, ...size });
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
  // The prompt empties; the line moves above it, and its reply replaces the '…' under it.
  return t.waitUntil((s) => {
    const ls = s.split('\n');
    const p = ls.findIndex((l) => l.startsWith('Enter send')) - 1;
    if (p < 0 || ls[p].trim() !== `${side}>`) return false;
    const i = ls.findLastIndex((l, j) => j < p && l.startsWith(`${side}> ${line.slice(0, 20)}`));
    return i >= 0 && i + 1 < p && ls[i + 1] !== '…';
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

beforeAll(async () => {
  await ensureBuilt();
}, 240_000);

afterEach(() => {
  killAllTerms();
});

describe('the lab TUI in a real terminal', () => {
  it('opens link-cut-recovery from the picker and a person completes it', async () => {
    const t = startApp();
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
    // Tab on an empty line switches the target.
    t.press('Tab');
    s = await consoleSend(t, 'source', `migrate {"uri": "${recoverConnect}", "resume": true}`);
    expect(s).not.toMatch(/GenericError|CommandNotFound/);
    s = await t.waitFor('Steps 7/7', 30_000);
    t.press('Esc');

    // The end: the summary screen.
    s = await t.waitFor('Lab complete', 120_000);
    expect(s).toContain(LAB_TITLE);
    expect(s).toMatch(/time\s+\d/);
    expect(s).toMatch(/pages re-sent\s+\d+/);
    expect(s).toMatch(/recoveries\s+1/);
    expect(s).toMatch(/all pages verified\s+yes/);

    t.type('q');
    expect(await t.exit).toBe(0);
    await eventually(() => children(t).length === 0, 'no VM or relay process of this run to remain');
  });

  it('says the terminal is too small below 80x24 and comes back on a resize', async () => {
    const t = startApp(['lab', 'link-cut-recovery']);
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

  it('Ctrl-C during a lab exits 130 and stops every child process', async () => {
    const t = startApp(['lab', 'link-cut-recovery']);
    await t.waitFor('Steps 1/7', 30_000);
    await t.waitFor(/destination listens on/, 30_000);
    await eventually(() => children(t).length >= 3, 'both VMs and the relay to run');
    t.press('Ctrl-C');
    expect(await t.exit).toBe(130);
    await eventually(() => children(t).length === 0, 'no VM or relay process of this run to remain');
  });

  // One owner of exit (src/cli.ts): a signal stops the lab, restores the terminal, and exits
  // with 128 + the signal's number, whichever signal it is.
  it.each([
    ['SIGTERM', 143],
    ['SIGHUP', 129],
    ['SIGINT', 130],
  ] as const)('%s during a lab exits %i, restores the terminal and leaves nothing behind', async (signal, code) => {
    const t = startApp(['lab', 'link-cut-recovery']);
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
