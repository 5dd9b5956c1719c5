/**
 * The outgoing side's migration: its connections, its state transitions and the return path.
 * Precopy: passes over dirty pages until the rest fits the downtime limit. Postcopy:
 * `migrate-start-postcopy` stops the guest here, sends the discard set and the vCPU state, and
 * from then on the source serves page requests (MIG_RP_MSG_REQ_PAGES) ahead of a background
 * push of whatever the destination still lacks. A failure during postcopy pauses, keeping
 * every bit of state, until `migrate resume=true` reconnects.
 *
 * The pages go out through the sender (page-sender.ts), what the migration knows lives in one
 * SourceMigration (source-migration.ts), and the QMP commands are in source-qmp.ts.
 */
import net from 'node:net';
import { hop, hopAt, task, taskStart } from './loop-stats.js';
import type { PagesInfo } from '../types.js';
import type { QmpCommandDef } from '../qmp/server.js';
import { Bitmap } from './bitmap.js';
import { Channel, socketErrorText } from './channel.js';
import { PageSender, type SenderHost } from './page-sender.js';
import { RequestThread, ThreadedPreempt } from './request-thread.js';
import { SourceMigration } from './source-migration.js';
import { stopThrottle, syncThrottle } from './throttle.js';
import { sourceCommands } from './source-qmp.js';
import { isFinished, isPaused, isPostcopy } from './states.js';
import { SimVm, type VmOptions } from './vm.js';
import { RecoverySpill } from '../recovery/spill.js';
import { encodeDiscard, encodeEmpty, encodeHeader, encodeJson, encodeResume, encodeVerifyAll, MIG_CMD, pageFrameBytes, ReturnPathDecoder, type ReturnMessage, type WireHeader } from './wire.js';

type Addr = { host: string; port: number };

export class SourceVm extends SimVm implements SenderHost {
  readonly side = 'source' as const;
  /** Pages written by the guest since the last dirty sync (KVM's dirty log). */
  readonly dirty: Bitmap;
  /** The current migration; a new `migrate` replaces it. */
  m: SourceMigration;
  /** The main channel: the stream out, the return path in. */
  private main: Channel | null = null;
  private sender: PageSender | null = null;
  /**
   * postcopy-preempt: a second connection that carries requested pages only, so they do not wait
   * behind the push; with x-preempt-thread its own thread owns it (request-thread.ts).
   */
  private preempt: Channel | ThreadedPreempt | null = null;
  private reqThread: RequestThread | null = null;
  private preemptReady = false;
  private addr: Addr | null = null;
  private lastDrainAt = 0;
  private rateTimer: NodeJS.Timeout | null = null;
  /** x-recovery-file: this migration's recovery file (src/recovery/spill.ts). */
  private spill: RecoverySpill | null = null;

  constructor(opts: VmOptions) {
    super(opts, 'running');
    this.dirty = new Bitmap(this.pageCount);
    this.m = new SourceMigration(this.pageCount, this.pageSize);
  }

  start(): void {
    this.startGuest();
    // Sample the throughput meters on a clock, not on queries, so rates mean the same thing
    // however often (or rarely) someone asks.
    this.rateTimer = setInterval(() => this.m.sampleRates(), 250);
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
    if (isPostcopy(this.status)) {
      return "Cannot continue the source during postcopy: the guest runs on the destination and its newest pages live there";
    }
    if (this.status === 'completed' && this.m.verdict) {
      return 'The guest now runs on the destination; running it here too would fork it (split brain)';
    }
    return null;
  }

  commands(): Record<string, QmpCommandDef> {
    return { ...this.baseCommands(), ...sourceCommands(this) };
  }

  queryMigrate(): Record<string, unknown> {
    if (this.status === 'none') return {};
    const out = this.m.queryMigrate(this.status, this.dirty, this.errorDesc);
    if (this.spill) out['x-recovery-file'] = this.spill.report();
    if (this.reqThread) out['x-preempt-thread'] = this.reqThread.info();
    return out;
  }

  queryPages(cells?: number): PagesInfo {
    return this.m.queryPages(this.status, this.dirty, this.guest.info(), cells);
  }

  protected override parametersChanged(): void {
    // A new bandwidth cap applies now, not after a pacing sleep computed from the old one.
    this.sender?.kick();
  }

  // ---- starting, resuming -------------------------------------------------------------

  /** `migrate`: a new migration to `addr`. */
  startMigration(addr: Addr): void {
    this.dirty.clearAll();
    this.m = new SourceMigration(this.pageCount, this.pageSize);
    this.errorDesc = undefined;
    this.spill?.abort();
    this.spill = this.cap('x-recovery-file') || this.cap('x-recovery-file-continuous')
      ? new RecoverySpill(this, this.cap('x-recovery-file-continuous') ? 'continuous' : 'on-failure', this.params['x-recovery-file-window'], this.opts.recoveryDir ?? '.', this.opts.name)
      : null;
    this.setStatus('setup');
    // A thread takes tens of ms to start (more under load): not at switchover, when the first
    // faults wait for its channel.
    if (this.cap('x-preempt-thread') && this.usePreempt()) this.requestThread();
    this.connect(addr, false);
  }

  /**
   * `migrate resume=true`: reconnect a paused postcopy migration. Since 9.1 the source shows
   * postcopy-recover-setup while it connects; before, it stays postcopy-paused until connected.
   */
  resume(addr: Addr): void {
    this.m.recoveryAttempts++;
    if (this.traits.recoverSetupState) this.setStatus('postcopy-recover-setup');
    this.connect(addr, true);
  }

  /** `migrate-start-postcopy`: the pump switches at its next turn. */
  requestPostcopy(): void {
    this.m.postcopyRequested = true;
    this.sender?.kick();
  }

  /** `migrate_cancel` during precopy. */
  cancel(): void {
    this.setStatus('cancelling');
    this.dropConnection();
    this.restartAfterAbort();
    this.setStatus('cancelled');
  }

  private usePreempt(): boolean {
    return this.cap('postcopy-preempt') && this.cap('postcopy-ram');
  }

  /** A recovery source serves a recovery file: its resume header says so (the destination counts those pages). */
  protected readonly servesFile: boolean = false;

  private header(resume: boolean, preemptChannel: boolean): Buffer {
    return encodeHeader(this.headerFields(resume, preemptChannel));
  }

  private headerFields(resume: boolean, preemptChannel: boolean): Omit<WireHeader, 'magic' | 'version'> {
    return { resume, preemptChannel, preemptEnabled: this.usePreempt(), fromFile: this.servesFile, pageSize: this.pageSize, pageCount: this.pageCount };
  }

  private connect(addr: Addr, resume: boolean): void {
    this.dropConnection();
    this.addr = addr;
    const ch: Channel = new Channel(net.connect({ host: addr.host, port: addr.port }), {
      connect: () => this.connected(ch, addr, resume),
      data: (chunk) => {
        const t0 = taskStart();
        try {
          decoder.push(chunk);
        } catch (e) {
          this.fail(`return path protocol error: ${(e as Error).message}`);
        }
        task('return-path', t0);
      },
      drain: () => {
        this.lastDrainAt = performance.now();
      },
      error: (e) => this.fail(e.code === 'ECONNREFUSED' ? `Failed to connect to ${addr.host}:${addr.port}: Connection refused` : socketErrorText(e)),
      close: () => this.fail('the migration connection was closed by the peer'),
    });
    const decoder = new ReturnPathDecoder(this.pageCount, ch.bind((msg) => this.onReturn(msg)));
    this.main = ch;
    this.sender = new PageSender(this, ch);
  }

  private connected(ch: Channel, addr: Addr, resume: boolean): void {
    this.log(`connected to ${addr.host}:${addr.port}${resume ? ' (resume)' : ''}`);
    this.lastDrainAt = performance.now();
    this.startSourceStallWatch(ch);
    if (resume) {
      this.setStatus('postcopy-recover');
      this.m.resumeMode = this.cap('x-recovery-walk') ? 'walk' : 'bitmap';
      this.write(this.header(true, false));
      // walk: the thread's steps e-g, push nothing unrequested and serve every request.
      this.write(this.m.resumeMode === 'walk' ? encodeResume('walk') : encodeEmpty(MIG_CMD.RECV_BITMAP));
      return;
    }
    this.m.setupTime = performance.now() - this.m.startedAt;
    this.write(this.header(false, false));
    if (this.cap('postcopy-ram')) this.write(encodeEmpty(MIG_CMD.POSTCOPY_ADVISE));
    // x-preempt-thread: its channel is connected now, not at switchover, so the first faults
    // find it up (until it is, requests go on the main channel to the busy main thread).
    if (this.threadedPreempt()) this.connectPreempt();
    // QEMU's first dirty sync is in its setup (every page dirty): pass 1 starts with active.
    this.syncDirtyLog();
    this.setStatus('active');
    this.m.passStart = performance.now();
    void this.sender?.run();
  }

  /**
   * Open the preempt channel (QEMU's postcopy-preempt): at switchover, or after the resume
   * handshake, so the destination has taken the main channel first.
   */
  private connectPreempt(): void {
    if (!this.usePreempt() || !this.addr || this.preempt) return;
    if (this.threadedPreempt()) return this.connectThreadedPreempt(this.addr);
    if (this.cap('x-preempt-thread')) this.log('x-preempt-thread: not with a recovery file or a recovery source; the preempt channel is served by the main thread');
    const ch: Channel = new Channel(net.connect({ host: this.addr.host, port: this.addr.port }), {
      connect: () => {
        ch.write(this.header(this.m.recovered || this.status === 'postcopy-recover', true));
        this.preemptReady = true;
        this.log('preempt channel up');
        // Anything requested while it was connecting goes out on it now.
        this.sender?.servePreempt(ch);
      },
      data: () => this.fail('unexpected data on the preempt channel'),
      error: (e) => this.preemptLost(ch, `preempt channel: ${socketErrorText(e)}`),
      close: () => this.preemptLost(ch, 'the preempt channel was closed by the peer'),
    });
    this.preempt = ch;
  }

  /** x-preempt-thread applies: not with a recovery file (spill) or a recovery source (encodePages), which need every page sent on the main thread. */
  private threadedPreempt(): boolean {
    return this.usePreempt() && this.cap('x-preempt-thread') && !this.spill && !(this as SenderHost).encodePages;
  }

  /** x-preempt-thread: the request thread connects the preempt channel and answers requests on it. */
  private connectThreadedPreempt(addr: Addr): void {
    const t = this.requestThread();
    const header = encodeHeader({ ...this.headerFields(this.m.recovered || this.status === 'postcopy-recover', true), requestsOnPreempt: true });
    const frameBytes = pageFrameBytes(this.pageSize);
    // Frozen already on a resume; during precopy they are handed over at switchover.
    const frozen = isPostcopy(this.status) ? this.versions : null;
    const ch: ThreadedPreempt = t.connect(addr, header, frozen, this.pageSize, this.pageCount, {
      up: () => this.log('preempt channel up (x-preempt-thread)'),
      served: (s) => {
        const m = this.m;
        m.postcopyRequests += s.requests;
        m.requestsServed += s.pages.length;
        m.noteSent(s.pages, frameBytes, true);
        m.transferred += s.bytes;
        for (const p of s.pages) {
          hopAt('read', p, s.read);
          hopAt('written', p, s.written);
        }
      },
      lost: (reason) => this.preemptLost(ch, reason),
    });
    this.preempt = ch;
  }

  private requestThread(): RequestThread {
    const t = (this.reqThread ??= new RequestThread((msg) => this.log(msg)));
    if (this.cap('x-preempt-thread-fifo')) void t.makeFifo();
    return t;
  }

  /**
   * The preempt channel closed or failed. The destination closes both channels when it
   * completes, right after it writes MIG_RP_MSG_SHUT on the main channel's return path; two
   * TCP connections keep no order between them, so the preempt channel's EOF may arrive before
   * the SHUT (it always does when only the main channel's return path is delayed). Once the
   * stream's EOF is sent, the verdict belongs to the main channel, as in QEMU, whose source
   * never reads the preempt channel and completes on the SHUT: drop the preempt channel (any
   * page still requested goes out on the main channel) and wait for the SHUT or for the main
   * channel's own failure. Before that, a lost preempt channel is a lost migration connection.
   */
  private preemptLost(ch: Channel | ThreadedPreempt, reason: string): void {
    if (!this.m.eofSent) return this.fail(reason);
    this.log(`${reason} after the stream's EOF: waiting for the destination's SHUT on the main channel`);
    ch.destroy();
    if (this.preempt === ch) {
      this.preempt = null;
      this.preemptReady = false;
    }
  }

  /** Write on the main channel, counting it. */
  private write(buf: Buffer): void {
    if (this.main?.write(buf)) this.m.transferred += buf.length;
  }

  // ---- the transitions the pump drives (SenderHost) -------------------------------------

  /** Precopy: a pass over the to-send set is done. Sync the dirty log and decide. */
  endOfPass(): void {
    const m = this.m;
    const now = performance.now();
    const passMs = Math.max(1, now - m.passStart);
    m.updateBandwidth(now);
    m.dirtyPagesRate = (this.dirty.count * 1000) / passMs;
    if (m.completingPrecopy) {
      // The guest is stopped and the last dirty pages are sent: finish the stream.
      this.sendEof();
      return;
    }
    syncThrottle(this, m.throttle, now, this.dirty.count, m.transferred);
    this.syncDirtyLog();
    m.takeDirty(this.dirty, 'replace');
    m.cursor = 0;
    m.passStart = now;
    const pending = m.toSend.count * pageFrameBytes(this.pageSize);
    const threshold = m.bandwidthEstimate * this.params['downtime-limit'];
    if (pending <= threshold && !m.postcopyRequested) {
      // Converged: stop the guest and send the rest (this is precopy's downtime).
      m.completingPrecopy = true;
      m.downtimeStart = now;
      this.stopGuest('finish-migrate');
      if (this.traits.deviceState) this.setStatus('device');
      this.syncDirtyLog();
      m.takeDirty(this.dirty, 'add');
    }
  }

  /**
   * A sync of the dirty log, counted as QEMU counts them (dirty-sync-count): one at setup, one
   * per precopy pass, one at switchover. With `events` on, each is a MIGRATION_PASS event,
   * as QEMU sends it (7.2 and 10.0 alike; the destination sends none).
   */
  private syncDirtyLog(): void {
    this.m.dirtySyncCount++;
    if (this.cap('events')) this.emit('MIGRATION_PASS', { pass: this.m.dirtySyncCount });
  }

  /**
   * migrate-start-postcopy takes effect: the guest moves to the destination now. The order of
   * the state change, STOP and MIGRATION_PASS is each version's: 7.2 announces postcopy-active
   * first and then stops the guest; 10.0 stops it, passes through `device` while the device
   * state goes out, and then announces postcopy-active.
   */
  switchToPostcopy(): void {
    const m = this.m;
    m.downtimeStart = performance.now();
    if (!this.traits.deviceState) this.setStatus('postcopy-active');
    this.stopGuest('finish-migrate');
    if (this.traits.deviceState) this.setStatus('device');
    // Everything not yet sent or written since it was sent must not be used by the destination.
    this.syncDirtyLog();
    m.takeDirty(this.dirty, 'add');
    for (const b of encodeDiscard(m.toSendRanges())) this.write(b);
    this.write(encodeJson(MIG_CMD.POSTCOPY_RUN, { vcpus: this.guest.exportState() }));
    m.cursor = 0;
    this.setStatus('postcopy-active');
    this.setRunState('postmigrate');
    if (this.preempt instanceof ThreadedPreempt) this.reqThread?.freeze(this.preempt, this.versions);
    this.connectPreempt();
    m.downtime = performance.now() - m.downtimeStart;
    this.spill?.switchover(m.toSend);
  }

  pagesSent(pages: readonly number[], frames: Buffer): void {
    // Called before the sender counts these frames: `transferred` is where the first starts.
    this.spill?.noteSent(pages, frames, this.m.transferred);
  }

  /** Before the resume: a reason not to go on (the recovery source's missing pages), or null. */
  protected resumeRefusal(): string | null {
    return null;
  }

  sendEof(): void {
    for (const b of encodeVerifyAll(this.versions)) this.write(b);
    this.write(encodeJson(MIG_CMD.EOF, { vcpus: this.guest.exportState() }));
    this.m.eofSent = true;
  }

  // ---- the return path -----------------------------------------------------------------

  private onReturn(msg: ReturnMessage): void {
    const m = this.m;
    switch (msg.type) {
      case 'req-pages':
        if (!isPostcopy(this.status) && !m.completingPrecopy) return this.fail(`page request for ${msg.start} outside postcopy`);
        m.postcopyRequests++;
        for (let i = 0; i < msg.count; i++) {
          m.reqQueue.push(msg.start + i);
          hop('read', msg.start + i);
        }
        if (this.preemptReady && this.preempt instanceof Channel) return this.sender?.servePreempt(this.preempt);
        return this.sender?.kick();
      case 'recv-bitmap': {
        if (this.status !== 'postcopy-recover' || m.resumeMode !== 'bitmap') return this.fail('unexpected received-bitmap');
        // QEMU's recovery: whatever the destination lacks is still to send, sent before or not.
        m.toSend.assignComplement(new Bitmap(this.pageCount, msg.bitmap));
        m.cursor = 0;
        const refusal = this.resumeRefusal();
        if (refusal) return this.fail(refusal);
        this.write(encodeResume('bitmap'));
        return;
      }
      case 'resume-ack':
        if (this.status !== 'postcopy-recover') return this.fail('unexpected resume-ack');
        m.walkMode = m.resumeMode === 'walk';
        if (m.walkMode) m.toSend.clearAll();
        m.recovered = true;
        m.recoveries++;
        m.eofSent = false;
        this.setStatus('postcopy-active');
        this.connectPreempt();
        void this.sender?.run();
        return;
      case 'x-all-received':
        if (!m.eofSent) {
          m.toSend.clearAll();
          this.sendEof();
        }
        return;
      case 'shut':
        m.verdict = msg.result;
        m.totalTime = performance.now() - m.startedAt;
        if (m.completingPrecopy) m.downtime = performance.now() - m.downtimeStart;
        if (msg.result.verified !== true) this.log(`destination reports verification failure: ${JSON.stringify(msg.result)}`);
        stopThrottle(this, m.throttle);
        this.setStatus('completed');
        this.setRunState('postmigrate');
        this.closeChannels((ch) => ch.end());
        return;
    }
  }

  // ---- failure -------------------------------------------------------------------------

  private startSourceStallWatch(ch: Channel): void {
    this.startStallWatch(
      () => ch.open,
      // Nothing drained for the limit while data waits to go: the link is silently dead.
      (limit) =>
        this.status === 'postcopy-active' && ch.writableLength > 0 && performance.now() - this.lastDrainAt > limit
          ? `no data could be sent for ${limit} ms`
          : null,
      (reason) => this.fail(reason),
    );
  }

  /** Close both channels as units (their handlers go quiet) and stop the pump. */
  private closeChannels(close: (ch: Channel | ThreadedPreempt) => void): void {
    this.stopStallWatch();
    if (this.main) close(this.main);
    if (this.preempt) close(this.preempt);
    this.main = null;
    this.preempt = null;
    this.preemptReady = false;
    this.sender?.kick();
    this.sender = null;
  }

  private dropConnection(): void {
    this.closeChannels((ch) => ch.destroy());
  }

  /** Precopy aborted: the source still owns the guest, so it runs on here. */
  private restartAfterAbort(): void {
    stopThrottle(this, this.m.throttle);
    this.m.completingPrecopy = false;
    this.m.postcopyRequested = false;
    if (this.runState !== 'running') this.startGuest();
  }

  /** An I/O error, a protocol error, a stall or migrate-pause. */
  fail(reason: string): void {
    const s = this.status;
    this.dropConnection();
    if (s === 'none' || isFinished(s) || isPaused(s)) return;
    this.log(`migration error in ${s}: ${reason}`);
    this.errorDesc = reason;
    if (s === 'postcopy-recover' && !this.traits.recoveryFailurePauses) {
      // Before 8.2: nothing takes the source out of postcopy-recover again (and migrate-pause
      // is refused there), so it waits for a bitmap that will never come.
      this.log('emulating QEMU before 8.2: the source stays in postcopy-recover');
      return;
    }
    if (isPostcopy(s)) {
      // Keep every bit of state: requests in flight are lost with the connection, and the
      // destination will ask again after the resume.
      this.m.reqQueue = [];
      this.m.eofSent = false;
      this.setStatus('postcopy-paused');
      this.spill?.paused(this.m.toSend, this.m.transferred);
      return;
    }
    this.m.totalTime = performance.now() - this.m.startedAt;
    this.setStatus(s === 'cancelling' ? 'cancelled' : 'failed');
    this.restartAfterAbort();
  }

  shutdown(): void {
    if (this.rateTimer) clearInterval(this.rateTimer);
    this.spill?.abort();
    this.guest.stop();
    this.dropConnection();
    this.reqThread?.terminate();
  }
}
