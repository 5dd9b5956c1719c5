/**
 * A stand-in postcopy source for an unmodified QEMU destination: it connects to the address
 * the destination listens on after `migrate-recover`, does the resume handshake a real QEMU
 * source does, and serves the pages the destination still lacks from RAM saved while the
 * source was postcopy-paused (its vCPUs stopped at switchover, so that RAM is the frozen state).
 *
 * The sequence (QEMU's postcopy_do_resume on the source, loadvm_process_command on the
 * destination), the same on 7.2 and 10.0 with postcopy-preempt off:
 *   1. no file header: the destination's paused load thread just continues reading records;
 *   2. MIG_CMD_RECV_BITMAP per RAMBlock -> MIG_RP_MSG_RECV_BITMAP + the block's received bitmap;
 *   3. we check that every page the destination lacks is held, and stop here (failing fast,
 *      naming the pages) if one is not: nothing is resumed with a page we cannot give (or,
 *      with `partial`, the held pages are served and the connection closed before step 5's end);
 *   4. MIG_CMD_POSTCOPY_RESUME -> MIG_RP_MSG_RESUME_ACK (1); the destination is postcopy-active
 *      again and re-sends the page requests its faulting threads still wait for;
 *   5. the missing pages in a SECTION_PART of the original "ram" section (requested ones first),
 *      RAM_SAVE_FLAG_EOS and the footer; an empty SECTION_END; QEMU_VM_EOF. The destination's
 *      listen thread then completes the migration and sends MIG_RP_MSG_SHUT.
 */
import net from 'node:net';
import {
  bitmapHas,
  endOfSection,
  pageRecord,
  postcopyResumeCommand,
  QEMU_VM_EOF,
  QEMU_VM_SECTION_END,
  QEMU_VM_SECTION_PART,
  RAM_SAVE_FLAG,
  recvBitmapCommand,
  RESUME_ACK_VALUE,
  ReturnPathParser,
  sectionFooter,
  sectionHeader,
  TARGET_PAGE_SIZE,
  type RamSectionInfo,
  type RpMessage,
} from './wire.js';

/** Where the frozen content of one RAMBlock comes from: a page, or null when it is not held. */
export type FrozenReader = (idstr: string, offset: number) => Buffer | null;

export interface ServeOptions {
  host: string;
  port: number;
  /** The original source's "ram" section (probe.ts). */
  ram: RamSectionInfo;
  frozen: FrozenReader;
  /** Progress lines (for a CLI or a test log). */
  log?: (line: string) => void;
  /** Bound on each wait for the destination. Default 30 000 ms. */
  timeoutMs?: number;
  /**
   * When the saved RAM lacks pages the destination needs: resume anyway, send every page that
   * is held, then close without QEMU_VM_EOF, so the destination pauses again (postcopy-paused,
   * recoverable by a later source holding the rest) instead of being refused in
   * postcopy-recover, which QEMU before 8.2 does not survive. Default false: refuse.
   */
  partial?: boolean;
  /**
   * Where the resume stands, for a QMP front's query-migrate: `postcopy-recover` once every
   * received bitmap is in (with what each block lacks), `postcopy-active` at the resume ack.
   */
  onState?: (state: 'postcopy-recover' | 'postcopy-active', missing: Record<string, number>) => void;
  /** Pages sent so far, after each write of them. */
  onSent?: (pages: number) => void;
}

export interface ServeResult {
  /** Pages each block lacked on the destination when it reconnected. */
  missing: Record<string, number>;
  pagesSent: number;
  /** Pages the destination asked for (MIG_RP_MSG_REQ_PAGES*) after the resume. */
  pagesRequested: number;
  /** MIG_RP_MSG_SHUT's value (0: the destination finished cleanly), or null if it closed without one. */
  shut: number | null;
  /** With `partial`: the lacking pages the saved RAM did not hold (the destination was left paused). */
  unheld?: { idstr: string; pages: number[] }[];
}

/** Thrown before resuming when the saved RAM does not hold a page the destination lacks. */
export class RecoveryIncompleteError extends Error {
  constructor(readonly unheld: { idstr: string; pages: number[] }[]) {
    super(
      `the saved RAM does not hold ${unheld.reduce((n, u) => n + u.pages.length, 0)} page(s) the destination lacks: ` +
        unheld.map((u) => `${u.idstr} ${listPages(u.pages)}`).join('; ') +
        '; nothing was resumed (the destination stays postcopy-recover/paused)',
    );
    this.name = 'RecoveryIncompleteError';
  }
}

function listPages(pages: number[]): string {
  const shown = pages.slice(0, 8).map((p) => `0x${(p * TARGET_PAGE_SIZE).toString(16)}`);
  return `[${shown.join(', ')}${pages.length > 8 ? `, … ${pages.length - 8} more` : ''}]`;
}

/** Pages per socket write while streaming: large enough to keep the socket busy. */
const BATCH_PAGES = 64;

export async function serveQemuResume(o: ServeOptions): Promise<ServeResult> {
  const log = o.log ?? (() => {});
  const timeoutMs = o.timeoutMs ?? 30_000;
  const sock = net.connect({ host: o.host, port: o.port });
  sock.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  log(`connected to the destination at ${o.host}:${o.port}`);

  const parser = new ReturnPathParser();
  const inbox: RpMessage[] = [];
  let wake: (() => void) | null = null;
  let closed: Error | null = null;
  sock.on('data', (chunk: Buffer) => {
    try {
      inbox.push(...parser.push(chunk));
    } catch (e) {
      closed = e as Error;
      sock.destroy();
    }
    wake?.();
  });
  sock.on('error', (e) => {
    closed ??= e;
    wake?.();
  });
  sock.on('close', () => {
    closed ??= new Error('the destination closed the connection');
    wake?.();
  });

  const next = async (what: string): Promise<RpMessage> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = inbox.shift();
      if (m) return m;
      if (closed) throw new Error(`waiting for ${what}: ${closed.message}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the destination sent no ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(t);
          wake = null;
          resolve();
        };
      });
    }
  };
  const write = (b: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      if (closed) return reject(new Error(`the destination is gone: ${closed.message}`));
      sock.write(b, (e) => (e ? reject(e) : resolve()));
    });

  const requests: { idstr: string; start: number; len: number }[] = [];
  let lastReqBlock = '';
  const take = (m: RpMessage, when: string): void => {
    if (m.type === 'REQ_PAGES') {
      const idstr = m.idstr ?? lastReqBlock;
      lastReqBlock = idstr;
      requests.push({ idstr, start: m.start, len: m.len });
    } else if (m.type !== 'PONG') {
      throw new Error(`unexpected ${m.type} from the destination ${when}`);
    }
  };

  try {
    // 2. What the destination holds, block by block.
    const missing = new Map<string, number[]>();
    for (const b of o.ram.blocks) await write(recvBitmapCommand(b.idstr));
    while (missing.size < o.ram.blocks.length) {
      const m = await next('MIG_RP_MSG_RECV_BITMAP');
      if (m.type !== 'RECV_BITMAP') {
        take(m, 'before its received bitmaps');
        continue;
      }
      const block = o.ram.blocks.find((b) => b.idstr === m.idstr);
      if (!block) throw new Error(`the destination sent a bitmap for ${m.idstr}, which the source's stream never announced`);
      const pages = block.length / TARGET_PAGE_SIZE;
      const lacks: number[] = [];
      for (let i = 0; i < pages; i++) if (!bitmapHas(m.bitmap, i)) lacks.push(i);
      missing.set(m.idstr, lacks);
      log(`${m.idstr}: the destination lacks ${lacks.length} of ${pages} pages`);
    }

    o.onState?.('postcopy-recover', Object.fromEntries([...missing].map(([k, v]) => [k, v.length])));
    // 3. Fail fast, before resuming, if a page the destination lacks is not held.
    const unheld: { idstr: string; pages: number[] }[] = [];
    for (const [idstr, lacks] of missing) {
      const no = lacks.filter((i) => o.frozen(idstr, i * TARGET_PAGE_SIZE) === null);
      if (no.length) unheld.push({ idstr, pages: no });
    }
    if (unheld.length && !o.partial) throw new RecoveryIncompleteError(unheld);
    const unheldKeys = new Set(unheld.flatMap((u) => u.pages.map((p) => `${u.idstr}:${p}`)));
    if (unheld.length) log(`${unheldKeys.size} lacking pages are not held: serving the rest, then leaving the destination paused`);

    // 4. Resume.
    await write(postcopyResumeCommand());
    for (;;) {
      const m = await next('MIG_RP_MSG_RESUME_ACK');
      if (m.type === 'RESUME_ACK') {
        if (m.value !== RESUME_ACK_VALUE) throw new Error(`MIG_RP_MSG_RESUME_ACK carried ${m.value}, expected ${RESUME_ACK_VALUE}`);
        break;
      }
      take(m, 'before its resume ack');
    }
    log('the destination acknowledged the resume (postcopy-active)');
    o.onState?.('postcopy-active', Object.fromEntries([...missing].map(([k, v]) => [k, v.length])));

    // 5. Pages: requested first, then the rest in block order, each at most once (placing a
    // page twice makes UFFDIO_COPY fail on the destination).
    const sent = new Set<string>();
    const key = (idstr: string, page: number): string => `${idstr}:${page}`;
    const background: [string, number][] = [];
    const lacking = new Set<string>();
    for (const [idstr, lacks] of missing) {
      for (const i of lacks) {
        if (unheldKeys.has(key(idstr, i))) continue;
        background.push([idstr, i]);
        lacking.add(key(idstr, i));
      }
    }
    const toSend = background.length;
    let pagesRequested = 0;
    let bg = 0;
    let lastBlock: string | null = null;
    await write(sectionHeader(QEMU_VM_SECTION_PART, o.ram.sectionId));
    while (sent.size < toSend) {
      for (let m = inbox.shift(); m; m = inbox.shift()) take(m, 'while pages were streaming');
      const batch: Buffer[] = [];
      const add = (idstr: string, page: number): void => {
        const k = key(idstr, page);
        if (sent.has(k) || !lacking.has(k)) return;
        const data = o.frozen(idstr, page * TARGET_PAGE_SIZE);
        if (!data) throw new RecoveryIncompleteError([{ idstr, pages: [page] }]);
        batch.push(pageRecord(idstr, page * TARGET_PAGE_SIZE, data, lastBlock === idstr));
        lastBlock = idstr;
        sent.add(k);
      };
      for (let r = requests.shift(); r; r = requests.shift()) {
        pagesRequested += Math.max(1, Math.ceil(r.len / TARGET_PAGE_SIZE));
        for (let off = r.start; off < r.start + Math.max(r.len, 1); off += TARGET_PAGE_SIZE) add(r.idstr, Math.floor(off / TARGET_PAGE_SIZE));
      }
      while (batch.length < BATCH_PAGES && bg < background.length) {
        const [idstr, page] = background[bg++];
        add(idstr, page);
      }
      if (batch.length === 0 && bg >= background.length) break;
      await write(Buffer.concat(batch));
      o.onSent?.(sent.size);
    }
    await write(Buffer.concat([endOfSection(), sectionFooter(o.ram.sectionId)]));
    const missingCounts = Object.fromEntries([...missing].map(([k, v]) => [k, v.length]));
    if (unheld.length) {
      // No QEMU_VM_EOF: closing here is what a dead link does in postcopy-active.
      log(`sent the ${sent.size} held pages (${pagesRequested} requested); closing with ${unheldKeys.size} still lacking`);
      await closeGracefully(sock, () => closed !== null, timeoutMs);
      return { missing: missingCounts, pagesSent: sent.size, pagesRequested, shut: null, unheld };
    }
    // QEMU ends a postcopy stream with the iterative sections' SECTION_END and QEMU_VM_EOF.
    await write(Buffer.concat([sectionHeader(QEMU_VM_SECTION_END, o.ram.sectionId), endOfSection(), sectionFooter(o.ram.sectionId), Buffer.from([QEMU_VM_EOF])]));
    log(`sent ${sent.size} pages (${pagesRequested} requested), then RAM_SAVE_FLAG_EOS (0x${RAM_SAVE_FLAG.EOS.toString(16)}) and QEMU_VM_EOF`);

    let shut: number | null = null;
    for (;;) {
      const m = await next('MIG_RP_MSG_SHUT').catch((e: Error) => (closed ? null : Promise.reject(e)));
      if (!m) break;
      if (m.type === 'SHUT') {
        shut = m.value;
        break;
      }
      if (m.type === 'REQ_PAGES') pagesRequested++; // a late request for a page already on its way
    }
    return { missing: missingCounts, pagesSent: sent.size, pagesRequested, shut };
  } finally {
    sock.destroy();
  }
}

/**
 * Half-close and wait for the destination to close its side. Destroying at once would lose the
 * last pages: the destination's page requests keep arriving, and a socket closed with unread
 * bytes sends RST and drops what it still had to send (seen as pages "sent" but still lacking).
 */
async function closeGracefully(sock: net.Socket, gone: () => boolean, timeoutMs: number): Promise<void> {
  if (gone()) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    sock.once('close', () => {
      clearTimeout(t);
      resolve();
    });
    sock.end();
  });
}
