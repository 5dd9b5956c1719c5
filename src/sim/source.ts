/**
 * The outgoing side. Precopy: passes over dirty pages until the rest fits the downtime limit.
 * Postcopy: `migrate-start-postcopy` stops the guest here, sends the discard set and the vCPU
 * state, and from then on the source serves page requests (MIG_RP_MSG_REQ_PAGES) ahead of a
 * background push of whatever the destination still lacks. A failure during postcopy pauses,
 * keeping every bit of state, until `migrate resume=true` reconnects.
 */
import net from 'node:net';
import type { PagesInfo, RamStats } from '../types.js';
import { QmpError } from '../qmp/error.js';
import type { QmpCommandDef } from '../qmp/server.js';
import { Bitmap } from './bitmap.js';
import { writePage } from './content.js';
import { pageMap, RateMeter } from './stats.js';
import {
  encodeDiscard,
  encodeEmpty,
  encodeHeader,
  encodeJson,
  encodeResume,
  encodeVerifyAll,
  MIG_CMD,
  pageFrameBytes,
  ReturnPathDecoder,
  writePageFrameHeader,
  type ReturnMessage,
} from './wire.js';
import { migrationInProgress, parseTcpUri, SimVm, type VmOptions } from './vm.js';

/** Pages per write: big enough for throughput, small enough that a request is not stuck behind much. */
const PRECOPY_BATCH = 64;
const POSTCOPY_BATCH = 16;
/** Keep writing until this much waits in user space, then wait for the kernel to take it. */
const WRITE_HIGH_WATER = 512 * 1024;
/** Give the event loop a turn (return-path reads) after this many bytes written. */
const YIELD_BYTES = 256 * 1024;

export class SourceVm extends SimVm {
  readonly side = 'source' as const;
  /** Pages written by the guest since the last dirty sync. */
  private readonly dirty: Bitmap;
  /** Pages still to send in this pass (precopy) or at all (postcopy). */
  private readonly toSend: Bitmap;
  /** Pages sent at least once. */
  private readonly sentOnce: Bitmap;
  private cursor = 0;
  private sock: net.Socket | null = null;
  /** postcopy-preempt: a second connection that carries requested pages only, so they do not wait behind the push. */
  private preempt: net.Socket | null = null;
  private preemptReady = false;
  private addr: { host: string; port: number } | null = null;
  /** Bumped on every new connection or failure: loops of an old connection see it and stop. */
  private epoch = 0;
  private reqQueue: number[] = [];
  private wakeUp: (() => void) | null = null;
  private postcopyRequested = false;
  private completingPrecopy = false;
  private eofSent = false;
  private resumeMode: 'bitmap' | 'walk' = 'bitmap';
  private walkMode = false;
  private recovered = false;
  private recoveries = 0;
  private recoveryAttempts = 0;
  private resent = 0;
  private lastDrainAt = 0;

  // query-migrate counters
  private startedAt = 0;
  private setupTime = 0;
  private totalTime = 0;
  private downtimeStart = 0;
  private downtime = 0;
  private transferred = 0;
  private precopyBytes = 0;
  private postcopyBytes = 0;
  private normalPages = 0;
  private postcopyRequests = 0;
  private dirtySyncCount = 0;
  private passBytes = 0;
  private passStart = 0;
  private bandwidthEstimate = 0; // bytes per ms
  private dirtyPagesRate = 0;
  private readonly ppsMeter = new RateMeter();
  private readonly bpsMeter = new RateMeter();
  private lastPps = 0;
  private lastMbps = 0;
  private verdict: Record<string, unknown> | null = null;
  /** Send-time of requested pages, for x-query-pages: requests served. */
  private requestsServed = 0;

  constructor(opts: VmOptions) {
    super(opts, 'running');
    this.dirty = new Bitmap(this.pageCount);
    this.toSend = new Bitmap(this.pageCount);
    this.sentOnce = new Bitmap(this.pageCount);
  }

  private rateTimer: NodeJS.Timeout | null = null;

  start(): void {
    this.startGuest();
    // Sample the throughput meters on a clock, not on queries, so rates mean the same thing
    // however often (or rarely) someone asks.
    this.rateTimer = setInterval(() => this.sampleRates(), 250);
    this.rateTimer.unref?.();
  }

  access(_vcpu: number, page: number, write: boolean): 'ok' {
    if (write) {
      this.versions[page] = (this.versions[page] + 1) >>> 0;
      this.dirty.set(page);
    }
    return 'ok';
  }

  protected contRefusal(): string | null {
    if (this.status.startsWith('postcopy-') || (this.status === 'completed' && this.verdict)) {
      return this.status === 'completed'
        ? 'The guest now runs on the destination; running it here too would fork it (split brain)'
        : "Cannot continue the source during postcopy: the guest runs on the destination and its newest pages live there";
    }
    return null;
  }

  commands(): Record<string, QmpCommandDef> {
    return {
      ...this.baseCommands(),
      'query-migrate': { handler: () => this.queryMigrate() },
      'x-query-pages': { args: { 'map-cells': 'int?' }, handler: (a) => this.queryPages(a['map-cells'] as number | undefined) },
      migrate: {
        args: { uri: 'str', resume: 'bool?', detach: 'bool?', blk: 'bool?', inc: 'bool?' },
        handler: (a) => this.qmpMigrate(a.uri as string, a.resume === true),
      },
      'migrate-start-postcopy': {
        handler: () => {
          if (!this.cap('postcopy-ram')) {
            throw new QmpError('GenericError', 'Enable postcopy with migrate_set_capability before the start of migration');
          }
          if (this.status !== 'active' && this.status !== 'setup') {
            throw new QmpError('GenericError', 'Postcopy must be started after migration has been started');
          }
          this.postcopyRequested = true;
          this.kick();
          return {};
        },
      },
      'migrate-pause': {
        allowOob: true,
        handler: () => {
          // Also while the new channel is still connecting (a SYN into a blackhole): QEMU 7.2 has
          // no postcopy-recover-setup state and could not get out of a stuck connect at all.
          if (this.status !== 'postcopy-active' && this.status !== 'postcopy-recover' && this.status !== 'postcopy-recover-setup') {
            throw new QmpError('GenericError', 'migrate-pause is currently only supported during postcopy-active or postcopy-recover state');
          }
          this.fail('migrate-pause: channel shut down by the operator');
          return {};
        },
      },
      // The incoming-side commands, answered as QEMU answers them on a VM started without -incoming.
      'migrate-incoming': {
        args: { uri: 'str' },
        handler: () => {
          throw new QmpError('GenericError', "'-incoming' was not specified on the command line");
        },
      },
      'migrate-recover': {
        args: { uri: 'str' },
        allowOob: true,
        handler: () => {
          throw new QmpError('GenericError', 'Migrate recover can only be run when postcopy is paused.');
        },
      },
      migrate_cancel: {
        handler: () => {
          if (this.status.startsWith('postcopy-')) {
            throw new QmpError(
              'GenericError',
              'Postcopy migration cannot be cancelled: the guest already runs on the destination (use migrate-pause, then recover)',
            );
          }
          if (this.status === 'setup' || this.status === 'active') {
            this.setStatus('cancelling');
            this.dropConnection();
            this.restartAfterAbort();
            this.setStatus('cancelled');
          }
          return {};
        },
      },
    };
  }

  private queryMigrate(): Record<string, unknown> {
    if (this.status === 'none') return {};
    const now = performance.now();
    const total = this.status === 'completed' || this.status === 'failed' || this.status === 'cancelled' ? this.totalTime : now - this.startedAt;
    const ram: RamStats = {
      total: this.pageCount * this.pageSize,
      transferred: this.transferred,
      remaining: this.remainingPages() * this.pageSize,
      duplicate: 0,
      normal: this.normalPages,
      'normal-bytes': this.normalPages * this.pageSize,
      'page-size': this.pageSize,
      'pages-per-second': Math.round(this.lastPps),
      mbps: Math.round(this.lastMbps * 100) / 100,
      'dirty-pages-rate': Math.round(this.dirtyPagesRate),
      'dirty-sync-count': this.dirtySyncCount,
      'precopy-bytes': this.precopyBytes,
      'postcopy-bytes': this.postcopyBytes,
      'postcopy-requests': this.postcopyRequests,
    };
    const out: Record<string, unknown> = {
      status: this.status,
      'total-time': Math.round(total),
      'setup-time': Math.round(this.setupTime),
      ram,
    };
    if (this.downtime) out.downtime = Math.round(this.downtime);
    else if (this.status === 'active') out['expected-downtime'] = Math.round(this.bandwidthEstimate ? (this.remainingPages() * this.pageSize) / this.bandwidthEstimate : 0);
    if (this.errorDesc && (this.status === 'failed' || this.status === 'postcopy-paused')) out['error-desc'] = this.errorDesc;
    if (this.verdict) out['x-verified'] = this.verdict.verified === true;
    return out;
  }

  private remainingPages(): number {
    if (this.status === 'active' || this.status === 'setup') {
      // Precopy: what this pass still has plus what has been dirtied since the last sync (an
      // upper bound: a page may be in both; QEMU's figure is an estimate too).
      return Math.min(this.toSend.count + this.dirty.count, this.pageCount);
    }
    if (this.status === 'completed') return 0;
    return this.toSend.count;
  }

  private sampleRates(): void {
    const now = performance.now();
    this.lastPps = this.ppsMeter.sample(this.normalPages, now);
    this.lastMbps = (this.bpsMeter.sample(this.transferred, now) * 8) / 1e6;
  }

  private queryPages(cells?: number): PagesInfo {
    const info: PagesInfo = {
      'page-size': this.pageSize,
      total: this.pageCount,
      received: this.sentOnce.count,
      requested: this.reqQueue.length,
      'in-flight': 0,
      missing: this.remainingPages(),
      'duplicates-discarded': 0,
      resent: this.resent,
      'blocked-vcpus': 0,
      'fault-latency-us': { p50: 0, p99: 0, count: this.requestsServed },
      'blocktime-ms': 0,
      walker: { active: false, position: 0, total: this.pageCount, done: false },
      guest: { progress: this.guest.progress, 'ops-per-second': Math.round(this.guest.opsPerSecond()) },
      recoveries: this.recoveries,
      'recovery-attempts': this.recoveryAttempts,
      verified: this.verdict ? this.verdict.verified === true : null,
    };
    if (cells && cells > 0) {
      // The source's view: which pages have been sent at least once.
      info.map = pageMap(cells, this.pageCount, this.sentOnce, this.reqQueue);
    }
    return info;
  }

  // ---- starting, resuming -------------------------------------------------------------

  private qmpMigrate(uri: string, resume: boolean): Record<string, never> {
    const addr = parseTcpUri(uri);
    if (resume) {
      if (this.status !== 'postcopy-paused') throw new QmpError('GenericError', 'Cannot resume if there is no paused migration');
      this.recoveryAttempts++;
      this.setStatus('postcopy-recover-setup');
      this.connect(addr, true);
      return {};
    }
    if (migrationInProgress(this.status)) throw new QmpError('GenericError', "There's a migration process in progress");
    if (this.runState !== 'running' && this.runState !== 'paused') {
      throw new QmpError('GenericError', `Cannot migrate a guest in state '${this.runState}'`);
    }
    this.resetForNewMigration();
    this.setStatus('setup');
    this.connect(addr, false);
    return {};
  }

  private resetForNewMigration(): void {
    this.dirty.clearAll();
    this.toSend.setAll();
    this.sentOnce.clearAll();
    this.cursor = 0;
    this.reqQueue = [];
    this.postcopyRequested = false;
    this.completingPrecopy = false;
    this.eofSent = false;
    this.walkMode = false;
    this.recovered = false;
    this.recoveries = 0;
    this.recoveryAttempts = 0;
    this.resent = 0;
    this.errorDesc = undefined;
    this.verdict = null;
    this.startedAt = performance.now();
    this.setupTime = 0;
    this.totalTime = 0;
    this.downtime = 0;
    this.transferred = 0;
    this.precopyBytes = 0;
    this.postcopyBytes = 0;
    this.normalPages = 0;
    this.postcopyRequests = 0;
    this.dirtySyncCount = 0;
    this.requestsServed = 0;
    this.ppsMeter.reset();
    this.bpsMeter.reset();
  }

  private usePreempt(): boolean {
    return this.cap('postcopy-preempt') && this.cap('postcopy-ram');
  }

  /**
   * Open the preempt channel (QEMU's postcopy-preempt): at switchover, or after the resume
   * handshake, so the destination has taken the main channel first.
   */
  private connectPreempt(epoch: number): void {
    if (!this.usePreempt() || !this.addr || this.preempt) return;
    const sock = net.connect({ host: this.addr.host, port: this.addr.port });
    this.preempt = sock;
    sock.setNoDelay(true);
    sock.on('connect', () => {
      if (epoch !== this.epoch) return;
      sock.write(encodeHeader({ resume: this.recovered || this.status === 'postcopy-recover', preemptChannel: true, preemptEnabled: true, pageSize: this.pageSize, pageCount: this.pageCount }));
      this.preemptReady = true;
      this.log('preempt channel up');
      // Anything requested while it was connecting goes out on it now.
      this.servePreempt();
    });
    sock.on('data', () => this.fail('unexpected data on the preempt channel'));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (epoch !== this.epoch) return;
      this.fail(`preempt channel: ${`${e.code ?? ''} ${e.message}`.trim()}`);
    });
    sock.on('close', () => {
      if (epoch !== this.epoch) return;
      this.fail('the preempt channel was closed by the peer');
    });
  }

  /** Send every queued request on the preempt channel at once. */
  private servePreempt(): void {
    const p = this.preempt;
    if (!p || !this.preemptReady || p.destroyed || this.reqQueue.length === 0) return;
    while (this.reqQueue.length) {
      const pages = this.reqQueue.splice(0, POSTCOPY_BATCH);
      this.requestsServed += pages.length;
      const buf = this.encodePages(pages);
      this.transferred += buf.length;
      p.write(buf);
    }
  }

  private connect(addr: { host: string; port: number }, resume: boolean): void {
    const epoch = ++this.epoch;
    this.addr = addr;
    const sock = net.connect({ host: addr.host, port: addr.port });
    this.sock = sock;
    sock.setNoDelay(true);
    const decoder = new ReturnPathDecoder(this.pageCount, (m) => this.onReturn(m, epoch));
    sock.on('connect', () => {
      if (epoch !== this.epoch) return;
      this.log(`connected to ${addr.host}:${addr.port}${resume ? ' (resume)' : ''}`);
      this.lastDrainAt = performance.now();
      this.startSourceStallWatch(epoch);
      if (resume) {
        this.setStatus('postcopy-recover');
        this.resumeMode = this.cap('x-recovery-walk') ? 'walk' : 'bitmap';
        this.write(encodeHeader({ resume: true, preemptChannel: false, preemptEnabled: this.usePreempt(), pageSize: this.pageSize, pageCount: this.pageCount }));
        if (this.resumeMode === 'walk') {
          // The thread's steps e-g: push nothing unrequested, serve every request.
          this.write(encodeResume('walk'));
        } else {
          this.write(encodeEmpty(MIG_CMD.RECV_BITMAP));
        }
      } else {
        this.setupTime = performance.now() - this.startedAt;
        this.write(encodeHeader({ resume: false, preemptChannel: false, preemptEnabled: this.usePreempt(), pageSize: this.pageSize, pageCount: this.pageCount }));
        if (this.cap('postcopy-ram')) this.write(encodeEmpty(MIG_CMD.POSTCOPY_ADVISE));
        this.setStatus('active');
        this.passStart = performance.now();
        this.passBytes = 0;
        void this.pump(epoch);
      }
    });
    sock.on('data', (chunk: Buffer) => {
      if (epoch !== this.epoch) return;
      try {
        decoder.push(chunk);
      } catch (e) {
        this.fail(`return path protocol error: ${(e as Error).message}`);
      }
    });
    sock.on('drain', () => {
      this.lastDrainAt = performance.now();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (epoch !== this.epoch) return;
      const what = e.code === 'ECONNREFUSED' ? `Failed to connect to ${addr.host}:${addr.port}: Connection refused` : `${e.code ?? ''} ${e.message}`.trim();
      this.fail(what);
    });
    sock.on('close', () => {
      if (epoch !== this.epoch) return;
      this.fail('the migration connection was closed by the peer');
    });
  }

  private write(buf: Buffer): boolean {
    const s = this.sock;
    if (!s || s.destroyed) return false;
    this.transferred += buf.length;
    return s.write(buf);
  }

  /** Wakes the pump if it is waiting for work. */
  private kick(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  private waitForWork(epoch: number): Promise<void> {
    return new Promise((resolve) => {
      if (epoch !== this.epoch) return resolve();
      this.wakeUp = resolve;
    });
  }

  private waitDrain(epoch: number): Promise<void> {
    const s = this.sock;
    return new Promise((resolve) => {
      if (!s || s.destroyed || epoch !== this.epoch || s.writableLength === 0) return resolve();
      const done = () => {
        s.off('drain', done);
        s.off('close', done);
        resolve();
      };
      s.on('drain', done);
      s.on('close', done);
    });
  }

  /**
   * The migration thread: requests first, then the background push, paced by the bandwidth
   * caps, one batch per write, waiting for the socket to drain between writes.
   */
  private async pump(epoch: number): Promise<void> {
    let tokens = 0;
    let lastRefill = performance.now();
    let sinceYield = 0;
    while (epoch === this.epoch && this.sock && !this.sock.destroyed) {
      if (this.status === 'active' && this.postcopyRequested && !this.completingPrecopy) {
        this.switchToPostcopy();
        continue;
      }
      const postcopy = this.status === 'postcopy-active';
      let batch = this.buildRequestBatch();
      let background = false;
      if (!batch && (this.status === 'active' || (postcopy && !this.walkMode))) {
        batch = this.buildBackgroundBatch(postcopy ? POSTCOPY_BATCH : PRECOPY_BATCH, postcopy);
        background = batch !== null;
      }
      if (!batch) {
        if (this.status === 'active' && !this.eofSent) {
          this.endOfPass();
          continue;
        }
        if (postcopy && !this.walkMode && this.toSend.count === 0 && !this.eofSent) this.sendEof();
        await this.waitForWork(epoch);
        continue;
      }
      this.write(batch);
      if (this.sock && this.sock.writableLength >= WRITE_HIGH_WATER) await this.waitDrain(epoch);
      else if ((sinceYield += batch.length) >= YIELD_BYTES) {
        // The kernel takes writes at once while its buffer has room (megabytes on loopback):
        // without a yield this loop would not look at the return path, and the page requests
        // waiting there, until that buffer is full.
        sinceYield = 0;
        await new Promise<void>((r) => setImmediate(r));
      }
      if (background) {
        const limit = postcopy ? this.params['max-postcopy-bandwidth'] : this.completingPrecopy ? 0 : this.params['max-bandwidth'];
        if (limit > 0) {
          const now = performance.now();
          tokens = Math.min(limit / 10, tokens + ((now - lastRefill) * limit) / 1000);
          lastRefill = now;
          tokens -= batch.length;
          if (tokens < 0) await this.sleepOrWake(epoch, (-tokens * 1000) / limit);
        }
      }
    }
  }

  /** Sleep for pacing, but wake at once for a page request. */
  private sleepOrWake(epoch: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        if (this.wakeUp === done) this.wakeUp = null;
        resolve();
      }, ms);
      const done = () => {
        clearTimeout(t);
        resolve();
      };
      if (epoch !== this.epoch) return done();
      this.wakeUp = done;
    });
  }

  private buildRequestBatch(): Buffer | null {
    if (this.reqQueue.length === 0) return null;
    const n = Math.min(this.reqQueue.length, POSTCOPY_BATCH);
    const pages = this.reqQueue.splice(0, n);
    this.requestsServed += n;
    return this.encodePages(pages);
  }

  private buildBackgroundBatch(max: number, postcopy: boolean): Buffer | null {
    if (this.toSend.count === 0) return null;
    const pages: number[] = [];
    while (pages.length < max) {
      let i = this.toSend.nextSet(this.cursor);
      if (i < 0) {
        if (postcopy) i = this.toSend.nextSet(0); // wrap: the push covers what is left anywhere
        if (i < 0) break;
      }
      pages.push(i);
      this.cursor = i + 1;
    }
    if (pages.length === 0) return null;
    return this.encodePages(pages);
  }

  private encodePages(pages: number[]): Buffer {
    const frameBytes = pageFrameBytes(this.pageSize);
    const buf = Buffer.allocUnsafe(frameBytes * pages.length);
    let o = 0;
    const postcopy = this.status.startsWith('postcopy-');
    for (const p of pages) {
      const v = this.versions[p];
      const at = writePageFrameHeader(buf, o, p, v, this.pageSize);
      writePage(buf, at, p, v, this.pageSize);
      o += frameBytes;
      // Sending a page settles it: it leaves the to-send set whether it was pushed or requested.
      this.toSend.clear(p);
      if (!this.sentOnce.set(p) && this.recovered) this.resent++;
      this.normalPages++;
      if (postcopy) this.postcopyBytes += frameBytes;
      else this.precopyBytes += frameBytes;
      this.passBytes += frameBytes;
    }
    return buf;
  }

  /** Precopy: a pass over the to-send set is done. Sync the dirty log and decide. */
  private endOfPass(): void {
    const now = performance.now();
    const passMs = Math.max(1, now - this.passStart);
    this.bandwidthEstimate = this.passBytes / passMs;
    this.dirtySyncCount++;
    this.dirtyPagesRate = (this.dirty.count * 1000) / passMs;
    if (this.completingPrecopy) {
      // The guest is stopped and the last dirty pages are sent: finish the stream.
      this.sendEof();
      return;
    }
    this.toSend.copyFrom(this.dirty);
    this.dirty.clearAll();
    this.cursor = 0;
    this.passStart = now;
    this.passBytes = 0;
    const pending = this.toSend.count * pageFrameBytes(this.pageSize);
    const threshold = this.bandwidthEstimate * this.params['downtime-limit'];
    if (pending <= threshold && !this.postcopyRequested) {
      // Converged: stop the guest and send the rest (this is precopy's downtime).
      this.completingPrecopy = true;
      this.downtimeStart = now;
      this.stopGuest('finish-migrate');
      this.toSend.or(this.dirty);
      this.dirty.clearAll();
    }
  }

  /** migrate-start-postcopy takes effect: the guest moves to the destination now. */
  private switchToPostcopy(): void {
    this.downtimeStart = performance.now();
    this.stopGuest('finish-migrate');
    // Everything not yet sent or written since it was sent must not be used by the destination.
    this.toSend.or(this.dirty);
    this.dirty.clearAll();
    const ranges: Array<[number, number]> = [];
    for (let i = this.toSend.nextSet(0); i >= 0; ) {
      const end = this.toSend.nextClear(i);
      const e = end < 0 ? this.pageCount : end;
      ranges.push([i, e - i]);
      i = e < this.pageCount ? this.toSend.nextSet(e) : -1;
    }
    for (const b of encodeDiscard(ranges)) this.write(b);
    this.write(encodeJson(MIG_CMD.POSTCOPY_RUN, { vcpus: this.guest.exportState() }));
    this.cursor = 0;
    this.setStatus('postcopy-active');
    this.setRunState('postmigrate');
    this.connectPreempt(this.epoch);
    this.downtime = performance.now() - this.downtimeStart;
  }

  private sendEof(): void {
    for (const b of encodeVerifyAll(this.versions)) this.write(b);
    this.write(encodeJson(MIG_CMD.EOF, { vcpus: this.guest.exportState() }));
    this.eofSent = true;
  }

  private onReturn(m: ReturnMessage, epoch: number): void {
    if (epoch !== this.epoch) return;
    switch (m.type) {
      case 'req-pages':
        if (!this.status.startsWith('postcopy-') && !this.completingPrecopy) {
          return this.fail(`page request for ${m.start} outside postcopy`);
        }
        this.postcopyRequests++;
        for (let i = 0; i < m.count; i++) this.reqQueue.push(m.start + i);
        if (this.preemptReady) return this.servePreempt();
        return this.kick();
      case 'recv-bitmap': {
        if (this.status !== 'postcopy-recover' || this.resumeMode !== 'bitmap') return this.fail('unexpected received-bitmap');
        const received = new Bitmap(this.pageCount, m.bitmap);
        // QEMU's recovery: whatever the destination lacks is still to send, sent before or not.
        this.toSend.assignComplement(received);
        this.cursor = 0;
        this.write(encodeResume('bitmap'));
        return;
      }
      case 'resume-ack':
        if (this.status !== 'postcopy-recover') return this.fail('unexpected resume-ack');
        this.walkMode = this.resumeMode === 'walk';
        if (this.walkMode) this.toSend.clearAll();
        this.recovered = true;
        this.recoveries++;
        this.eofSent = false;
        this.setStatus('postcopy-active');
        this.connectPreempt(epoch);
        void this.pump(epoch);
        return;
      case 'x-all-received':
        if (!this.eofSent) {
          this.toSend.clearAll();
          this.sendEof();
        }
        return;
      case 'shut':
        this.verdict = m.result;
        this.totalTime = performance.now() - this.startedAt;
        if (this.completingPrecopy) this.downtime = performance.now() - this.downtimeStart;
        if (m.result.verified !== true) this.log(`destination reports verification failure: ${JSON.stringify(m.result)}`);
        this.setStatus('completed');
        this.setRunState('postmigrate');
        this.stopStallWatch();
        this.epoch++;
        this.sock?.end();
        this.sock = null;
        this.preempt?.end();
        this.preempt = null;
        this.preemptReady = false;
        return;
    }
  }

  private startSourceStallWatch(epoch: number): void {
    this.startStallWatch(
      () => epoch === this.epoch && this.sock !== null,
      // Nothing drained for the limit while data waits to go: the link is silently dead.
      (limit) =>
        this.status === 'postcopy-active' && this.sock!.writableLength > 0 && performance.now() - this.lastDrainAt > limit
          ? `no data could be sent for ${limit} ms`
          : null,
      (reason) => this.fail(reason),
    );
  }


  private dropConnection(): void {
    this.epoch++;
    this.stopStallWatch();
    const s = this.sock;
    this.sock = null;
    if (s && !s.destroyed) s.destroy();
    const p = this.preempt;
    this.preempt = null;
    this.preemptReady = false;
    if (p && !p.destroyed) p.destroy();
    this.kick();
  }

  /** Precopy aborted: the source still owns the guest, so it runs on here. */
  private restartAfterAbort(): void {
    this.completingPrecopy = false;
    this.postcopyRequested = false;
    if (this.runState !== 'running') this.startGuest();
  }

  /** An I/O error, a protocol error, a stall or migrate-pause. */
  private fail(reason: string): void {
    const s = this.status;
    if (s === 'completed' || s === 'failed' || s === 'cancelled' || s === 'none' || s === 'postcopy-paused') {
      this.dropConnection();
      return;
    }
    this.log(`migration error in ${s}: ${reason}`);
    this.errorDesc = reason;
    this.dropConnection();
    if (s.startsWith('postcopy-')) {
      // Keep every bit of state: requests in flight are lost with the connection, and the
      // destination will ask again after the resume.
      this.reqQueue = [];
      this.eofSent = false;
      this.setStatus('postcopy-paused');
      return;
    }
    this.totalTime = performance.now() - this.startedAt;
    if (s === 'cancelling') {
      this.setStatus('cancelled');
    } else {
      this.setStatus('failed');
    }
    this.restartAfterAbort();
  }

  shutdown(): void {
    if (this.rateTimer) clearInterval(this.rateTimer);
    this.guest.stop();
    this.dropConnection();
  }
}
