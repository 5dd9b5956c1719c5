/**
 * The panels re-render only when their slice of the snapshot changes (React.memo with a
 * comparison per panel). These tests fail if a comparison misses something the panel shows:
 * a changed slice must reach the screen.
 */
import chalk from 'chalk';
import { Text, Transform } from 'ink';
import { render } from 'ink-testing-library';
import { Panel } from '../../../src/ui/components/Panel.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RunSummary } from '../../../src/types.js';
import { LinkPanel, sameLinkPanelProps } from '../../../src/ui/components/LinkPanel.js';
import { paintRow, PageMap, resampleMap, samePageMapProps } from '../../../src/ui/components/PageMap.js';
import { cellText, sameSideCountersProps, SideCounters, sideCells } from '../../../src/ui/components/SideCounters.js';
import { LabScreen } from '../../../src/ui/screens/LabScreen.js';
import { FakeSession, fakeDirection, fakePages, fakeSide, fakeSnapshot } from '../../helpers/fake-session.js';
import { plain, settle, waitForText } from './helpers.js';

describe('PageMap: cells from a recovery file', () => {
  it('a run of R and F with an F is F; anything else keeps its rule', () => {
    expect(resampleMap('RRFR', 1)).toBe('F');
    expect(resampleMap('RRRR', 1)).toBe('R');
    expect(resampleMap('FFFF', 2)).toBe('FF');
    expect(resampleMap('RF.r', 2)).toBe('Fr');
    expect(resampleMap('FFq.', 1)).toBe('q');
    expect(resampleMap('F...', 1)).toBe('r');
    expect(resampleMap('RRRRFFFF....', 3)).toBe('RF.');
  });

  it('draws F cells in their own glyph and colour and lists "from file" in the legend only when there are any, in short words where the whole ones do not fit', () => {
    const level = chalk.level;
    chalk.level = 1;
    try {
      const row = paintRow('RRFF');
      expect(row).toContain(chalk.cyan('▓▓'));
      expect(row).toContain(chalk.green('██'));
    } finally {
      chalk.level = level;
    }
    const withF = render(<PageMap pages={fakePages({ map: 'RRFF....' })} width={70} height={3} />);
    expect(plain(withF.lastFrame())).toContain('█received ▓from file ▒partial ▚requested ·missing');
    withF.unmount();
    // The page map's width at 80 columns: the whole words were cut at "▚requeste…".
    const narrow = render(<PageMap pages={fakePages({ map: 'RRFF....' })} width={47} height={3} />);
    expect(plain(narrow.lastFrame())).toContain('Pages █recv ▓file ▒part ▚req ·miss');
    narrow.unmount();
    const narrowNoFile = render(<PageMap pages={fakePages({ map: 'RRRR....' })} width={47} height={3} />);
    expect(plain(narrowNoFile.lastFrame())).toContain('Pages █received ▒partial ▚requested ·missing');
    narrowNoFile.unmount();
    const without = render(<PageMap pages={fakePages({ map: 'RRRR....' })} width={70} height={3} />);
    expect(plain(without.lastFrame())).not.toContain('from file');
    without.unmount();
    // No F cell at this resolution, but the counters say some pages came from the file.
    const counted = render(<PageMap pages={fakePages({ map: 'RRRR....', 'from-file': 3 })} width={70} height={3} />);
    expect(plain(counted.lastFrame())).toContain('from file');
    counted.unmount();
  });

  it('the grid painted as Ink writes it (a Transform of cell letters) is the frame of the glyphs written as text', () => {
    const level = chalk.level;
    chalk.level = 3;
    try {
      const map = 'RRRRFFq..r'.repeat(40) + 'x'; // 'x': not a cell kind, drawn as missing
      for (const [width, height] of [[30, 5], [70, 8], [7, 3]]) {
        const cells = resampleMap(map, width * (height - 1));
        const rows = [];
        for (let i = 0; i < cells.length; i += width) rows.push(paintRow(cells.slice(i, i + width)));
        const asText = render(
          <Panel title="Pages" extra={<Text wrap="truncate">{'legend'}</Text>} width={width} height={height}>
            <Text>{rows.join('\n')}</Text>
          </Panel>,
        );
        const painted = render(
          <Panel title="Pages" extra={<Text wrap="truncate">{'legend'}</Text>} width={width} height={height}>
            <Transform transform={paintRow}>{cells.match(new RegExp(`.{1,${width}}`, 'g'))!.join('\n')}</Transform>
          </Panel>,
        );
        expect(painted.lastFrame()).toBe(asText.lastFrame());
        expect(plain(painted.lastFrame())).toContain('▚');
        asText.unmount();
        painted.unmount();
        // And the panel itself paints what a frame of glyph text would show.
        const panel = render(<PageMap pages={fakePages({ map })} width={width} height={height} />);
        const lines = plain(panel.lastFrame()).replace(/\n+$/, '').split('\n').slice(1);
        expect(lines.join('\n')).toBe(plain(rows.join('\n')));
        panel.unmount();
      }
    } finally {
      chalk.level = level;
    }
  });

  it("a side that never took part is not yet there; one that went says so, with what it was", () => {
    // libvirt's destination before virsh migrate creates its domain.
    expect(sideCells(fakeSide('destination', { alive: false, status: 'none' }))[0]).toMatchObject({ text: 'no VM yet' });
    // qemu-recovery-file's killed source.
    expect(sideCells(fakeSide('source', { alive: false, status: 'postcopy-paused' }))[0]).toMatchObject({ text: 'gone (was postcopy-paused)', color: 'red' });
    // libvirt shuts the source's domain off once it completed: just completed.
    expect(sideCells(fakeSide('source', { alive: false, status: 'completed' }))[0]).toMatchObject({ text: 'completed' });
  });

  it('the destination counts pages from the file beside the pages received, only when present', () => {
    const dst = sideCells(fakeSide('destination', { pages: fakePages({ 'from-file': 7 }) }));
    expect(dst[1].text).toBe('400 received · from file 7');
    expect(sideCells(fakeSide('destination'))[1].text).toBe('400 received');
    const r = render(<SideCounters source={fakeSide('source')} destination={fakeSide('destination', { pages: fakePages({ 'from-file': 7 }) })} width={80} />);
    expect(plain(r.lastFrame())).toMatch(/400 (received|recv) · (from )?file 7/);
    r.unmount();
    // At 80 columns (a 47-cell panel, 15 cells a value) both numbers stay whole.
    const big = { source: fakeSide('source'), destination: fakeSide('destination', { pages: fakePages({ received: 17319, 'from-file': 6969 }) }) };
    const narrow = render(<SideCounters {...big} width={47} />);
    expect(plain(narrow.lastFrame())).toContain('17319 (6969f)');
    expect(plain(narrow.lastFrame())).not.toContain('…');
    narrow.unmount();
  });

  it('a cell shows the longest of its forms that fits', () => {
    const c = { text: 'a long text', short: 'shorter', tiny: 'tiny' };
    expect(cellText(c, 20)).toBe('a long text');
    expect(cellText(c, 7)).toBe('shorter');
    expect(cellText(c, 5)).toBe('tiny');
    expect(cellText({ text: 'a long text', short: 'shorter' }, 5)).toBe('shorter');
  });
});

describe('memoized panels', () => {
  it('a new snapshot with the same values is equal; a changed value shown by the panel is not', () => {
    const pages = fakePages({ map: 'RR..' });
    expect(samePageMapProps({ pages, width: 40, height: 3 }, { pages: { ...pages }, width: 40, height: 3 })).toBe(true);
    expect(samePageMapProps({ pages, width: 40, height: 3 }, { pages: { ...pages, map: 'RRR.' }, width: 40, height: 3 })).toBe(false);
    expect(samePageMapProps({ pages, width: 40, height: 3 }, { pages: { ...pages, 'from-file': 1 }, width: 40, height: 3 })).toBe(false);
    expect(samePageMapProps({ pages, width: 40, height: 3 }, { pages, width: 41, height: 3 })).toBe(false);

    const src = fakeSide('source');
    const dst = fakeSide('destination');
    const same = { source: { ...src }, destination: { ...dst, pages: { ...dst.pages! } }, width: 80 };
    expect(sameSideCountersProps({ source: src, destination: dst, width: 80 }, same)).toBe(true);
    const moved = { ...same, destination: { ...dst, pages: { ...dst.pages!, requested: 9 } } };
    expect(sameSideCountersProps({ source: src, destination: dst, width: 80 }, moved)).toBe(false);

    const link = fakeSnapshot().link;
    expect(sameLinkPanelProps({ link, width: 70 }, { link: { ...link }, width: 70 })).toBe(true);
    const more = { ...link, 'source-to-destination': fakeDirection({ bytesForwarded: 5 * 1024 * 1024 * 1024 }) };
    expect(sameLinkPanelProps({ link, width: 70 }, { link: more, width: 70 })).toBe(false);
  });

  it('each panel shows its changed slice on a re-render (never a stale frame)', () => {
    const pm = render(<PageMap pages={fakePages({ map: '....' })} width={10} height={2} />);
    pm.rerender(<PageMap pages={fakePages({ map: 'RRRR' })} width={10} height={2} />);
    expect(plain(pm.lastFrame()).split('\n')[1]).toBe('████');
    pm.unmount();

    const sc = render(<SideCounters source={fakeSide('source')} destination={fakeSide('destination')} width={80} />);
    sc.rerender(<SideCounters source={fakeSide('source')} destination={fakeSide('destination', { pages: fakePages({ requested: 42 }) })} width={80} />);
    expect(plain(sc.lastFrame())).toContain('42 / 7');
    sc.unmount();

    const lp = render(<LinkPanel link={fakeSnapshot().link} width={70} />);
    const cut = { ...fakeSnapshot().link, 'destination-to-source': fakeDirection({ state: 'cut' }) };
    lp.rerender(<LinkPanel link={cut} width={70} />);
    expect(plain(lp.lastFrame())).toMatch(/dst→src cut/);
    lp.unmount();
  });
});

describe('LabScreen with memoized panels', () => {
  let unmount: (() => void) | null = null;
  afterEach(() => {
    unmount?.();
    unmount = null;
  });

  it('every panel follows the session: counters, link, page map, steps, hints and the event log', async () => {
    const session = new FakeSession();
    const r = render(
      <LabScreen session={session} columns={120} rows={36} onQuit={vi.fn()} onFinished={vi.fn<(s: RunSummary) => void>()} sampleIntervalMs={20} />,
    );
    unmount = r.unmount;
    await waitForText(r.lastFrame, 'Steps 2/3');
    await settle();
    const dst = fakeSide('destination');
    session.setSnapshot({ destination: { ...dst, pages: { ...dst.pages!, received: 777, 'from-file': 12, map: 'F'.repeat(40) } } });
    await waitForText(r.lastFrame, '777 received · from file 12');
    await waitForText(r.lastFrame, '▓from file');
    session.setSnapshot({ link: { ...fakeSnapshot().link, 'source-to-destination': fakeDirection({ state: 'blackhole' }) } });
    await waitForText(r.lastFrame, /src→dst blackhole/);
    // Only the steps change: the counters keep their values, the steps panel shows the hint.
    const state = session.getState();
    const steps = state.steps.map((s, i) => (i === 1 ? { ...s, hintsShown: 2 } : s));
    session.set({ steps });
    await waitForText(r.lastFrame, 'Hint 2/2');
    expect(plain(r.lastFrame())).toContain('777 received · from file 12');
    session.pushEvent({ kind: 'fault', text: 'a fresh event line' });
    await waitForText(r.lastFrame, 'a fresh event line');
  });
});
