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
import { recordBytes, type RecoveryFile } from './format.js';

/** How many missing pages an error names (the count is always given). */
const NAMED = 16;

export class RecoverySourceVm extends SourceVm {
  /** Pages sent from the file. */
  private served = 0;
  /** What the destination lacked at the last resume, and of those what the file did not hold. */
  private lacked: number | null = null;
  private missing: number[] = [];
  private missingCount = 0;

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
  }

  override start(): void {
    // No guest to run; only the throughput meters.
    const t = setInterval(() => this.m.sampleRates(), 250);
    t.unref?.();
  }

  encodePages(pages: readonly number[]): Buffer {
    const lacking = pages.filter((p) => !this.rf.held.get(p));
    if (lacking.length) {
      this.fail(`the destination asked for page${lacking.length > 1 ? 's' : ''} ${lacking.slice(0, NAMED).join(', ')}, which the recovery file ${this.rf.file} does not hold`);
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
    const lacks = this.m.toSend;
    this.lacked = lacks.count;
    this.missing = [];
    this.missingCount = 0;
    for (let i = lacks.nextSet(0); i >= 0; i = lacks.nextSet(i + 1)) {
      if (this.rf.held.get(i)) continue;
      this.missingCount++;
      if (this.missing.length < NAMED) this.missing.push(i);
    }
    if (this.missingCount === 0) return null;
    const n = this.missingCount;
    return (
      `recovery cannot be complete: the destination lacks ${n} page${n > 1 ? 's' : ''} the recovery file does not hold ` +
      `(${this.missing.join(', ')}${n > this.missing.length ? ', …' : ''}); ` +
      `at least ${n * pageFrameBytes(this.pageSize)} bytes sent before the failure never arrived, more than the file's window of ${this.rf.header.windowBytes} bytes kept`
    );
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
      ...(this.lacked === null
        ? {}
        : {
            'destination-lacked': this.lacked,
            // The smallest file that could have recovered this destination: exactly what it lacked.
            'minimum-bytes': this.lacked * recordBytes(h.pageSize),
            'missing-pages': this.missingCount,
            'missing-first': this.missing,
          }),
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
