/**
 * The strategies `compare` puts side by side, and what each one means in QMP terms: which
 * capabilities are set on both sides, and when (if ever) the source is switched to postcopy.
 * One table, so the command line, the lab field and the runner all read the same definitions.
 */

/** A strategy's name as the user writes it (postcopy-after-N carries its N). */
export type StrategyName = 'precopy' | 'auto-converge' | 'dirty-limit' | 'postcopy' | `postcopy-after-${number}` | 'precopy-postcopy-ram';

export interface StrategyPlan {
  name: StrategyName;
  /** migrate-set-capabilities on both sides (events always on). */
  capabilities: Record<string, boolean>;
  /**
   * When to send migrate-start-postcopy: null never, 0 right after migrate, N after N precopy
   * passes (dirty syncs after the one at setup).
   */
  postcopyAfterPasses: number | null;
  /** One line for the user: what this strategy is. */
  description: string;
}

/** The order the table shows them in: plain precopy first, then the throttles, then postcopy. */
export const STRATEGY_BASES = ['precopy', 'auto-converge', 'dirty-limit', 'postcopy', 'postcopy-after', 'precopy-postcopy-ram'] as const;
export const DEFAULT_POSTCOPY_AFTER = 2;
export const MAX_POSTCOPY_AFTER = 1000;

const POSTCOPY_CAPS = { 'postcopy-ram': true, 'return-path': true };

/** What `--strategies` accepts, for messages. */
export const STRATEGIES_EXPECTED = `a comma-separated list of ${STRATEGY_BASES.join(', ')} (postcopy-after-N names its N, e.g. postcopy-after-3)`;

export class StrategyError extends Error {}

/**
 * One name → its plan. `postcopy-after` alone takes N from `postcopyAfter` (`--postcopy-after`);
 * `postcopy-after-3` names it. Throws StrategyError naming what is allowed.
 */
export function planStrategy(raw: string, postcopyAfter = DEFAULT_POSTCOPY_AFTER): StrategyPlan {
  const name = raw.trim();
  switch (name) {
    case 'precopy':
      return { name, capabilities: {}, postcopyAfterPasses: null, description: 'precopy alone: passes until the rest fits the downtime limit' };
    case 'auto-converge':
      return { name, capabilities: { 'auto-converge': true }, postcopyAfterPasses: null, description: 'precopy, vCPUs throttled step by step (auto-converge)' };
    case 'dirty-limit':
      return { name, capabilities: { 'dirty-limit': true }, postcopyAfterPasses: null, description: "precopy, each vCPU's dirty rate capped (dirty-limit, QEMU 8.1+)" };
    case 'postcopy':
      return { name, capabilities: POSTCOPY_CAPS, postcopyAfterPasses: 0, description: 'postcopy, switched over as soon as migrate starts' };
    case 'precopy-postcopy-ram':
      return {
        name,
        capabilities: POSTCOPY_CAPS,
        postcopyAfterPasses: null,
        description: 'precopy with postcopy-ram enabled but never switched over (is precopy slower with it on?)',
      };
  }
  const m = /^postcopy-after(?:-(\d+))?$/.exec(name);
  if (m) {
    const n = m[1] === undefined ? postcopyAfter : Number(m[1]);
    if (!Number.isSafeInteger(n) || n < 1 || n > MAX_POSTCOPY_AFTER) throw new StrategyError(`strategy '${name}': N must be a whole number of passes from 1 to ${MAX_POSTCOPY_AFTER}`);
    return { name: `postcopy-after-${n}`, capabilities: POSTCOPY_CAPS, postcopyAfterPasses: n, description: `postcopy after ${n} precopy pass${n === 1 ? '' : 'es'}` };
  }
  throw new StrategyError(`'${name}' is not a strategy (expected ${STRATEGIES_EXPECTED})`);
}

/** A list of names (from --strategies or a lab) → plans; refuses an empty list and duplicates. */
export function planStrategies(names: readonly string[], postcopyAfter = DEFAULT_POSTCOPY_AFTER): StrategyPlan[] {
  if (names.length === 0) throw new StrategyError(`no strategies given (expected ${STRATEGIES_EXPECTED})`);
  const plans = names.map((n) => planStrategy(n, postcopyAfter));
  const seen = new Set<string>();
  for (const p of plans) {
    if (seen.has(p.name)) throw new StrategyError(`strategy '${p.name}' is listed twice`);
    seen.add(p.name);
  }
  return plans;
}

/** Every strategy, in the table's order. */
export function allStrategies(postcopyAfter = DEFAULT_POSTCOPY_AFTER): StrategyPlan[] {
  return STRATEGY_BASES.map((b) => planStrategy(b, postcopyAfter));
}
