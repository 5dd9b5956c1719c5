/**
 * The incoming side. It checks every page it receives against (index, version) and places it;
 * during postcopy a vCPU that touches a missing page blocks (only that vCPU) and the page is
 * requested over the return path. Every page is placed exactly once from the source after
 * switchover; a page that arrives when already present is discarded and counted (as
 * UFFDIO_COPY answers EEXIST), never written over what the guest has done since.
 */
import net from 'node:net';
import type { PagesInfo } from '../types.js';
import { QmpError } from '../qmp/error.js';
import type { QmpCommandDef } from '../qmp/server.js';
import { Bitmap } from './bitmap.js';
import { checkPage } from './content.js';
import { LatencyRing, pageMap } from './stats.js';
import {
  encodeEmpty,
  encodeJson,
  encodeRecvBitmap,
  encodeReqPages,
  MainStreamDecoder,
  MIG_RP_MSG,
  type MainMessage,
} from './wire.js';
import { parseTcpUri, SimVm, type VmOptions } from './vm.js';

interface Waiting {
  /** When the request went out on the current connection; null while not (yet) sent. */
  sentAt: number | null;
  /** When the page was first needed, for blocktime. */
  neededAt: number;
  vcpus: number[];
  walker: boolean;
}

export class DestinationVm extends SimVm {
  readonly side = 'destination' as const;
  private readonly present: Bitmap;
  /** The version placed from the source (what verification compares against the source). */
  private readonly placed: Uint32Array;
  /** The source's frozen versions, from x-verify at the end of the stream. */
  private sourceVersions: Uint32Array | null = null;
  private verifyReceived = 0;
  private readonly waiting = new Map<number, Waiting>();
  private sock: net.Socket | null = null;
  private preemptSock: net.Socket | null = null;
  private preemptExpected = false;
  private listener: net.Server | null = null;
  private epoch = 0;
  private incomingStarted = false;
  private postcopy = false;
  private gotEof = false;
  private allReceivedSent = false;
  private walkMode = false;
  private walkerPos = 0;
  private walkerOutstanding = 0;
  private walkerDone = false;
  private duplicates = 0;
  private resentArrivals = 0;
  private recovered = false;
  private recoveries = 0;
  private recoveryAttempts = 0;
  private readonly latency = new LatencyRing();
  private blocktimeMs = 0;
  private lastDataAt = 0;
  private mismatches: number[] = [];
  private verified: boolean | null = null;
  private pageBytesReceived = 0;

  constructor(opts: VmOptions) {
    super(opts, 'inmigrate');
    this.present = new Bitmap(this.pageCount);
    this.placed = new Uint32Array(this.pageCount);
  }

  protected contRefusal(): string | null {
    if (this.status === 'none' || this.status === 'setup' || this.status === 'active') {
      return 'Guest is waiting for an incoming migration';
    }
    return null;
  }

  // ---- the guest's memory accesses ------------------------------------------------------

  access(vcpu: number, page: number, write: boolean): 'ok' | 'blocked' {
    if (!this.present.get(page)) {
      this.need(page, { vcpu });
      return 'blocked';
    }
    if (write) this.versions[page] = (this.versions[page] + 1) >>> 0;
    return 'ok';
  }

  /** A vCPU or the walker needs a missing page: remember who waits, and ask if the link is up. */
  private need(page: number, who: { vcpu?: number; walker?: boolean }): void {
    let w = this.waiting.get(page);
    if (!w) {
      w = { sentAt: null, neededAt: performance.now(), vcpus: [], walker: false };
      this.waiting.set(page, w);
      if (this.status === 'postcopy-active') this.sendRequest(page, w);
    }
    if (who.vcpu !== undefined) w.vcpus.push(who.vcpu);
    if (who.walker) w.walker = true;
  }

  private sendRequest(page: number, w: Waiting): void {
    if (!this.sock || this.sock.destroyed) return;
    w.sentAt = performance.now();
    this.sock.write(encodeReqPages(page, 1));
  }

  // ---- QMP ---------------------------------------------------------------------------------

  commands(): Record<string, QmpCommandDef> {
    return {
      ...this.baseCommands(),
      'query-migrate': {
        handler: () => {
          if (this.status === 'none') return {};
          const out: Record<string, unknown> = { status: this.status };
          if (this.cap('postcopy-blocktime') && this.postcopy) out['postcopy-blocktime'] = Math.round(this.blocktimeMs);
          if (this.errorDesc && (this.status === 'failed' || this.status === 'postcopy-paused')) out['error-desc'] = this.errorDesc;
          if (this.verified !== null) out['x-verified'] = this.verified;
          return out;
        },
      },
      'x-query-pages': { args: { 'map-cells': 'int?' }, handler: (a) => this.queryPages(a['map-cells'] as number | undefined) },
      'migrate-incoming': {
        args: { uri: 'str' },
        handler: (a) => {
          if (this.incomingStarted && this.status !== 'failed') {
            throw new QmpError('GenericError', 'The incoming migration has already been started');
          }
          const addr = parseTcpUri(a.uri as string);
          return this.listen(addr, false).then(() => {
            // QEMU's destination exits after a failed incoming migration and you start a new
            // one; the sim lets the same process take a fresh attempt, with nothing kept.
            if (this.status === 'failed') this.resetIncoming();
            this.incomingStarted = true;
            this.setStatus('setup');
            return {};
          });
        },
      },
      'migrate-recover': {
        args: { uri: 'str' },
        allowOob: true,
        handler: (a) => {
          if (this.status !== 'postcopy-paused') throw new QmpError('GenericError', 'Migrate recover can only be run when postcopy is paused.');
          if (this.listener) throw new QmpError('GenericError', 'Migrate recovery is triggered already');
          const addr = parseTcpUri(a.uri as string);
          return this.listen(addr, true).then(() => ({}));
        },
      },
      'migrate-pause': {
        allowOob: true,
        handler: () => {
          if (this.status !== 'postcopy-active' && this.status !== 'postcopy-recover') {
            throw new QmpError('GenericError', 'migrate-pause is currently only supported during postcopy-active or postcopy-recover state');
          }
          this.fail('migrate-pause: channel shut down by the operator');
          return {};
        },
      },
      migrate: {
        args: { uri: 'str', resume: 'bool?' },
        handler: () => {
          throw new QmpError('GenericError', 'Guest is waiting for an incoming migration');
        },
      },
      'migrate-start-postcopy': {
        handler: () => {
          throw new QmpError('GenericError', 'Postcopy must be started after migration has been started');
        },
      },
      migrate_cancel: {
        handler: () => {
          // Ours: end an incoming precopy migration that is stuck (a source that failed on a cut
          // the destination never heard of: an idle receiver sees no RST). QEMU would have you
          // kill the destination process and start a new one.
          if (this.status === 'setup' || this.status === 'active') this.fail('incoming migration cancelled by migrate_cancel');
          else if (this.status.startsWith('postcopy-')) {
            throw new QmpError('GenericError', 'Postcopy migration cannot be cancelled: the guest runs here and part of its memory is still on the source');
          }
          return {};
        },
      },
    };
  }

  private resetIncoming(): void {
    this.present.clearAll();
    this.placed.fill(0);
    this.versions.fill(0);
    this.sourceVersions = null;
    this.verifyReceived = 0;
    this.waiting.clear();
    this.postcopy = false;
    this.gotEof = false;
    this.allReceivedSent = false;
    this.walkMode = false;
    this.walkerDone = false;
    this.walkerPos = 0;
    this.walkerOutstanding = 0;
    this.duplicates = 0;
    this.resentArrivals = 0;
    this.recovered = false;
    this.recoveries = 0;
    this.recoveryAttempts = 0;
    this.blocktimeMs = 0;
    this.mismatches = [];
    this.verified = null;
    this.errorDesc = undefined;
  }

  private queryPages(cells?: number): PagesInfo {
    let inFlight = 0;
    let blocked = 0;
    for (const w of this.waiting.values()) {
      if (w.sentAt !== null) inFlight++;
      blocked += w.vcpus.length;
    }
    const info: PagesInfo = {
      'page-size': this.pageSize,
      total: this.pageCount,
      received: this.present.count,
      requested: this.waiting.size,
      'in-flight': inFlight,
      missing: this.pageCount - this.present.count - this.waiting.size,
      'duplicates-discarded': this.duplicates,
      resent: this.resentArrivals,
      'blocked-vcpus': blocked,
      'fault-latency-us': this.latency.percentiles(),
      'blocktime-ms': Math.round(this.currentBlocktime()),
      walker: { active: this.walkMode && !this.walkerDone, position: this.walkerPos, total: this.pageCount, done: this.walkerDone },
      guest: { progress: this.guest.progress, 'ops-per-second': Math.round(this.guest.opsPerSecond()) },
      recoveries: this.recoveries,
      'recovery-attempts': this.recoveryAttempts,
      verified: this.verified,
    };
    if (this.mismatches.length) info.mismatches = this.mismatches.slice(0, 16);
    if (cells && cells > 0) info.map = pageMap(cells, this.pageCount, this.present, this.waiting.keys());
    return info;
  }

  /** Blocktime so far, counting vCPUs that are blocked right now. */
  private currentBlocktime(): number {
    const now = performance.now();
    let t = this.blocktimeMs;
    for (const w of this.waiting.values()) t += w.vcpus.length * (now - w.neededAt);
    return t;
  }

  // ---- the channel ------------------------------------------------------------------------

  private listen(addr: { host: string; port: number }, recover: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((sock) => this.accept(sock, recover, server));
      server.once('error', (e: NodeJS.ErrnoException) => {
        if (this.listener === server) this.listener = null;
        const why = e.code === 'EADDRINUSE' ? 'Address already in use' : e.code === 'EADDRNOTAVAIL' ? 'Cannot assign requested address' : e.message;
        reject(new QmpError('GenericError', `Failed to bind socket ${addr.host}:${addr.port}: ${why}${e.code === 'EADDRINUSE' ? ' (choose another port, e.g. one above 40000)' : ''}`));
      });
      server.listen({ host: addr.host, port: addr.port }, () => {
        this.listener = server;
        this.log(`listening on ${addr.host}:${addr.port}${recover ? ' (recover)' : ''}`);
        resolve();
      });
    });
  }

  /** As QEMU's: a listen serves one migration; close it once its channels are taken. */
  private closeListener(server: net.Server): void {
    server.close();
    if (this.listener === server) this.listener = null;
  }

  /**
   * A new connection. Its header says what it is: the main channel (stream + return path) or,
   * with postcopy-preempt, the preempt channel that carries requested pages only.
   */
  private accept(sock: net.Socket, recover: boolean, server: net.Server): void {
    sock.setNoDelay(true);
    let role: 'pending' | 'main' | 'preempt' = 'pending';
    let epoch = -1;
    const decoder = new MainStreamDecoder(this.pageSize, this.pageCount, (m) => {
      if (role === 'pending') {
        if (m.type !== 'header') throw new Error(`expected the stream header, got ${m.type}`);
        if (m.header.preemptChannel) {
          if (!this.sock || this.preemptSock || !this.preemptExpected) throw new Error('a preempt channel arrived without a main channel expecting it');
          role = 'preempt';
          epoch = this.epoch;
          this.preemptSock = sock;
          this.closeListener(server);
          this.log('preempt channel up');
          return;
        }
        if (m.header.resume !== recover) {
          throw new Error(recover ? 'a new migration arrived while recovering a paused one' : 'a resume arrived on a fresh incoming migration');
        }
        role = 'main';
        epoch = ++this.epoch;
        this.sock?.destroy();
        this.sock = sock;
        this.preemptSock?.destroy();
        this.preemptSock = null;
        this.preemptExpected = m.header.preemptEnabled && this.cap('postcopy-preempt');
        if (!this.preemptExpected) this.closeListener(server);
        this.startDestinationStallWatch(epoch);
        if (recover) {
          this.recoveryAttempts++;
          this.setStatus('postcopy-recover');
        } else this.setStatus('active');
        return;
      }
      if (epoch !== this.epoch) return;
      if (role === 'preempt') {
        if (m.type !== 'page') throw new Error(`only pages belong on the preempt channel, got ${m.type}`);
        return this.onPage(m.index, m.version, m.buf, m.offset);
      }
      this.onMain(m);
    });
    const current = () => role === 'pending' || epoch === this.epoch;
    sock.on('data', (chunk: Buffer) => {
      if (!current()) return;
      this.lastDataAt = performance.now();
      try {
        decoder.push(chunk);
      } catch (e) {
        // A connection that never became a channel is not in this.sock: close it here too, or
        // its sender would push into a socket nobody reads.
        if (role === 'pending') sock.destroy();
        this.fail(`migration stream error${role === 'preempt' ? ' (preempt channel)' : ''}: ${(e as Error).message}`);
        return;
      }
      if (role === 'main' && this.preemptSock) {
        // libuv reads a ready socket many times in a row (up to ~2 MiB) before it looks at the
        // next one; yield after each chunk of the bulk stream so a requested page waiting on
        // the preempt channel is placed now, not after megabytes of background push.
        sock.pause();
        setImmediate(() => {
          if (!sock.destroyed) sock.resume();
        });
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (!current()) return;
      if (role === 'pending') sock.destroy();
      this.fail(`${e.code ?? ''} ${e.message}`.trim());
    });
    sock.on('close', () => {
      if (!current()) return;
      this.fail(`the ${role === 'preempt' ? 'preempt channel' : 'migration connection'} was closed by the peer`);
    });
  }

  private onMain(m: MainMessage): void {
    switch (m.type) {
      case 'header':
        throw new Error('a second stream header');
      case 'postcopy-advise':
        if (!this.cap('postcopy-ram')) {
          throw new Error('the source wants postcopy but postcopy-ram is not enabled on the destination');
        }
        return;
      case 'page':
        return this.onPage(m.index, m.version, m.buf, m.offset);
      case 'postcopy-ram-discard':
        if (this.status !== 'active') throw new Error('discard outside precopy');
        for (const [s, c] of m.ranges) for (let i = s; i < s + c; i++) this.present.clear(i);
        return;
      case 'postcopy-run':
        if (this.status !== 'active') throw new Error('postcopy-run outside precopy');
        this.postcopy = true;
        this.guest.importState(m.device.vcpus);
        this.setStatus('postcopy-active');
        this.startGuest();
        this.checkAllReceived();
        return;
      case 'recv-bitmap':
        if (this.status !== 'postcopy-recover') throw new Error('recv-bitmap outside recovery');
        this.sock?.write(encodeRecvBitmap(this.present.bytes));
        return;
      case 'postcopy-resume':
        if (this.status !== 'postcopy-recover') throw new Error('resume outside recovery');
        this.walkMode = m.mode === 'walk';
        this.recovered = true;
        this.recoveries++;
        this.gotEof = false;
        this.allReceivedSent = false;
        this.sock?.write(encodeEmpty(MIG_RP_MSG.RESUME_ACK));
        this.setStatus('postcopy-active');
        // Requests that were in flight when the link failed are lost: ask again for every
        // page a vCPU (or the walker) still waits on. (QEMU fixed a hang here in 2020.)
        for (const [page, w] of this.waiting) this.sendRequest(page, w);
        if (this.walkMode) this.startWalker();
        this.checkAllReceived();
        return;
      case 'x-verify':
        if (!this.sourceVersions) this.sourceVersions = new Uint32Array(this.pageCount);
        this.sourceVersions.set(m.versions, m.start);
        this.verifyReceived += m.versions.length;
        return;
      case 'eof':
        this.gotEof = true;
        if (!this.postcopy) {
          // Precopy completion: the source stopped its guest and sent the rest.
          this.guest.importState(m.device.vcpus);
        }
        this.tryFinish();
        return;
    }
  }

  private onPage(index: number, version: number, buf: Buffer, offset: number): void {
    if (!checkPage(buf, offset, index, version, this.pageSize)) {
      // Never place a page whose bytes are not what the source says they are.
      throw new Error(`page ${index}: content does not match version ${version} (corrupt stream)`);
    }
    this.pageBytesReceived += this.pageSize;
    if (this.recovered) this.resentArrivals++;
    if (!this.postcopy) {
      // Precopy: the guest is not running here yet; a newer copy simply replaces the older.
      this.present.set(index);
      this.placed[index] = version;
      this.versions[index] = version;
      return;
    }
    if (this.present.get(index)) {
      // Already placed (pushed and requested, or re-sent after a recovery): UFFDIO_COPY would
      // answer EEXIST. Dropping it keeps whatever the guest has written since.
      this.duplicates++;
      return;
    }
    this.present.set(index);
    this.placed[index] = version;
    this.versions[index] = version;
    const w = this.waiting.get(index);
    if (w) {
      this.waiting.delete(index);
      const now = performance.now();
      if (w.sentAt !== null) this.latency.add((now - w.sentAt) * 1000);
      this.blocktimeMs += w.vcpus.length * (now - w.neededAt);
      for (const v of w.vcpus) this.guest.unblock(v);
      if (w.walker) {
        this.walkerOutstanding--;
        this.advanceWalker();
      }
    }
    this.checkAllReceived();
  }

  private checkAllReceived(): void {
    if (!this.postcopy || this.present.count !== this.pageCount) return;
    if (this.walkMode && !this.walkerDone) this.advanceWalker();
    if (!this.allReceivedSent && this.status === 'postcopy-active' && this.sock) {
      this.allReceivedSent = true;
      this.sock.write(encodeEmpty(MIG_RP_MSG.X_ALL_RECEIVED));
    }
    this.tryFinish();
  }

  // ---- the walker (x-recovery-walk: the thread's steps f and h) ---------------------------

  private startWalker(): void {
    this.walkerPos = 0;
    this.walkerDone = false;
    this.walkerOutstanding = 0;
    for (const w of this.waiting.values()) if (w.walker) w.walker = false;
    this.advanceWalker();
  }

  /** Touch pages in order; a missing one is requested and the walker waits (window permitting). */
  private advanceWalker(): void {
    if (!this.walkMode || this.walkerDone) return;
    const window = this.params['x-walk-window'];
    while (this.walkerOutstanding < window) {
      const next = this.present.nextClear(this.walkerPos);
      if (next < 0) {
        this.walkerPos = this.pageCount;
        break;
      }
      this.walkerPos = next + 1;
      const w = this.waiting.get(next);
      if (w?.walker) continue;
      this.need(next, { walker: true });
      this.walkerOutstanding++;
    }
    if (this.walkerPos >= this.pageCount && this.walkerOutstanding === 0) {
      this.walkerDone = true;
      this.log('walker: every page is present');
    }
  }

  // ---- completion and failure ---------------------------------------------------------------

  private tryFinish(): void {
    if (!this.gotEof || this.status === 'completed') return;
    if (this.present.count !== this.pageCount) {
      if (!this.postcopy) throw new Error(`the stream ended with ${this.pageCount - this.present.count} pages never sent`);
      // The stream ended but pages are missing (should not happen): ask for them before finishing.
      for (let i = this.present.nextClear(0); i >= 0; i = this.present.nextClear(i + 1)) this.need(i, {});
      return;
    }
    const src = this.sourceVersions;
    const mismatches: number[] = [];
    if (!src || this.verifyReceived < this.pageCount) {
      this.verified = false;
    } else {
      for (let i = 0; i < this.pageCount; i++) {
        if (this.placed[i] !== src[i]) {
          mismatches.push(i);
          if (mismatches.length >= 64) break;
        }
      }
      this.verified = mismatches.length === 0;
    }
    this.mismatches = mismatches;
    const result = {
      verified: this.verified,
      mismatches: mismatches.slice(0, 16),
      pages: this.pageCount,
      duplicates: this.duplicates,
      resent: this.resentArrivals,
    };
    this.sock?.write(encodeJson(MIG_RP_MSG.SHUT, result));
    this.log(`completed: ${this.verified ? 'every page verified' : `VERIFICATION FAILED (${mismatches.length} pages differ, first ${mismatches[0]})`}`);
    this.stopStallWatch();
    const s = this.sock;
    this.epoch++;
    this.sock = null;
    s?.end();
    this.preemptSock?.end();
    this.preemptSock = null;
    this.listener?.close();
    this.listener = null;
    this.setStatus('completed');
    if (!this.postcopy) this.startGuest();
  }

  private startDestinationStallWatch(epoch: number): void {
    this.startStallWatch(
      () => epoch === this.epoch,
      // A silent link: nothing from the source while pages are still missing.
      (limit) =>
        this.status === 'postcopy-active' && this.present.count < this.pageCount && performance.now() - this.lastDataAt > limit
          ? `no data from the source for ${limit} ms`
          : null,
      (reason) => this.fail(reason),
    );
  }


  private fail(reason: string): void {
    const s = this.status;
    this.epoch++;
    this.stopStallWatch();
    const sock = this.sock;
    this.sock = null;
    if (sock && !sock.destroyed) sock.destroy();
    this.preemptSock?.destroy();
    this.preemptSock = null;
    // A listener still waiting for this channel's preempt companion is used up too.
    if (this.listener && s !== 'postcopy-paused') {
      this.listener.close();
      this.listener = null;
    }
    if (s === 'completed' || s === 'failed' || s === 'postcopy-paused' || s === 'none') return;
    this.log(`migration error in ${s}: ${reason}`);
    this.errorDesc = reason;
    if (s === 'postcopy-active' || s === 'postcopy-recover') {
      // Keep everything: placed pages, who waits for what. Requests already sent are lost
      // with the connection; they go out again after the resume.
      for (const w of this.waiting.values()) w.sentAt = null;
      this.setStatus('postcopy-paused');
      return;
    }
    // Precopy: the destination never ran the guest; the source still has it.
    this.listener?.close();
    this.listener = null;
    this.setStatus('failed');
  }

  shutdown(): void {
    this.guest.stop();
    this.stopStallWatch();
    this.epoch++;
    this.sock?.destroy();
    this.preemptSock?.destroy();
    this.listener?.close();
  }
}
