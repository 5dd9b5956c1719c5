/**
 * How the destination tells pages from a recovery file: the recovery source's resume header
 * carries a flag (the live source's never does), and the page map shows a cell all present
 * with some page from the file as 'F'.
 */
import { describe, expect, it } from 'vitest';
import { Bitmap } from '../../../src/sim/bitmap.js';
import { pageMap } from '../../../src/sim/stats.js';
import { encodeHeader, MainStreamDecoder, type MainMessage } from '../../../src/sim/wire.js';

function decodeHeader(buf: Buffer) {
  const got: MainMessage[] = [];
  new MainStreamDecoder(4096, 64, (m) => got.push(m)).push(buf);
  return got[0]?.type === 'header' ? got[0].header : null;
}

describe('pages from a recovery file', () => {
  it('the resume header says whether a recovery source sends it', () => {
    const h = { resume: true, preemptChannel: false, preemptEnabled: true, pageSize: 4096, pageCount: 64 };
    expect(decodeHeader(encodeHeader({ ...h, fromFile: true }))).toMatchObject({ resume: true, preemptEnabled: true, fromFile: true });
    expect(decodeHeader(encodeHeader(h))).toMatchObject({ resume: true, preemptEnabled: true, fromFile: false });
  });

  it("the map: 'F' for a cell all present with a page from the file, 'R' without, 'r' when not all present", () => {
    const present = new Bitmap(16);
    for (let i = 0; i < 12; i++) present.set(i);
    const fromFile = new Bitmap(16);
    fromFile.set(5);
    fromFile.set(13);
    expect(pageMap(4, 16, present, [], fromFile)).toBe('RFR.');
    present.set(12);
    present.set(13);
    expect(pageMap(4, 16, present, [], fromFile)).toBe('RFRr');
    expect(pageMap(4, 16, present, [])).toBe('RRRr');
  });
});
