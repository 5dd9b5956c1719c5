/**
 * The parts of QEMU's own migration stream a stand-in source needs to finish a paused postcopy
 * migration: the commands on the main channel, the return-path messages the destination sends
 * back on the same socket, and the RAM page records. Written from reading QEMU 7.2 and 10.0
 * (migration/savevm.c, migration.c, ram.c); numbers are QEMU's, names are QEMU's.
 *
 * Byte order is big-endian everywhere except the received bitmap, which QEMU converts to
 * little-endian 64-bit words before sending.
 */

/** Section and stream markers (savevm.c's QEMU_VM_*). */
export const QEMU_VM_EOF = 0x00;
export const QEMU_VM_SECTION_START = 0x01;
export const QEMU_VM_SECTION_PART = 0x02;
export const QEMU_VM_SECTION_END = 0x03;
export const QEMU_VM_COMMAND = 0x08;
export const QEMU_VM_SECTION_FOOTER = 0x7e;

/** The file header QEMU writes first ("QEVM", version 3); a resumed stream does not repeat it. */
export const QEMU_VM_FILE_MAGIC = 0x5145564d;

/** MIG_CMD_* (savevm.c, enum qemu_vm_cmd), identical in 7.2 and 10.0 up to RECV_BITMAP. */
export const MIG_CMD = {
  OPEN_RETURN_PATH: 1,
  PING: 2,
  POSTCOPY_ADVISE: 3,
  POSTCOPY_LISTEN: 4,
  POSTCOPY_RUN: 5,
  POSTCOPY_RAM_DISCARD: 6,
  PACKAGED: 7,
  ENABLE_COLO: 8,
  POSTCOPY_RESUME: 9,
  RECV_BITMAP: 10,
} as const;

/** MIG_RP_MSG_* (migration.c, enum mig_rp_message_type); SWITCHOVER_ACK is 8.1+. */
export const MIG_RP_MSG = {
  INVALID: 0,
  SHUT: 1,
  PONG: 2,
  REQ_PAGES_ID: 3,
  REQ_PAGES: 4,
  RECV_BITMAP: 5,
  RESUME_ACK: 6,
  SWITCHOVER_ACK: 7,
} as const;

export const RP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(MIG_RP_MSG).map(([k, v]) => [v, `MIG_RP_MSG_${k}`]));

/** RAM_SAVE_FLAG_* (ram.c): the low bits of each page record's be64 offset. */
export const RAM_SAVE_FLAG = {
  ZERO: 0x02,
  MEM_SIZE: 0x04,
  PAGE: 0x08,
  EOS: 0x10,
  CONTINUE: 0x20,
} as const;

/** What the destination writes after a received bitmap (ram.c, RAMBLOCK_RECV_BITMAP_ENDING). */
export const RECV_BITMAP_ENDING = 0x0123456789abcdefn;
/** The value of MIG_RP_MSG_RESUME_ACK (MIGRATION_RESUME_ACK_VALUE). */
export const RESUME_ACK_VALUE = 1;

export const TARGET_PAGE_SIZE = 4096;

function be16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function be32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function be64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
}

/** A QEMU_VM_COMMAND record: type, be16 command, be16 length, data. */
export function command(cmd: number, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([Buffer.from([QEMU_VM_COMMAND]), be16(cmd), be16(data.length), data]);
}

/** MIG_CMD_RECV_BITMAP for one RAMBlock: a counted string (one length byte, no NUL). */
export function recvBitmapCommand(idstr: string): Buffer {
  const name = Buffer.from(idstr, 'latin1');
  if (name.length === 0 || name.length > 255) throw new RangeError(`a RAMBlock name is 1..255 bytes, got ${JSON.stringify(idstr)}`);
  return command(MIG_CMD.RECV_BITMAP, Buffer.concat([Buffer.from([name.length]), name]));
}

export function postcopyResumeCommand(): Buffer {
  return command(MIG_CMD.POSTCOPY_RESUME);
}

/** A SECTION_PART or SECTION_END header: type and the section id the original source used. */
export function sectionHeader(type: typeof QEMU_VM_SECTION_PART | typeof QEMU_VM_SECTION_END, sectionId: number): Buffer {
  return Buffer.concat([Buffer.from([type]), be32(sectionId)]);
}

/** The footer QEMU checks after every section on machine types since 2.4 (send_section_footer). */
export function sectionFooter(sectionId: number): Buffer {
  return Buffer.concat([Buffer.from([QEMU_VM_SECTION_FOOTER]), be32(sectionId)]);
}

export function endOfSection(): Buffer {
  return be64(BigInt(RAM_SAVE_FLAG.EOS));
}

/**
 * One page record. The block's name goes with the first page of a section and whenever the
 * block changes; otherwise RAM_SAVE_FLAG_CONTINUE says "same block as the last record".
 * An all-zero page goes as RAM_SAVE_FLAG_ZERO and one fill byte (0).
 */
export function pageRecord(idstr: string, offset: number, page: Buffer, sameBlock: boolean): Buffer {
  if (offset % TARGET_PAGE_SIZE !== 0) throw new RangeError(`page offset ${offset} is not ${TARGET_PAGE_SIZE}-aligned`);
  if (page.length !== TARGET_PAGE_SIZE) throw new RangeError(`a page is ${TARGET_PAGE_SIZE} bytes, got ${page.length}`);
  const zero = isZero(page);
  const flags = (zero ? RAM_SAVE_FLAG.ZERO : RAM_SAVE_FLAG.PAGE) | (sameBlock ? RAM_SAVE_FLAG.CONTINUE : 0);
  const parts = [be64(BigInt(offset) | BigInt(flags))];
  if (!sameBlock) {
    const name = Buffer.from(idstr, 'latin1');
    parts.push(Buffer.from([name.length]), name);
  }
  parts.push(zero ? Buffer.from([0]) : page);
  return Buffer.concat(parts);
}

function isZero(page: Buffer): boolean {
  for (let i = 0; i < page.length; i += 8) if (page.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

/** A return-path message as read: type and data (for RECV_BITMAP, the bitmap that follows it). */
export type RpMessage =
  | { type: 'SHUT'; value: number }
  | { type: 'PONG'; value: number }
  | { type: 'REQ_PAGES'; idstr?: string; start: number; len: number }
  | { type: 'RECV_BITMAP'; idstr: string; bitmap: Buffer }
  | { type: 'RESUME_ACK'; value: number }
  | { type: 'SWITCHOVER_ACK' };

/**
 * Incremental parser of the return path: feed it socket chunks, take whole messages. Each
 * message is be16 type, be16 length, data; MIG_RP_MSG_RECV_BITMAP's data (the block name) is
 * followed, outside the framing, by be64 size, the little-endian bitmap, and be64
 * RECV_BITMAP_ENDING. Anything else is a protocol error, thrown with what was read.
 */
export class ReturnPathParser {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): RpMessage[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: RpMessage[] = [];
    for (;;) {
      const m = this.next();
      if (!m) return out;
      out.push(m);
    }
  }

  private next(): RpMessage | null {
    const b = this.buf;
    if (b.length < 4) return null;
    const type = b.readUInt16BE(0);
    const len = b.readUInt16BE(2);
    if (b.length < 4 + len) return null;
    const data = b.subarray(4, 4 + len);
    let used = 4 + len;
    let msg: RpMessage;
    switch (type) {
      case MIG_RP_MSG.SHUT:
      case MIG_RP_MSG.PONG:
      case MIG_RP_MSG.RESUME_ACK:
        if (len !== 4) throw new Error(`${RP_NAMES[type]} carries 4 bytes, got ${len}`);
        msg = { type: type === MIG_RP_MSG.SHUT ? 'SHUT' : type === MIG_RP_MSG.PONG ? 'PONG' : 'RESUME_ACK', value: data.readUInt32BE(0) };
        break;
      case MIG_RP_MSG.SWITCHOVER_ACK:
        msg = { type: 'SWITCHOVER_ACK' };
        break;
      case MIG_RP_MSG.REQ_PAGES:
        if (len !== 12) throw new Error(`MIG_RP_MSG_REQ_PAGES carries 12 bytes, got ${len}`);
        msg = { type: 'REQ_PAGES', start: Number(data.readBigUInt64BE(0)), len: data.readUInt32BE(8) };
        break;
      case MIG_RP_MSG.REQ_PAGES_ID: {
        const n = data[12];
        if (len !== 13 + n) throw new Error(`MIG_RP_MSG_REQ_PAGES_ID of ${len} bytes does not match its name length ${n}`);
        msg = { type: 'REQ_PAGES', start: Number(data.readBigUInt64BE(0)), len: data.readUInt32BE(8), idstr: data.subarray(13, 13 + n).toString('latin1') };
        break;
      }
      case MIG_RP_MSG.RECV_BITMAP: {
        const n = data[0];
        const idstr = data.subarray(1, 1 + n).toString('latin1');
        if (b.length < used + 8) return null;
        const size = Number(b.readBigUInt64BE(used));
        if (b.length < used + 8 + size + 8) return null;
        const bitmap = Buffer.from(b.subarray(used + 8, used + 8 + size));
        const ending = b.readBigUInt64BE(used + 8 + size);
        if (ending !== RECV_BITMAP_ENDING) {
          throw new Error(`the received bitmap of ${idstr} ends with 0x${ending.toString(16)}, expected 0x${RECV_BITMAP_ENDING.toString(16)}`);
        }
        used += 8 + size + 8;
        msg = { type: 'RECV_BITMAP', idstr, bitmap };
        break;
      }
      default:
        throw new Error(`unknown return-path message type ${type} (length ${len})`);
    }
    this.buf = b.subarray(used);
    return msg;
  }
}

/** Whether page `i` is set in a received bitmap (little-endian 64-bit words: bit i%8 of byte i/8). */
export function bitmapHas(bitmap: Buffer, i: number): boolean {
  return ((bitmap[i >> 3] ?? 0) & (1 << (i & 7))) !== 0;
}

/** A RAMBlock as the original stream announced it (RAM_SAVE_FLAG_MEM_SIZE record). */
export interface RamBlockInfo {
  idstr: string;
  length: number;
}

/** The "ram" section as found in the first bytes of a QEMU migration stream. */
export interface RamSectionInfo {
  sectionId: number;
  version: number;
  blocks: RamBlockInfo[];
}

/**
 * Find the "ram" SECTION_START in the head of a migration stream and read its block list.
 * The destination accepts RAM only inside the section id the original source announced, so
 * a stand-in source must reuse it; it is fixed by QEMU's handler registration order.
 * Returns null when `head` does not hold the whole record yet.
 */
export function findRamSection(head: Buffer): RamSectionInfo | null {
  const name = Buffer.from([3, 0x72, 0x61, 0x6d]); // counted "ram"
  for (let at = head.indexOf(name); at >= 0; at = head.indexOf(name, at + 1)) {
    if (at < 5 || head[at - 5] !== QEMU_VM_SECTION_START) continue;
    const sectionId = head.readUInt32BE(at - 4);
    let p = at + 4;
    if (head.length < p + 16) return null;
    const instance = head.readUInt32BE(p);
    const version = head.readUInt32BE(p + 4);
    p += 8;
    if (instance !== 0) continue;
    const sizeWord = head.readBigUInt64BE(p);
    p += 8;
    if ((sizeWord & BigInt(RAM_SAVE_FLAG.MEM_SIZE)) === 0n) continue;
    let total = Number(sizeWord & ~0xfffn);
    const blocks: RamBlockInfo[] = [];
    while (total > 0) {
      if (head.length < p + 1) return null;
      const n = head[p];
      if (head.length < p + 1 + n + 8) return null;
      const idstr = head.subarray(p + 1, p + 1 + n).toString('latin1');
      const length = Number(head.readBigUInt64BE(p + 1 + n));
      p += 1 + n + 8;
      blocks.push({ idstr, length });
      total -= length;
    }
    if (total !== 0) throw new Error(`the ram section's block list does not add up to its total (off by ${total} bytes)`);
    return { sectionId, version, blocks };
  }
  return null;
}
