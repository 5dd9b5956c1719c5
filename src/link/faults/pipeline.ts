/**
 * The fixed order of the stages on each direction, modelled on a real path: the bottleneck
 * serialises bytes at its rate (bandwidth), some are retransmitted (loss), all then propagate
 * (latency), and only then does the cable's state decide their fate (down holds them,
 * blackhole drops them), so bytes in flight share the fate of the wire. Every stage is always
 * present and reads the live config, so a fault can be changed without touching connections.
 */
import { bandwidth } from './bandwidth.js';
import { blackhole } from './blackhole.js';
import { down } from './down.js';
import { latency } from './latency.js';
import { loss } from './loss.js';
import type { Chunk, Stage, StageContext } from './stage.js';

export const STAGES: readonly Stage[] = [bandwidth, loss, latency, down, blackhole];

export function runStages(input: AsyncIterable<Chunk>, ctx: StageContext, stages: readonly Stage[] = STAGES): AsyncIterable<Chunk> {
  return stages.reduce<AsyncIterable<Chunk>>((stream, stage) => stage(stream, ctx), input);
}
