/**
 * Blackhole: every byte reaching this point while the direction is blackholed is silently
 * dropped and counted. Both sockets stay open and the sender's writes keep succeeding (the
 * relay acknowledges them at the TCP level), which is the Toxiproxy behaviour. It is the last
 * stage, so bytes already in flight in the relay (held by latency, say) are lost too, as they
 * would be on the wire.
 *
 * Note the stream now has a hole: if the direction comes back up, the receiver reads bytes
 * that follow a gap. That is deliberate (a blackholed connection is meant to be abandoned, as
 * QEMU does on migrate-pause); `down` is the fault whose stream survives intact.
 * A direction in state 'cut' drops too, defensively: its connections are being reset.
 */
import type { Stage } from './stage.js';

export const blackhole: Stage = async function* blackhole(input, ctx) {
  for await (const chunk of input) {
    const state = ctx.config.state;
    if (state === 'blackhole' || state === 'cut') {
      ctx.countDropped(chunk.data.length);
      chunk.release?.();
      continue;
    }
    yield chunk;
  }
};
