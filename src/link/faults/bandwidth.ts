/**
 * A bandwidth cap: a token bucket in bytes per second, shared by every connection in one
 * direction (a cap is a property of the link, as tbf's is of an interface).
 *
 * Backpressure is the point. While the bucket is empty the stage does not pull its next chunk,
 * so nothing upstream does either, back to the socket: Node stops reading it, the kernel's
 * receive window closes, and the sender's writes really block. The relay holds at most one
 * chunk per connection here, however fast the sender tries to go.
 */
import { waitForChange, type Stage } from './stage.js';
import { sliceBytes } from '../../util/token-bucket.js';

export const bandwidth: Stage = async function* bandwidth(input, ctx) {
  for await (const chunk of input) {
    const { data } = chunk;
    let offset = 0;
    while (offset < data.length) {
      if (ctx.closed) return;
      const rate = ctx.bucket.bytesPerSec;
      if (rate <= 0) {
        yield offset === 0 ? chunk : { data: data.subarray(offset), at: Math.max(chunk.at, ctx.clock.now()), release: chunk.release };
        break;
      }
      const n = Math.min(data.length - offset, sliceBytes(rate));
      let at = chunk.at;
      let wait = ctx.bucket.take(n);
      // A rate change resets the bucket's debt, so re-ask after every wake-up.
      while (wait > 0 && !ctx.closed) {
        const due = ctx.clock.now() + wait;
        await waitForChange(ctx, wait);
        // The slice left when the bucket had its tokens, however late the timer fired (or
        // earlier, when a rate change woke it).
        at = Math.max(chunk.at, Math.min(due, ctx.clock.now()));
        wait = ctx.bucket.waitMs();
      }
      if (ctx.closed) return;
      offset += n;
      // The buffer goes back with the last piece: the pieces are written in order.
      yield { data: data.subarray(offset - n, offset), at, release: offset >= data.length ? chunk.release : undefined };
    }
  }
};
