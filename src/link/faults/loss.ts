/**
 * Packet loss, as a TCP stream experiences it. The relay carries a byte stream, not packets:
 * it cannot drop bytes from the middle of a stream without corrupting it (the receiver would
 * read a stream with a hole, which no real link ever produces; TCP would retransmit). So a
 * "lost" chunk is held for a retransmission-like delay (RETRANSMIT_DELAY_MS, TCP's minimum
 * RTO on Linux) and then delivered, and everything behind it waits too (head-of-line blocking).
 * That is what loss costs a TCP connection: stalls and lower throughput, never missing bytes.
 *
 * `percent` is a per-packet probability, like netem's `loss 5%`: a chunk of n bytes spans
 * ceil(n / MSS) packets and stalls if any one of them is lost. So a 64 KiB chunk at 1% loss
 * stalls 37% of the time, as a 64 KiB burst would over a real 1%-loss path.
 */
import { delayStage, type DelayPolicy } from './delay-queue.js';

export const RETRANSMIT_DELAY_MS = 200;
/** A TCP segment's payload on a 1500-byte MTU path with timestamps. */
export const SEGMENT_BYTES = 1448;

/** Probability that a chunk of `bytes` bytes loses at least one of its segments. */
export function stallProbability(percent: number, bytes: number): number {
  const p = Math.min(1, Math.max(0, percent / 100));
  if (p === 0) return 0;
  const segments = Math.max(1, Math.ceil(bytes / SEGMENT_BYTES));
  return 1 - Math.pow(1 - p, segments);
}

export const lossDelay: DelayPolicy = (chunk, config) =>
  chunk.sample < stallProbability(config.lossPercent, chunk.bytes) ? RETRANSMIT_DELAY_MS : 0;

export const loss = delayStage(lossDelay, (c) => c.lossPercent > 0);
