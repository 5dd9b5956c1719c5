/**
 * A source VM whose guest is a recovery file (Gilbert's "something that loaded this recovery
 * file and pretended to be a source-vm"): it starts where the lost source stopped,
 * `postcopy-paused`, and resumes exactly as SourceVm does — the same wire protocol, the same
 * QMP, both strategies — except that its pages come from the file, checksums checked, and
 * before resuming with the bitmap strategy it refuses when the destination lacks a page the
 * file does not hold (resuming then could never complete).
 */
import type { QmpCommandDef } from '../qmp/server.js';
import { QmpError } from '../qmp/error.js';
import { SourceVm } from '../sim/source.js';
import { pageFrameBytes, writePageFrameHeader } from '../sim/wire.js';
import { assess, assessmentFields, refusalText, type Assessment, type FileView } from './assess.js';
import type { RecoveryFile } from './format.js';

export class RecoverySourceVm extends SourceVm {
  /** Its resume header tells the destination the pages come from a file. */
  protected override readonly servesFile = true;
  /** Pages sent from the file. */
  private served = 0;
  /** What the destination lacked (bitmap: at the resume; walk: the pages it asked that the file lacks). */
  private last: Assessment | null = null;
  private readonly view: FileView;

  constructor(readonly rf: RecoveryFile, name = 'recovery-source') {
    const { pageSize, pageCount } = rf.header;
    super({
      name,
      memoryBytes: pageSize * pageCount,
      pageSize,
      // No guest runs here: the file holds a frozen one.
      workload: { kind: 'sequential', vcpus: 1, readRate: 0, dirtyRate: 0, hotFraction: 0, hotShare: 0, seed: 1 },
    });
    this.versions.set(rf.versions);
    // Where the lost source was: paused in postcopy, its guest on the destination.
    this.status = 'postcopy-paused';
    this.runState = 'postmigrate';
    this.errorDesc = `recovery source: the original source is gone; pages come from ${rf.file}`;
    this.m.toSend.clearAll();
    this.m.toSend.or(rf.held);
    const h = rf.header;
    this.view = { pageSize, pageCount, held: rf.held, positions: rf.positions, streamBytes: h.streamBytes, windowBytes: h.windowBytes };
  }

  override start(): void {
    // No guest to run; only the throughput meters.
    const t = setInterval(() => this.m.sampleRates(), 250);
    t.unref?.();
  }

  encodePages(pages: readonly number[]): Buffer {
    const lacking = pages.filter((p) => !this.rf.held.get(p));
    if (lacking.length) {
      // Walk (or a vCPU's request): the destination lacks these, and the file cannot give them.
      this.last = assess(this.view, lacking);
      this.fail(refusalText(this.last, this.rf.file, this.rf.header.windowBytes, 'asked'));
      return Buffer.alloc(0);
    }
    const fb = pageFrameBytes(this.pageSize);
    const buf = Buffer.allocUnsafe(fb * pages.length);
    try {
      pages.forEach((p, k) => this.rf.readPage(p, buf, writePageFrameHeader(buf, k * fb, p, this.versions[p], this.pageSize)));
    } catch (e) {
      this.fail((e as Error).message);
      return Buffer.alloc(0);
    }
    this.served += pages.length;
    return buf;
  }

  protected override resumeRefusal(): string | null {
    // Bitmap strategy: the destination just said what it lacks (the complement of its bitmap).
    const lacks = this.m.toSend;
    const pages = function* () {
      for (let i = lacks.nextSet(0); i >= 0; i = lacks.nextSet(i + 1)) yield i;
    };
    this.last = assess(this.view, pages());
    return this.last.missing === 0 ? null : refusalText(this.last, this.rf.file, this.rf.header.windowBytes, 'lacks');
  }

  override queryMigrate(): Record<string, unknown> {
    const out = super.queryMigrate();
    const h = this.rf.header;
    out['x-recovery-source'] = {
      file: this.rf.file,
      mode: h.mode,
      'file-bytes': h.fileBytes,
      'held-pages': this.rf.held.count,
      'window-bytes': h.windowBytes,
      'served-pages': this.served,
      ...(this.last ? { ...assessmentFields(this.last), 'size-vs-minimum': Math.round((h.fileBytes / this.last.minimumBytes) * 100) / 100 } : {}),
    };
    return out;
  }

  override commands(): Record<string, QmpCommandDef> {
    const cmds = super.commands();
    const setCaps = cmds['migrate-set-capabilities'];
    const migrate = cmds.migrate;
    return {
      ...cmds,
      migrate: {
        ...migrate,
        handler: (a, ...rest) => {
          if (a.resume !== true) throw new QmpError('GenericError', 'A recovery source can only resume a paused postcopy migration: use migrate with resume=true');
          return migrate.handler(a, ...rest);
        },
      },
      // Its migration is the file's, not one in progress here: the strategy may still be chosen.
      'migrate-set-capabilities': {
        ...setCaps,
        handler: (a, ...rest) => {
          const status = this.status;
          if (status !== 'postcopy-paused') return setCaps.handler(a, ...rest);
          this.status = 'none';
          try {
            return setCaps.handler(a, ...rest);
          } finally {
            this.status = status;
          }
        },
      },
    };
  }
}
