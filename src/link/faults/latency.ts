/**
 * Latency with jitter, delivered in order: each chunk leaves at
 * max(previous chunk's departure, arrival + latency ± jitter). Jitter is uniform in
 * [-jitterMs, +jitterMs] around the latency (as netem's `delay 100ms 10ms`, so the relay and
 * the kernel link mean the same thing), never below zero; keeping order means jitter bunches
 * chunks rather than reordering them, as it must on one TCP stream.
 */
import { delayStage, type DelayPolicy } from './delay-queue.js';

export const latencyDelay: DelayPolicy = (chunk, config) => {
  if (config.latencyMs <= 0 && config.jitterMs <= 0) return 0;
  return Math.max(0, config.latencyMs + (2 * chunk.sample - 1) * config.jitterMs);
};

export const latency = delayStage(latencyDelay, (c) => c.latencyMs > 0 || c.jitterMs > 0);
