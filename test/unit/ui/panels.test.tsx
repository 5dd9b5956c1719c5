import { render } from 'ink-testing-library';
import { describe, expect, it } from 'vitest';
import { EventLog, eventLines, logWindow } from '../../../src/ui/components/EventLog.js';
import { HelpOverlay, helpLines } from '../../../src/ui/components/HelpOverlay.js';
import { KeyBar } from '../../../src/ui/components/KeyBar.js';
import { LabPicker } from '../../../src/ui/components/LabPicker.js';
import { LinkMenu, menuWindow } from '../../../src/ui/components/LinkMenu.js';
import { LinkPanel } from '../../../src/ui/components/LinkPanel.js';
import { PageMap, resampleMap } from '../../../src/ui/components/PageMap.js';
import { consoleWindow, inputWindow, QmpConsole } from '../../../src/ui/components/QmpConsole.js';
import { COUNTER_LABELS, sideCells, SideCounters } from '../../../src/ui/components/SideCounters.js';
import { sparkline, Sparkline } from '../../../src/ui/components/Sparkline.js';
import { StepsPanel, stepsView } from '../../../src/ui/components/StepsPanel.js';
import { keysRow, Summary, summaryMaxScroll } from '../../../src/ui/components/Summary.js';
import { initialLabUiState } from '../../../src/ui/lab-state.js';
import { fakeDirection, fakePages, fakeSide, fakeSnapshot, fakeSteps, fakeState } from '../../helpers/fake-session.js';
import { plain } from './helpers.js';
import { keyHints } from '../../../src/ui/key-bar.js';
import type { ReactElement } from 'react';

/** Render once and read the frame before unmounting (Ink may print "\n" after unmount under CI). */
function frame(el: ReactElement): string {
  const r = render(el);
  const out = plain(r.lastFrame());
  r.unmount();
  return out;
}

describe('StepsPanel', () => {
  it('numbers steps, ticks done ones, shows the current text and the hints asked for', () => {
    const out = frame(<StepsPanel steps={fakeSteps()} currentStep={1} width={40} height={12} />);
    expect(out).toContain('Steps 2/3');
    expect(out).toContain('✓ 1. Start postcopy');
    expect(out).toContain('▶ 2. Cut the link');
    expect(out).toContain('3. Recover');
    expect(out).toContain('Cut the link while postcopy runs and');
    expect(out).toContain('Hint 1/2: Press c');
    expect(out).not.toContain('Or use the l menu');
    expect(out).not.toContain('Use migrate'); // a done step's hints stay hidden
  });
  it('marks a failed step and says when all are done', () => {
    const steps = fakeSteps().map((s) => ({ ...s, status: 'done' as const }));
    expect(frame(<StepsPanel steps={steps} currentStep={99} width={40} height={12} />)).toContain('All steps done.');
    const failed = fakeSteps();
    failed[1] = { ...failed[1], status: 'failed' };
    expect(frame(<StepsPanel steps={failed} currentStep={1} width={40} height={12} />)).toContain('✗ 2. Cut the link');
  });

  // A step as long as blackhole's step 2, in the 32 columns of the 80x24 layout.
  const longText = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ') + ' and watch the counters freeze.';
  const longSteps = () => {
    const steps = fakeSteps();
    steps[1] = { ...steps[1], text: longText, hintsShown: 2 };
    return steps;
  };
  const follow = { viewing: null, offset: 0, offsetStep: null };

  it('never cuts text silently: what does not fit is marked, and scrolling reaches its last word', () => {
    const v = stepsView(longSteps(), 1, follow, 32, 17);
    // 16 rows below the title: 3 step titles, the navigation line, 12 rows of text.
    expect(v.list.map((l) => l.number)).toEqual([1, 2, 3]);
    expect(v.nav).toBe('step 2 of 3 (current) — [ prev');
    expect(v.body).toHaveLength(12);
    expect(v.body.at(-1)).toEqual({ text: `↓ more (${v.window.below} lines) · PgDn`, kind: 'more' });
    const last = stepsView(longSteps(), 1, { viewing: null, offset: 999, offsetStep: 1 }, 32, 17);
    expect(last.body[0].text).toMatch(/^↑ \d+ more lines above · PgUp$/);
    expect(last.body.map((l) => l.text).join(' ')).toContain('watch the counters freeze.');
    expect(last.body.at(-1)).toEqual({ text: 'Hint 2/2: Or use the l menu', kind: 'hint' });
    const out = frame(<StepsPanel steps={longSteps()} currentStep={1} view={{ viewing: null, offset: 999, offsetStep: 1 }} width={32} height={17} />);
    expect(out.split('\n')).toHaveLength(17);
    expect(out).toContain('Hint 2/2: Or use the l menu');
  });

  it('a title the list cuts heads the step text whole (32 columns: "Get the destination listen…")', () => {
    const steps = fakeSteps();
    steps[1] = { ...steps[1], title: 'Start a precopy migration and watch it not converge' };
    const v = stepsView(steps, 1, follow, 32, 17);
    expect(v.body.filter((l) => l.kind === 'title').map((l) => l.text).join(' ')).toBe('Start a precopy migration and watch it not converge');
    expect(v.body[0].kind).toBe('title');
    // One that fits the list is not repeated.
    expect(stepsView(fakeSteps(), 1, follow, 32, 17).body.some((l) => l.kind === 'title')).toBe(false);
  });

  it('a scroll belongs to one step: the next step starts at its top', () => {
    const v = stepsView(longSteps(), 1, { viewing: null, offset: 5, offsetStep: 0 }, 32, 17);
    expect(v.window.start).toBe(0);
  });

  it('re-reads a done step with its hints, and says where it is', () => {
    const steps = fakeSteps();
    steps[0] = { ...steps[0], hintsShown: 1 };
    const v = stepsView(steps, 1, { viewing: 0, offset: 0, offsetStep: 0 }, 40, 12);
    expect(v.viewed).toBe(0);
    expect(v.nav).toBe('step 1 of 3 (done) — ] next');
    expect(v.body.map((l) => l.text)).toEqual(['Start the migration.', '', 'Hint 1/1: Use migrate']);
    // Narrow: the short form.
    expect(stepsView(steps, 1, follow, 40, 12).nav).toBe('step 2 of 3 (current) — [ prev');
    const later = steps.map((st, i) => ({ ...st, status: i < 2 ? ('done' as const) : ('active' as const) }));
    expect(stepsView(later, 2, { viewing: 1, offset: 0, offsetStep: 1 }, 24, 12).nav).toBe('step 2 of 3 (done) [ ]');
    // A step not reached yet cannot be read: the view stays on the current one.
    expect(stepsView(steps, 1, { viewing: 2, offset: 0, offsetStep: 2 }, 40, 12).viewed).toBe(1);
    const out = frame(<StepsPanel steps={steps} currentStep={1} view={{ viewing: 0, offset: 0, offsetStep: 0 }} width={40} height={12} />);
    expect(out).toContain('Steps 2/3');
    expect(out).toContain('step 1 of 3 (done) — ] next');
    expect(out).toContain('Hint 1/1: Use migrate');
  });
});

describe('SideCounters', () => {
  it('shows every counter for both sides, each number labelled', () => {
    const snap = fakeSnapshot();
    const out = frame(<SideCounters source={snap.source} destination={snap.destination} width={70} />);
    for (const label of COUNTER_LABELS) expect(out).toContain(label);
    const row = (label: string) => out.split('\n').find((l) => l.startsWith(label)) ?? '';
    expect(row('state')).toMatch(/state\s+postcopy-active\s+postcopy-active/);
    // The source's column says sent, the destination's received: the word is beside its number.
    expect(row('pages')).toMatch(/400 sent\s+400 received/);
    expect(row('req/in flight')).toMatch(/–\s+3 \/ 7/);
    // One re-sent (the source's) and the destination's duplicates discarded, each named.
    expect(row('re-sent/dup')).toMatch(/5 re-sent\s+2 dup discarded/);
    expect(row('remaining')).toMatch(/590\s+600/);
    expect(row('MB/s')).toMatch(/100\s+100/);
    // Blocked vCPUs have their own row; blocktime is a sum over vCPUs and says so.
    expect(row('vCPUs slowed')).toContain('1 now · 0.0 vCPU·s');
    expect(row('fault p50/p99')).toContain('0.42/2.10 ms');
    expect(row('walker')).toContain('25%');
    expect(row('guest')).toMatch(/postmigrate\s+5000 ops\/s/);
  });
  it('says a side whose process is gone is gone, not its last status (a completed one stays completed)', () => {
    const src = fakeSide('source', { status: 'postcopy-paused', alive: false });
    const dst = fakeSide('destination', { status: 'postcopy-paused' });
    const row = (out: string) => out.split('\n').find((l) => l.startsWith('state')) ?? '';
    expect(row(frame(<SideCounters source={src} destination={dst} width={70} />))).toMatch(/^state\s+gone \(was postcopy-paused\)\s+postcopy-paused/);
    expect(row(frame(<SideCounters source={src} destination={dst} width={47} />))).toMatch(/^state\s+gone\s+postcopy-paused/);
    const done = fakeSide('source', { status: 'completed', alive: false });
    expect(row(frame(<SideCounters source={done} destination={dst} width={70} />))).toMatch(/^state\s+completed\s/);
  });
  it('shows postcopy-recover whole on both sides at 80 columns', () => {
    const src = fakeSide('source', { status: 'postcopy-recover' });
    const dst = fakeSide('destination', { status: 'postcopy-recover' });
    const out = frame(<SideCounters source={src} destination={dst} width={47} />);
    const row = out.split('\n').find((l) => l.startsWith('state')) ?? '';
    expect(row).toMatch(/^state\s+postcopy-recover postcopy-recover$/);
    expect(out.split('\n').every((l) => l.length <= 47)).toBe(true);
  });
  it('uses the short form of a cell in a narrow column (80 columns)', () => {
    const snap = fakeSnapshot();
    const dst = fakeSide('destination', { pages: fakePages({ 'duplicates-discarded': 1234, 'blocked-vcpus': 2, 'blocktime-ms': 61_500 }) });
    const out = frame(<SideCounters source={snap.source} destination={dst} width={47} />);
    const row = (label: string) => out.split('\n').find((l) => l.startsWith(label)) ?? '';
    expect(row('re-sent/dup')).toMatch(/5 re-sent\s+1234 dup/);
    expect(row('vCPUs slowed')).toContain('2 · 61.5 vCPU·s');
  });
  it('shows no destination remaining in precopy (a 0 there would contradict the source)', () => {
    const pre = fakeSide('destination', { status: 'active', pages: fakePages({ received: 1000 }) });
    expect(sideCells(pre)[4]).toMatchObject({ text: '– until postcopy' });
    const post = fakeSide('destination', { status: 'postcopy-paused', pages: fakePages({ received: 1000 }) });
    expect(sideCells(post)[4]).toMatchObject({ text: '0', color: 'green' });
  });
  it('shows page counts a backend does not report as not reported, never as zeros (libvirt\'s destination)', () => {
    const dst = fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ received: 0, 'counts-unknown': true }) });
    const cells = sideCells(dst);
    expect(cells[0]).toMatchObject({ text: 'postcopy-active' });
    for (const i of [1, 2, 3, 4]) expect(cells[i]).toMatchObject({ text: 'not reported' });
    const map = plain(render(<PageMap pages={dst.pages} ram={{ total: 64 << 20, remaining: 8 << 20 }} width={70} height={5} />).lastFrame() ?? '');
    expect(map).toMatch(/source: 8\.0+ MiB of 64\.0 MiB remaining/);
    expect(map).toContain('libvirt reports no page counts for the destination');
    expect(map).not.toMatch(/of \d+ pages remaining/);
    // At 80 columns the sentence takes two lines, the second not begun with a blank.
    const narrow = plain(render(<PageMap pages={dst.pages} ram={{ total: 64 << 20, remaining: 8 << 20 }} width={47} height={5} />).lastFrame() ?? '');
    expect(narrow.split('\n').filter((l) => l.trim())).toEqual(['Pages ' + '─'.repeat(41), expect.stringMatching(/^source: /), 'No page map: libvirt reports no page counts for', 'the destination.']);
  });
  it('says "not reported" for the counters a backend does not have (QEMU), never 0', () => {
    const dst = fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ unreported: ['requested', 'duplicates-discarded'] }) });
    expect(sideCells(dst)[2]).toMatchObject({ text: 'not reported' });
    expect(sideCells(dst)[3]).toMatchObject({ text: 'not reported' });
    expect(sideCells(dst)[1].text).toMatch(/received/);
    const src = fakeSide('source', { status: 'postcopy-active', pages: fakePages({ unreported: ['resent'] }) });
    expect(sideCells(src)[3]).toMatchObject({ text: 'not reported' });
    // No walker there (x-recovery-walk is the sim's): a dash, not "idle" or "not reported".
    const noWalker = fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ walker: { active: false, position: 0, total: 0, done: false } }) });
    expect(sideCells(noWalker)[9]).toMatchObject({ text: '–' });
    expect(sideCells(fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ 'counts-unknown': true }) }))[9]).toMatchObject({ text: '–' });
  });
  it('says blocktime is not measured where the backend cannot see it (QEMU without postcopy-blocktime), never 0', () => {
    const dst = fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ 'blocktime-unknown': true }) });
    expect(sideCells(dst)[6]).toMatchObject({ text: 'not measured' });
    expect(sideCells(fakeSide('destination', { status: 'postcopy-active', pages: fakePages({}) }))[6].text).toMatch(/vCPU·s$/);
  });
  it('says blocktime comes at the end where QEMU measures it but reports it only on completion', () => {
    const dst = fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ 'blocktime-at-end': true, unreported: ['blocked-vcpus'] }) });
    expect(sideCells(dst)[6]).toMatchObject({ text: 'QEMU: at the end' });
  });
  it("calls QEMU's destination pages current, not received: its number is the source's total less remaining, and falls at the switchover", () => {
    const qemu = fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ received: 1894, 'received-current': true }) });
    expect(sideCells(qemu)[1]).toMatchObject({ text: '1894 current' });
    expect(sideCells(fakeSide('destination', { pages: fakePages({ received: 1894 }) }))[1].text).toBe('1894 received');
  });
  it('with blocktime measured but no count of vCPUs blocked now (QEMU), shows the total alone, never "0 now"', () => {
    const qemu = sideCells(fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ 'blocked-vcpus': 0, 'blocktime-ms': 3200, unreported: ['blocked-vcpus'] }) }))[6];
    expect(qemu.text).toBe('3.2 vCPU·s');
    const sim = sideCells(fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ 'blocked-vcpus': 0, 'blocktime-ms': 3200 }) }))[6];
    expect(sim.text).toBe('0 now · 3.2 vCPU·s');
    // From 100 s on, whole seconds: the short form fits the destination's column at 80 columns.
    expect(sideCells(fakeSide('destination', { status: 'postcopy-active', pages: fakePages({ 'blocked-vcpus': 0, 'blocktime-ms': 140_300 }) }))[6].short).toBe('0 · 140 vCPU·s');
  });
  it('says "stalled" only while pages should move and the wire is quiet', () => {
    expect(sideCells(fakeSide('source', { stalledMs: 5200 }))[5]).toMatchObject({ text: '100 · no bytes 5s', color: 'yellow' });
    expect(sideCells(fakeSide('destination', { stalledMs: 5200, ram: undefined }))[5]).toMatchObject({ text: 'no bytes 5s' });
    // Paused: no stall flag, and no rate either (QEMU repeats the last one it measured).
    expect(sideCells(fakeSide('source', { stalledMs: 5200, status: 'postcopy-paused' }))[5]).toMatchObject({ text: '–' });
    expect(sideCells(fakeSide('source', { status: 'postcopy-recover' }))[5]).toMatchObject({ text: '–' });
    expect(sideCells(fakeSide('source', { status: 'completed' }))[5]).toMatchObject({ text: '100' });
    expect(sideCells(fakeSide('source', { stalledMs: 1000 }))[5]).toMatchObject({ text: '100' });
  });
  it('makes a stalled guest visible, but not before its rate is measured, and reports a dead VM', () => {
    const guest = (g: Partial<{ progress: number; 'ops-per-second': number; 'window-ms': number }>) =>
      sideCells(fakeSide('destination', { pages: fakePages({ guest: { progress: 1, 'ops-per-second': 0, 'window-ms': 2000, ...g } }) }))[7];
    expect(guest({})).toMatchObject({ text: '0 ops/s STALLED', color: 'red' });
    expect(guest({ 'window-ms': 0 })).toMatchObject({ text: '– ops/s', color: 'gray' });
    expect(guest({ 'window-ms': 300, 'ops-per-second': 4000 })).toMatchObject({ text: '4000 ops/s' });
    expect(sideCells(fakeSide('source', { runState: 'paused' }))[7]).toMatchObject({ text: 'paused' });
    expect(sideCells(fakeSide('source', { alive: false }))[7]).toMatchObject({ text: 'not running', color: 'red' });
  });
  it('shows the source throttle beside the guest speed, and the guest as a share of its normal speed', () => {
    const src = fakeSide('source', { status: 'active', runState: 'running', throttle: 60, guest: { rate: 4000, nominal: 10000, percent: 40 } });
    const out = frame(<SideCounters source={src} destination={fakeSide('destination')} width={47} />);
    const row = (label: string) => out.split('\n').find((l) => l.startsWith(label)) ?? '';
    expect(row('vCPUs slowed')).toMatch(/throttled 60%/);
    expect(row('guest')).toMatch(/5000\/s · 40%/);
    expect(sideCells(src)[6]).toMatchObject({ text: 'throttled 60%', color: 'yellow' });
    expect(sideCells({ ...src, throttle: 0 })[6]).toMatchObject({ text: 'not throttled' });
    expect(sideCells({ ...src, throttle: undefined })[6]).toMatchObject({ text: '–' });
    expect(sideCells(src)[7]).toMatchObject({ text: '5000/s · 40% speed' });
  });
  it('colours the state by kind', () => {
    const colour = (status: Parameters<typeof fakeSide>[1] extends infer O ? O extends { status?: infer S } ? S : never : never) =>
      sideCells(fakeSide('destination', { status }))[0];
    expect(colour('postcopy-active')).toMatchObject({ color: 'green' });
    expect(colour('postcopy-paused')).toMatchObject({ color: 'yellow' });
    expect(colour('postcopy-recover')).toMatchObject({ color: 'cyan' });
    expect(colour('postcopy-recover-setup')).toMatchObject({ color: 'cyan' });
    expect(colour('completed')).toMatchObject({ color: 'blue', bold: true });
    expect(colour('failed')).toMatchObject({ color: 'red' });
  });
  it('falls back to query-migrate numbers without x-query-pages, and dashes without a snapshot', () => {
    const qemu = fakeSide('source', { pages: undefined, ram: { transferred: 2 * 1024 * 1024, remaining: 1024, mbps: 80 } });
    const cells = sideCells(qemu).map((c) => c.text);
    expect(cells[1]).toBe('2.00 MiB sent');
    expect(cells[4]).toBe('1.00 KiB');
    expect(cells[5]).toBe('10.0');
    expect(sideCells(undefined).every((c) => c.text === '–')).toBe(true);
  });
});

describe('PageMap', () => {
  it('draws the map as a grid with a legend', () => {
    const map = 'RRRRrrqq....';
    const out = frame(<PageMap pages={fakePages({ map })} width={70} height={5} />);
    expect(out).toContain('█received');
    expect(out).toContain('▒partial');
    expect(out).toContain('▚requested');
    expect(out).toContain('·missing');
    expect(out).toContain('████▒▒▚▚····');
  });
  it('wraps cells into rows of the panel width', () => {
    const out = frame(<PageMap pages={fakePages({ map: 'R'.repeat(10) + '.'.repeat(10) })} width={10} height={4} />);
    const lines = out.split('\n');
    expect(lines[1]).toBe('██████████');
    expect(lines[2]).toBe('··········');
  });
  it('resamples a large map, keeping requested holes visible', () => {
    expect(resampleMap('RRRRRRRR', 4)).toBe('RRRR');
    expect(resampleMap('RRRq....', 2)).toBe('q.');
    expect(resampleMap('RR..rr..', 4)).toBe('R.r.');
    expect(resampleMap('RRR.', 1)).toBe('r');
    expect(resampleMap('Rq', 10)).toBe('Rq');
  });
  it('says why there is no map and shows what remains', () => {
    const out = frame(<PageMap pages={undefined} ram={{ remaining: 1024 * 1024, total: 4 * 1024 * 1024 }} width={90} height={4} />);
    expect(out).toContain('1.00 MiB of 4.00 MiB remaining');
    expect(out).toContain('the QEMU backend has no per-page view');
    expect(frame(<PageMap pages={fakePages({ map: undefined })} width={70} height={5} />)).toContain('600 of 1000 pages remaining');
    // Before the migration has said how big the guest is: not "0 of 0 pages remaining".
    expect(frame(<PageMap pages={fakePages({ map: undefined, total: 0, received: 0 })} width={70} height={5} />)).toContain('no migration data yet');
  });
});

describe('LinkPanel', () => {
  it('shows each direction: state, latency, rate, bytes forwarded and dropped', () => {
    const link = {
      ...fakeSnapshot().link,
      'source-to-destination': fakeDirection({ state: 'blackhole' as const, latencyMs: 50, jitterMs: 5, rateBytesPerSec: 1024 * 1024, bytesForwarded: 3 * 1024 * 1024, bytesDropped: 2048 }),
      'destination-to-source': fakeDirection({ state: 'cut' as const, lossPercent: 5 }),
    };
    const out = frame(<LinkPanel link={link} width={100} />);
    expect(out).toContain('Link relay · 2 conn');
    expect(out).toMatch(/src→dst blackhole\s+50ms±5 {2}1.00 MiB\/s {2}fwd 3.00 MiB {2}drop 2.00 KiB/);
    expect(out).toMatch(/dst→src cut\s+0ms {2}unlimited {2}loss 5% {2}fwd 0 B {2}drop 0 B/);
    const narrow = frame(<LinkPanel link={link} width={47} />);
    expect(narrow).toContain('s→d blackhole 50ms±5 1.0M/s fwd 3.0M drop 2.0K');
    expect(narrow).toContain('d→s cut       0ms no cap loss 5% fwd 0 drop 0');
  });
  it('says when there is no link yet', () => {
    expect(frame(<LinkPanel width={40} />)).toContain('not started');
  });
});

describe('Sparkline', () => {
  it('maps values to bars, newest right, bucketing to the width', () => {
    expect(sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8)).toBe(' ▂▃▄▅▆▇█');
    expect(sparkline([7, 7], 4)).toBe('  ██');
    expect(sparkline([0, 0, 0], 3)).toBe('   ');
    expect(sparkline([1, 1, 8, 8], 2)).toBe('▂█');
    expect(sparkline([0.1, 8], 2)).toBe('▁█');
    expect(sparkline([], 0)).toBe('');
  });
  it('shows throughput and remaining with their latest values', () => {
    const history = Array.from({ length: 60 }, (_, i) => ({ t: i * 1000, mbps: 80 * i, remaining: (60 - i) * 1024 * 1024 }));
    const out = frame(<Sparkline history={history} width={60} />);
    expect(out).toContain('MB/s 1min');
    expect(out).toContain('590');
    expect(out).toContain('remaining');
    expect(out).toContain('1.00 MiB');
  });
  it('says – for remaining before the migration starts (query-migrate gives 0 then: not what is left)', () => {
    const out = frame(<Sparkline history={[{ t: 0, mbps: 0, remaining: null }]} width={60} />);
    expect(out).toMatch(/remaining\s+–/);
    expect(out).not.toContain('0 B');
  });
});

describe('EventLog', () => {
  it('keeps the last events that fit, one line each, and says in its title what lies above', () => {
    const events = Array.from({ length: 30 }, (_, i) => ({ t: i * 100, kind: 'state' as const, side: 'source' as const, text: `event ${i}\nsecond line` }));
    const out = frame(<EventLog events={events} width={80} height={5} />);
    const lines = out.split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/^Events ↑ 26 more lines above · Tab scrolls/);
    expect(lines[1]).toContain('event 26 second line');
    expect(lines[4]).toMatch(/2\.9s state\s+src event 29/);
    expect(out).not.toContain('event 25');
  });

  it('scrolled back, holds its place while events arrive and says how many are below', () => {
    const events = Array.from({ length: 30 }, (_, i) => ({ t: i * 100, kind: 'info' as const, text: `event ${i}` }));
    expect(logWindow(events, events[2], 4)).toMatchObject({ start: 2, end: 6, above: 2, below: 24, maxStart: 26 });
    const more = [...events, { t: 9999, kind: 'info' as const, text: 'new' }];
    expect(logWindow(more, events[2], 4)).toMatchObject({ start: 2, below: 25 });
    expect(logWindow(events, null, 4)).toMatchObject({ start: 26, end: 30, below: 0 });
    // Fell out of the bounded list: the oldest kept.
    expect(logWindow(events.slice(5), events[2], 4).start).toBe(0);
    const out = frame(<EventLog events={events} top={events[0]} focused width={100} height={5} />);
    expect(out).toContain('↓ more (26 lines) · End: newest · ‹ ↑↓ PgUp PgDn scroll here');
    expect(out.split('\n')[1]).toContain('event 0');
  });
  it('focused (Tab), shows each event whole, wrapped under its text column; unfocused, says Tab reads what was cut', () => {
    const long = 'migrate-set-capabilities {"capabilities":[{"capability":"postcopy-ram","state":true},{"capability":"return-path","state":true}]}';
    const events = [
      ...Array.from({ length: 5 }, (_, i) => ({ t: i * 100, kind: 'info' as const, text: `event ${i}` })),
      { t: 600, kind: 'qmp' as const, side: 'destination' as const, text: long },
      { t: 700, kind: 'info' as const, text: 'last' },
    ];
    const cut = frame(<EventLog events={events} width={80} height={4} />);
    expect(cut.split('\n')[0]).toContain('Tab reads whole lines');
    expect(cut).not.toContain('"state":true}]}');
    const whole = frame(<EventLog events={events} top={events[5]} focused width={80} height={5} />);
    const lines = whole.split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[1]).toMatch(/0\.6s qmp\s+dst migrate-set-capabilities/);
    // Continuation rows start at the text column, and together they hold the whole text.
    expect(lines.slice(2, 2 + eventLines(events[5], 80).length - 1).every((l) => l.startsWith(' '.repeat(20)) && l.trim().length > 0)).toBe(true);
    expect(lines.slice(1).join(' ').replace(/\s+/g, '')).toContain(long.replace(/\s+/g, ''));
    // Following the newest, focused: as many whole events as fit from the newest up.
    const w = logWindow(events, null, 4, (e) => eventLines(e, 80).length);
    expect(w.end).toBe(events.length);
    expect(w.start).toBe(events.length - 2); // the long one (3 rows) and 'last'
    expect(w.page).toBe(1);
  });

  it('wraps an event at spaces and after commas, every row within the text column, nothing lost', () => {
    const e = { t: 0, kind: 'qmp' as const, text: 'migrate-set-capabilities {"capabilities":[{"capability":"postcopy-ram","state":true},{"capability":"events","state":true}]} -> {}' };
    const lines = eventLines(e, 60); // 40 columns of text
    expect(lines.every((l) => l.length <= 40)).toBe(true);
    expect(lines[1]).toBe(e.text.slice(25, 65)); // no space or comma in 40 columns: cut at the column's end
    expect(lines.slice(2).some((l) => l.endsWith(','))).toBe(true); // broken after a comma, not inside "events"
    expect(lines.join('').replace(/ /g, '')).toBe(e.text.replace(/ /g, ''));
    expect(eventLines({ t: 0, kind: 'info', text: '' }, 60)).toEqual(['']);
  });

  it('focused, cuts an event taller than the panel with a mark, and never more rows than it has', () => {
    const events = [{ t: 0, kind: 'error' as const, text: 'word '.repeat(80) }];
    const out = frame(<EventLog events={events} top={events[0]} focused width={60} height={4} />);
    expect(out.split('\n')).toHaveLength(4);
    expect(out.trimEnd().endsWith('…')).toBe(true);
    expect(logWindow(events, null, 3, (e) => eventLines(e, 60).length)).toMatchObject({ start: 0, end: 1, below: 0 });
  });
});

describe('QmpConsole', () => {
  it('shows target, scrollback with replies and errors, completions and the input line', () => {
    const c = {
      ...initialLabUiState().console,
      input: 'migrate',
      completions: ['migrate', 'migrate-pause'],
      output: [
        { id: 1, side: 'destination' as const, line: 'query-status', ok: true, text: '{"status": "running"}' },
        { id: 2, side: 'source' as const, line: 'bogus', ok: false, text: 'The command bogus has not been found' },
        { id: 3, side: 'destination' as const, line: 'query-migrate' },
      ],
    };
    const out = frame(<QmpConsole console={c} width={80} height={10} />);
    expect(out).toContain('QMP console to destination (Shift-Tab switches)');
    expect(out).toContain('destination> query-status');
    expect(out).toContain('destination › {"status": "running"}');
    expect(out).toContain('source> bogus');
    expect(out).toContain('source › Error: The command bogus has not been found');
    expect(out).toContain('destination › …');
    expect(out).toContain('migrate  migrate-pause');
    expect(out.split('\n').at(-1)).toBe('destination> migrate');
  });

  it('wraps a long reply and scrolls it to its end', () => {
    const reply = JSON.stringify({ status: 'postcopy-active', ram: { transferred: 123, remaining: 456, total: 789 }, x: 'y'.repeat(60) }, null, 2);
    const c = { ...initialLabUiState().console, output: [{ id: 1, side: 'source' as const, line: 'query-migrate', ok: true, text: reply }] };
    const { lines, window: w } = consoleWindow(c, 40, 6);
    expect(lines.every((l) => l.text.length <= 40)).toBe(true);
    expect(lines.slice(1).every((l) => l.text.startsWith('source › '))).toBe(true);
    // Following the newest: the end of the reply, and a marker for what is above.
    expect(w.end).toBe(lines.length);
    expect(w.above).toBeGreaterThan(0);
    const top = frame(<QmpConsole console={{ ...c, scroll: 0 }} width={40} height={6} />);
    expect(top).toContain('source> query-migrate');
    expect(top).toContain('"status": "postcopy-active"');
    expect(top).toMatch(/↓ more \(\d+ lines\)/);
  });

  it('shows the cursor where it is, keeping it in view on a long line', () => {
    expect(inputWindow('migrate', 3, 20)).toEqual({ before: 'mig', at: 'r', after: 'ate' });
    expect(inputWindow('migrate', 7, 20)).toEqual({ before: 'migrate', at: ' ', after: '' });
    const long = 'x'.repeat(50) + 'END';
    const end = inputWindow(long, long.length, 10);
    expect(end.before.endsWith('END')).toBe(true);
    expect(end.before.length + 1).toBe(10);
    expect(inputWindow(long, 0, 10)).toEqual({ before: '', at: 'x', after: 'x'.repeat(9) });
  });
});

describe('KeyBar, HelpOverlay, LinkMenu', () => {
  it('key bar shows the keys and keeps ? when narrow', () => {
    expect(frame(<KeyBar hints={keyHints('normal', fakeState())} width={100} />)).toBe(
      'c cut  b blackhole  l link menu  p pause  h hint  s show me  : console  ? help  q quit',
    );
    // y only where a hint shown gives a command to copy ("Press c" gives none).
    const withCommand = fakeState({ steps: fakeSteps().map((st) => (st.index === 1 ? { ...st, hints: ['On the source: migrate-start-postcopy'], hintsShown: 1 } : st)) });
    expect(frame(<KeyBar hints={keyHints('normal', withCommand)} width={100} />)).toContain('y copy hint');
    expect(frame(<KeyBar hints={keyHints('normal', fakeState())} width={8} />)).toBe('? help');
  });
  it('help lists every key', () => {
    const out = frame(<HelpOverlay width={100} height={40} />);
    for (const k of ['c ', 'b ', 'l ', 'u ', 'p ', 'h ', 's ', ': ', '? ', 'q ', 'y ', '[ ]', 'PgUp PgDn', 'Ctrl-C', 'Tab', 'S-Tab', '← →', 'Esc']) expect(out).toContain(k);
    expect(out).toContain('no key to skip one');
  });
  it('help wraps every description and scrolls on a short terminal', () => {
    const lines = helpLines(80);
    expect(lines.every((l) => (l.key ? 10 : 10) + l.text.length <= 80)).toBe(true);
    const top = frame(<HelpOverlay width={80} height={21} />);
    expect(top.split('\n')).toHaveLength(21);
    expect(top).toMatch(/↓ more \(\d+ lines?\) · PgDn/);
    const end = frame(<HelpOverlay width={80} height={21} offset={999} />);
    expect(end).toContain('no key to skip one');
    expect(end).toMatch(/↑ \d+ more lines above · PgUp/);
  });

  it('link menu marks the chosen item and direction with › (visible without colour)', () => {
    const out = frame(<LinkMenu item={6} direction={2} link={fakeSnapshot().link} width={80} height={21} />);
    expect(out).toContain('› latency 200 ms ± 50 ms');
    expect(out).toContain('›destination→source');
    expect(out).not.toContain('›both directions');
    expect(out).toContain('  blackhole: drop every byte silently');
    expect(out).toContain('no rate cap');
    expect(out).toMatch(/now: source→destination: up/);
    expect(out).toMatch(/destination→source: up/);
  });

  it('link menu scrolls to keep the chosen item in view when short', () => {
    const out = frame(<LinkMenu item={15} direction={0} link={fakeSnapshot().link} width={80} height={10} />);
    expect(out).toContain('› no loss');
    expect(out).not.toContain('cut: reset');
    expect(menuWindow(16, 0, 6)).toEqual({ start: 0, end: 6 });
    expect(menuWindow(16, 15, 6)).toEqual({ start: 10, end: 16 });
    expect(menuWindow(16, 8, 6)).toEqual({ start: 5, end: 11 });
    expect(menuWindow(4, 2, 10)).toEqual({ start: 0, end: 4 });
  });
});

describe('Summary and LabPicker', () => {
  it('summary shows time, the counters with their units, verification', () => {
    const out = frame(
      <Summary
        summary={{
          ok: true, labId: 'x', durationMs: 95_000, verified: true,
          pagesSent: 1000, pagesReceived: 1000, pagesResent: 12, duplicatesDiscarded: 3, blocktimeMs: 60_000, blocktimeWorstVcpuMs: 31_000, recoveries: 1,
        }}
        title="Link cut recovery"
        hasNext
        width={80}
      />,
    );
    expect(out).toContain('✓ Lab complete: Link cut recovery');
    expect(out).toMatch(/time\s+1m 35s/);
    expect(out).toMatch(/pages re-sent\s+12/);
    expect(out).toMatch(/duplicates discarded\s+3/);
    expect(out).toMatch(/pages sent\s+1000/);
    expect(out).toMatch(/pages received\s+1000/);
    // A sum over vCPUs: 60 s of blocktime in a 95 s lab is vCPU·s, not wall-clock seconds.
    expect(out).toMatch(/vCPU blocktime\s+60\.0 vCPU·s \(worst vCPU 31\.0 s\)/);
    expect(out).toMatch(/all pages verified\s+yes/);
    expect(out).toContain('n next lab');
    // The longest label still has room before its value, and the values share one column.
    const withFile = frame(
      <Summary
        summary={{ ok: true, labId: 'x', durationMs: 1000, verified: true, pagesSent: 10, pagesReceived: 20, pagesFromFile: 22715, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 1 }}
        title="T"
        hasNext={false}
        width={80}
      />,
    );
    expect(withFile).toMatch(/of them from a recovery file {2}22715/);
    const column = (label: string) => withFile.split('\n').find((l) => l.includes(label))!.search(/\S+$/);
    expect(column('pages sent')).toBe(column('of them from a recovery file'));
    // Sent by a recovery source in the lost source's place: its own count, and said so.
    const byRecovery = frame(
      <Summary
        summary={{ ok: true, labId: 'x', durationMs: 1000, verified: false, pagesSent: 0, sentByRecoverySource: true, pagesReceived: 1901, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0 }}
        title="T"
        hasNext={false}
        width={80}
      />,
    );
    expect(byRecovery).toMatch(/pages sent by the recovery source {2}0/);
  });
  it('summary ends with the lab\'s closing lesson, wrapped, also when the lab failed', () => {
    const lesson = 'A blackhole is the failure that postcopy recovery cannot see by itself. Monitoring has to watch the counters.\n';
    const out = frame(
      <Summary
        summary={{ ok: false, labId: 'x', durationMs: 1000, verified: false, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0, failure: { message: 'timed out' } }}
        title="T"
        lesson={lesson}
        hasNext={false}
        width={60}
      />,
    );
    expect(out).toContain('A blackhole is the failure that postcopy recovery cannot');
    expect(out).toContain('watch the counters.');
    expect(out.split('\n').every((l) => l.length <= 60)).toBe(true);
    // After a failure the lesson is introduced as the lab's, not told as this run's account.
    expect(out).toMatch(/What the lab shows when it runs to its end:\n\s*A blackhole is/);
    const ok = frame(
      <Summary
        summary={{ ok: true, labId: 'x', durationMs: 1000, verified: true, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0 }}
        title="T"
        lesson={lesson}
        hasNext={false}
        width={60}
      />,
    );
    expect(ok).not.toContain('What the lab shows');
  });
  it('a summary taller than the terminal keeps its title and its keys on screen, and scrolls the rest', () => {
    const props = {
      summary: {
        ok: true, labId: 'x', durationMs: 37_600, verified: false, pagesResent: 0, duplicatesDiscarded: 2, blocktimeMs: 68_500, recoveries: 0,
        expectedFailure: { reason: 'recovery-incomplete', message: `recovery cannot be complete: the destination lacks 1481 pages (${Array.from({ length: 60 }, (_, i) => 1897 + i).join(', ')})` },
      },
      title: 'A recovery file whose window is too small',
      lesson: `${'The file held every page the source never sent, and its window the last ones it sent, but more than the window was in flight when the link died. '.repeat(3)}The window must cover the bytes in flight.`,
      hasNext: true,
      width: 80,
      height: 24,
    } as const;
    const lines = (scroll: number) => plain(frame(<Summary {...props} scroll={scroll} />)).split('\n');
    const top = lines(0);
    expect(top).toHaveLength(24);
    expect(top[0]).toContain('✓ Lab complete: A recovery file whose window is too small');
    expect(top[23]).toMatch(/^ ↑↓ scroll \(\d+ more below\) {2}Enter labs {2}n next lab {2}q quit/);
    expect(top.join('\n')).not.toContain('bytes in flight.');
    const max = summaryMaxScroll({ ...props });
    expect(max).toBeGreaterThan(0);
    const end = lines(max);
    expect(end).toHaveLength(24);
    expect(end.join('\n')).toContain('bytes in flight.');
    expect(end[23]).toMatch(/^ ↑↓ scroll {2}Enter labs/);
    // Past the end is the end.
    expect(lines(max + 50)).toEqual(end);
    // A failed run's retry and a scroll at 80 columns: the short words, and q quit is not cut.
    const failed = { ...props, summary: { ...props.summary, ok: false, expectedFailure: undefined, failure: { message: 'timed out' } }, retryStep: 4 };
    const keys = keysRow(failed, { above: 0, below: 12 }).map((s) => s.text).join('');
    expect(keys).toBe('↑↓ scroll (12 more)  r retry step 5  Enter labs  n next lab  q quit');
    expect(keysRow({ ...failed, width: 140 }, { above: 0, below: 12 }).map((s) => s.text).join('')).toBe(
      '↑↓ scroll (12 more below)  r retry step 5 (fresh VMs, steps 1–4 replayed)  Enter labs  n next lab  q quit',
    );
    // Without a height (tests, a tall terminal) everything is shown and no scroll is offered.
    expect(plain(frame(<Summary {...props} height={undefined} />))).not.toContain('↑↓ scroll');
  });
  it("summary shows a lab's comparison table (compare:) under the counters", () => {
    const table = 'strategy  result     total s\n--------  ---------  -------\npostcopy  completed      8.8';
    const out = frame(
      <Summary
        summary={{ ok: true, labId: 'x', durationMs: 1000, verified: true, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0 }}
        title="T"
        hasNext={false}
        comparison={table}
        width={80}
      />,
    );
    expect(out).toMatch(/postcopy\s+completed\s+8\.8/);
    expect(out.indexOf('all pages verified')).toBeLessThan(out.indexOf('postcopy  completed'));
  });
  it('summary explains a failure', () => {
    const out = frame(
      <Summary
        summary={{
          ok: false, labId: 'x', durationMs: 1000, verified: false, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0,
          failure: { step: 2, stepTitle: 'Recover', condition: "destination.status == 'completed'", seen: { status: 'failed' }, message: 'timed out' },
        }}
        title="T"
        hasNext={false}
        width={100}
      />,
    );
    expect(out).toContain('✗ Lab failed: T');
    expect(out).toContain('Step 2 (Recover): timed out');
    expect(out).toContain("condition: destination.status == 'completed'");
    expect(out).toContain('seen: {"status":"failed"}');
    expect(out).toMatch(/all pages verified\s+NO/);
    expect(out).not.toContain('next lab');
  });
  it('summary of a bug the lab declares for this QEMU version: reproduced, not "Lab failed"', () => {
    const out = frame(
      <Summary
        summary={{
          ok: false, labId: 'x', durationMs: 1000, verified: false, pagesResent: 0, duplicatesDiscarded: 0, blocktimeMs: 0, recoveries: 0,
          failure: { message: 'the destination VM process died (killed by SIGSEGV). This is the failure the lab expects on QEMU 7.2: it crashes.' },
          knownBug: 'QEMU 7.2: it crashes',
        }}
        title="T"
        hasNext={false}
        width={100}
      />,
    );
    expect(out).toContain('⚠ Bug reproduced: T');
    expect(out).not.toContain('Lab failed');
    expect(out.replace(/\s+/g, ' ')).toContain('This is the failure the lab expects on QEMU 7.2');
  });
  it('picker lists labs, ticks completed ones and asks before reset', () => {
    const labs = [
      { id: 'a', title: 'Alpha', summary: 'First lab.' },
      { id: 'b', title: 'Beta', summary: 'Second lab.' },
    ];
    const progress = { version: 1 as const, completed: { a: { completedAt: '', durationMs: 5000, bestMs: 4000, count: 2 } } };
    const out = frame(<LabPicker labs={labs} progress={progress} selected={1} confirm={{ scope: 'one', labId: 'b' }} width={80} height={20} />);
    expect(out).toContain('1/2 labs completed');
    expect(out).toMatch(/✓ Alpha\s+best 4.0 s/);
    expect(out).toMatch(/› {3}Beta/);
    expect(out).toContain('Second lab.');
    expect(out).toContain('Reset progress for Beta? y/n');
  });
});
