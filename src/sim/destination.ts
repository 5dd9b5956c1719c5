/**
 * The incoming side's migration: its listener and channels, its state transitions and the main
 * stream's messages (its QMP commands are in destination-qmp.ts). During postcopy a guest thread
 * that touches a missing page blocks (only that thread; its vCPU runs another if it has one,
 * src/sim/workload.ts) and the page is requested over the return path.
 *
 * What the migration knows (pages placed, who waits, the walker, verification) lives in one
 * IncomingMigration (incoming-migration.ts); what an accepted connection is (main, preempt, or
 * not yet known) is an IncomingConnection (incoming-channel.ts).
 */
import net from 'node:net';
import type { MigrationStatus, PagesInfo } from '../types.js';
import { QmpError } from '../qmp/error.js';
import type { QmpCommandDef } from '../qmp/server.js';
import { destinationCommands } from './destination-qmp.js';
import { IncomingConnection, type IncomingOwner } from './incoming-channel.js';
import { IncomingMigration, type IncomingHost, type Waiting } from './incoming-migration.js';
import { isPaused, isPostcopy } from './states.js';
import { SimVm, type VmOptions } from './vm.js';
import { hop } from './loop-stats.js';
import type { VcpuStalls } from './workload.js';
import { encodeEmpty, encodeJson, encodeRecvBitmap, encodeReqPages, MIG_RP_MSG, type MainMessage, type WireHeader } from './wire.js';

export class DestinationVm extends SimVm implements IncomingOwner, IncomingHost {
  readonly side = 'destination' as const;
  /** The current incoming migration; a fresh migrate-incoming after a failure replaces it. */
  m: IncomingMigration;
  private main: IncomingConnection | null = null;
  private preempt: IncomingConnection | null = null;
  /** x-preempt-thread (the source's): page requests go on the preempt channel, read there by the source's request thread. */
  private requestsOnPreempt = false;
  /**
   * A preempt channel whose header came before the main channel's: the source's request thread
   * (x-preempt-thread) connects it right behind the main channel, and nothing orders two TCP
   * connections. It is adopted with the main channel.
   */
  private earlyPreempt: { conn: IncomingConnection; header: WireHeader } | null = null;
  /** The main channel announced a preempt channel that has not arrived yet. */
  private preemptExpected = false;
  private listener: net.Server | null = null;
  private incomingListened = false;
  private lastDataAt = 0;

  constructor(opts: VmOptions) {
    super(opts, 'inmigrate');
    this.m = new IncomingMigration(this.pageCount, this.pageSize, this);
  }

  protected contRefusal(): string | null {
    if (this.status === 'none' || this.status === 'setup' || this.status === 'active') {
      return 'Guest is waiting for an incoming migration';
    }
    return null;
  }

  // ---- the guest's memory accesses (and the IncomingHost they need) ------------------------

  access(vcpu: number, page: number, write: boolean): 'ok' | 'blocked' {
    if (!this.m.present.get(page)) {
      this.m.need(page, { vcpu });
      return 'blocked';
    }
    if (write) this.versions[page] = (this.versions[page] + 1) >>> 0;
    return 'ok';
  }

  request(page: number, w: Waiting): void {
    if (this.status !== 'postcopy-active' || !this.main) return;
    w.sentAt = performance.now();
    // Stamped before the write: the write wakes the source's reader, which (x-preempt-thread-fifo)
    // may preempt this thread before the write returns.
    hop('sent', page);
    (this.requestsOnPreempt && this.preempt ? this.preempt : this.main).write(encodeReqPages(page, 1));
  }

  unblock(vcpu: number, page: number): void {
    this.guest.unblock(vcpu, page);
  }

  vcpuStalls(): VcpuStalls {
    return this.guest.stalls();
  }

  walkWindow(): number {
    return this.params['x-walk-window'];
  }

  walkRate(): number {
    return this.params['x-walk-rate'];
  }

  protected override parametersChanged(): void {
    // A walk held to a crawl goes on at once when the hold is released (x-walk-rate back to 0).
    this.m.advanceWalker();
  }

  // ---- QMP (the commands and their preconditions: destination-qmp.ts) -----------------------

  commands(): Record<string, QmpCommandDef> {
    return { ...this.baseCommands(), ...destinationCommands(this) };
  }

  queryMigrate(): Record<string, unknown> {
    const status = this.reportedStatus();
    if (status === 'none') return {};
    const out: Record<string, unknown> = { status };
    // As QEMU (7.2 and 10.0): only once the incoming postcopy completed, the time every vCPU
    // was blocked at once and each vCPU's own. The sum over vCPUs, under way, is x-query-pages'.
    if (this.cap('postcopy-blocktime') && this.m.postcopy && status === 'completed') {
      const stalls = this.vcpuStalls();
      out['postcopy-blocktime'] = Math.round(stalls.allMs);
      out['postcopy-vcpu-blocktime'] = stalls.perVcpuMs.map((ms) => Math.round(ms));
    }
    if (this.errorDesc && (this.status === 'failed' || isPaused(this.status))) out['error-desc'] = this.errorDesc;
    if (this.m.verified !== null) out['x-verified'] = this.m.verified;
    return out;
  }

  /** migrate-incoming has run (and this attempt has not failed since). */
  get incomingStarted(): boolean {
    return this.incomingListened && this.status !== 'failed';
  }

  /** migrate-incoming: listen, then wait in `setup` for the source. */
  async startIncoming(addr: { host: string; port: number }): Promise<void> {
    await this.listen(addr, false);
    // QEMU's destination exits after a failed incoming migration and you start a new
    // one; the sim lets the same process take a fresh attempt, with nothing kept.
    if (this.status === 'failed') this.resetIncoming();
    this.incomingListened = true;
    this.setStatus('setup');
  }

  /** migrate-recover: listen for the source's resume (instead of any earlier recovery listener). */
  startRecovery(addr: { host: string; port: number }): Promise<void> {
    this.closeListener();
    return this.listen(addr, true);
  }

  /**
   * The status query-migrate reports: 7.2 reports none while it listens and no source has
   * connected yet (its fill_destination_migration_info returns early without a channel).
   */
  reportedStatus(): MigrationStatus {
    if (this.status === 'setup' && !this.traits.incomingSetupReported && !this.main) return 'none';
    return this.status;
  }

  private resetIncoming(): void {
    this.m.stopWalker();
    this.m = new IncomingMigration(this.pageCount, this.pageSize, this);
    this.versions.fill(0);
    this.errorDesc = undefined;
  }

  queryPages(cells?: number): PagesInfo {
    return this.m.queryPages(this.guest.info(), cells);
  }

  // ---- the listener and the connections (IncomingOwner) ------------------------------------

  private listen(addr: { host: string; port: number }, recover: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      // Paused: the connection reads into its own buffer from its first byte (IncomingConnection).
      const server = net.createServer({ pauseOnConnect: true }, (sock) => new IncomingConnection(sock, this, recover));
      server.once('error', (e: NodeJS.ErrnoException) => {
        if (this.listener === server) this.listener = null;
        const why = e.code === 'EADDRINUSE' ? 'Address already in use' : e.code === 'EADDRNOTAVAIL' ? 'Cannot assign requested address' : e.message;
        reject(new QmpError('GenericError', `Failed to bind socket ${addr.host}:${addr.port}: ${why}${e.code === 'EADDRINUSE' ? ' (choose another port, e.g. one above 40000)' : ''}`));
      });
      server.listen({ host: addr.host, port: addr.port }, () => {
        this.listener = server;
        this.log(`listening on ${addr.host}:${addr.port}${recover ? ' (recover)' : ''}`);
        // 7.2 sends MIGRATION {setup} on every listen, events capability or not, and after
        // migrate-recover without entering setup (a fresh listen's transition sends its own
        // event when `events` is on).
        if (this.traits.incomingSetupEventAlways && (recover || !this.cap('events'))) this.emit('MIGRATION', { status: 'setup' });
        resolve();
      });
    });
  }

  /** As QEMU's: a listen serves one migration; close it once its channels are taken. */
  private closeListener(): void {
    this.listener?.close();
    this.listener = null;
  }

  /** The channels now connected are a recovery source's: pages placed come from a recovery file. */
  private servedFromFile = false;

  adoptMain(conn: IncomingConnection, header: WireHeader): void {
    if (header.resume !== conn.recover) {
      throw new Error(conn.recover ? 'a new migration arrived while recovering a paused one' : 'a resume arrived on a fresh incoming migration');
    }
    const early = this.earlyPreempt;
    this.earlyPreempt = null;
    this.closeChannels();
    this.main = conn;
    this.preemptExpected = header.preemptEnabled && this.cap('postcopy-preempt');
    if (early && this.preemptExpected && early.conn.channel.open) this.adoptPreempt(early.conn, early.header);
    else early?.conn.channel.destroy();
    if (!this.preemptExpected) this.closeListener();
    this.startDestinationStallWatch(conn);
    // A recovery source (src/recovery/) says so in its resume header: what it places is from its file.
    this.servedFromFile = conn.recover && header.fromFile === true;
    if (conn.recover) {
      this.m.recoveryAttempts++;
      this.setStatus('postcopy-recover');
    } else this.setStatus('active');
  }

  adoptPreempt(conn: IncomingConnection, header: WireHeader): void {
    if (!this.main && header.requestsOnPreempt && !this.earlyPreempt && header.resume === (this.status === 'postcopy-paused')) {
      this.earlyPreempt = { conn, header };
      return;
    }
    if (!this.main || this.preempt || !this.preemptExpected) throw new Error('a preempt channel arrived without a main channel expecting it');
    this.preempt = conn;
    this.requestsOnPreempt = header.requestsOnPreempt === true;
    this.closeListener();
    this.log('preempt channel up');
  }

  noteData(_conn: IncomingConnection, bytes: number): void {
    this.lastDataAt = performance.now();
    this.m.wireBytes += bytes;
  }

  hasPreempt(): boolean {
    return this.preempt !== null;
  }

  lost(conn: IncomingConnection, reason: string): void {
    if (conn.role === 'pending') {
      // A connection that never became a channel is in neither slot: close it here, or its
      // sender would push into a socket nobody reads.
      conn.channel.destroy();
      // On a recovery listener nothing is lost with it: report it and stay paused, listening.
      if (isPaused(this.status)) return this.reportRejected(reason);
    }
    this.fail(reason);
  }

  /** A connection refused while paused: nothing changes state, but the operator must hear of it. */
  private reportRejected(reason: string): void {
    this.log(`migration error in ${this.status}: ${reason} (still paused, still listening)`);
    this.errorDesc = reason;
    // No state change, so no MIGRATION event: ours says what happened instead.
    if (this.cap('events')) this.emit('X_MIGRATION_ERROR', { status: this.status, 'error-desc': reason });
  }

  // ---- the main stream ---------------------------------------------------------------------

  onMessage(conn: IncomingConnection, msg: MainMessage): void {
    const m = this.m;
    switch (msg.type) {
      case 'header':
        throw new Error('a second stream header');
      case 'postcopy-advise':
        if (!this.cap('postcopy-ram')) {
          throw new Error('the source wants postcopy but postcopy-ram is not enabled on the destination');
        }
        return;
      case 'page': {
        const had = m.present.get(msg.index);
        m.place(msg.index, msg.version, msg.buf, msg.offset);
        if (this.servedFromFile && !had) m.noteFromFile(msg.index);
        return this.checkAllReceived();
      }
      case 'postcopy-ram-discard':
        if (this.status !== 'active') throw new Error('discard outside precopy');
        return m.discard(msg.ranges);
      case 'postcopy-run':
        if (this.status !== 'active') throw new Error('postcopy-run outside precopy');
        m.postcopy = true;
        this.guest.importState(msg.device.vcpus);
        this.setStatus('postcopy-active');
        this.startGuest();
        return this.checkAllReceived();
      case 'recv-bitmap':
        if (this.status !== 'postcopy-recover') throw new Error('recv-bitmap outside recovery');
        conn.write(encodeRecvBitmap(m.present.bytes));
        return;
      case 'postcopy-resume':
        if (this.status !== 'postcopy-recover') throw new Error('resume outside recovery');
        m.walkMode = msg.mode === 'walk';
        m.recoveries++;
        m.gotEof = false;
        m.allReceivedSent = false;
        conn.write(encodeEmpty(MIG_RP_MSG.RESUME_ACK));
        this.setStatus('postcopy-active');
        // Requests that were in flight when the link failed are lost: ask again for every
        // page a vCPU (or the walker) still waits on. (QEMU fixed a hang here in 2020.)
        m.requestAgain();
        if (m.walkMode) m.startWalker();
        return this.checkAllReceived();
      case 'x-verify':
        return m.noteVerify(msg.start, msg.versions);
      case 'eof':
        m.gotEof = true;
        // Precopy completion: the source stopped its guest and sent the rest.
        if (!m.postcopy) this.guest.importState(msg.device.vcpus);
        return this.tryFinish();
    }
  }

  private checkAllReceived(): void {
    const m = this.m;
    if (!m.postcopy || !m.complete) return;
    m.advanceWalker();
    if (!m.allReceivedSent && this.status === 'postcopy-active' && this.main) {
      m.allReceivedSent = true;
      this.main.write(encodeEmpty(MIG_RP_MSG.X_ALL_RECEIVED));
    }
    this.tryFinish();
  }

  // ---- completion and failure ---------------------------------------------------------------

  private tryFinish(): void {
    const m = this.m;
    if (!m.gotEof || this.status === 'completed') return;
    if (!m.complete) {
      if (!m.postcopy) throw new Error(`the stream ended with ${this.pageCount - m.present.count} pages never sent`);
      // The stream ended but pages are missing (should not happen): ask for them before finishing.
      for (let i = m.present.nextClear(0); i >= 0; i = m.present.nextClear(i + 1)) m.need(i, {});
      return;
    }
    const verdict = m.verify();
    this.main?.write(encodeJson(MIG_RP_MSG.SHUT, verdict));
    this.log(`completed: ${verdict.verified ? 'every page verified' : `VERIFICATION FAILED (pages differ, the first ${verdict.mismatches[0]})`}`);
    this.closeChannels((c) => c.channel.end());
    this.closeListener();
    this.setStatus('completed');
    if (!m.postcopy) this.startGuest();
  }

  private startDestinationStallWatch(conn: IncomingConnection): void {
    this.startStallWatch(
      () => conn.channel.open,
      // A silent link: nothing from the source while pages are still missing.
      (limit) =>
        this.status === 'postcopy-active' && !this.m.complete && performance.now() - this.lastDataAt > limit ? `no data from the source for ${limit} ms` : null,
      (reason) => this.fail(reason),
    );
  }

  /** Close the main and preempt channels as units; their handlers go quiet. */
  private closeChannels(close: (c: IncomingConnection) => void = (c) => c.channel.destroy()): void {
    this.stopStallWatch();
    if (this.main) close(this.main);
    if (this.preempt) close(this.preempt);
    this.earlyPreempt?.conn.channel.destroy();
    this.main = null;
    this.preempt = null;
    this.earlyPreempt = null;
    this.requestsOnPreempt = false;
  }

  fail(reason: string): void {
    const s = this.status;
    this.closeChannels();
    // A listener still waiting for this channel's preempt companion is used up too.
    if (!isPaused(s)) this.closeListener();
    if (s === 'completed' || s === 'failed' || s === 'none' || isPaused(s)) return;
    this.log(`migration error in ${s}: ${reason}`);
    if (s === 'postcopy-recover' && !this.traits.recoveryFailurePauses) {
      // Before 8.2 the pause path only knows postcopy-active: QEMU retries reading the
      // channel it has just closed and dies.
      this.errorDesc = reason;
      this.onCrash('SIGSEGV', `the recovery channel failed in postcopy-recover (${reason})`);
      return;
    }
    if (isPostcopy(s)) {
      // Keep everything: placed pages, who waits for what. Requests already sent are lost
      // with the connection; they go out again after the resume.
      this.errorDesc = reason;
      this.m.requestsLost();
      this.setStatus('postcopy-paused');
      return;
    }
    // Precopy (still loading, in QEMU's words): the guest never ran here, so there is nothing
    // here to pause and the incoming migration fails. If the source had already switched to
    // postcopy, its guest is stopped there too: it can run on neither side.
    this.errorDesc = this.m.switchoverStarted
      ? `${reason} (failed before the guest ran here, after the source had switched to postcopy: the guest can be resumed on neither side)`
      : `${reason} (failed before the guest ran here)`;
    this.setStatus('failed');
  }

  shutdown(): void {
    this.guest.stop();
    this.closeChannels();
    this.closeListener();
  }
}
