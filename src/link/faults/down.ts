/**
 * Down: the cable is pulled. Nothing is delivered and both sockets stay open, but no byte is
 * thrown away: the stage stops pulling, so the relay's bounded buffers fill, the socket is no
 * longer read, and the sender's writes block, exactly as a TCP sender stalls when its segments
 * go unacknowledged. When the direction comes back up the held bytes flow on, intact, as TCP
 * retransmission would deliver them. Bytes still held when a connection is torn down are
 * counted as dropped: those are the "bytes lost in buffers" of a failed link.
 */
import { waitForChange, type Stage } from './stage.js';

export const down: Stage = async function* down(input, ctx) {
  for await (const chunk of input) {
    if (ctx.config.state !== 'down') {
      yield chunk;
      continue;
    }
    while (ctx.config.state === 'down' && !ctx.closed) await waitForChange(ctx);
    if (ctx.closed) return;
    // Held until the cable came back: that is when it set off again.
    yield { data: chunk.data, at: Math.max(chunk.at, ctx.clock.now()), release: chunk.release };
  }
};
