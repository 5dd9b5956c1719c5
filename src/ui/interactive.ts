/**
 * The one place that decides whether to mount the TUI: both ends must be terminals and we must
 * not be under CI. `CI=false`, `CI=0` and an empty `CI` count as not CI (the e2e test spawns
 * the app in a pty with CI=false).
 */
export function isInteractive(
  stdin: { isTTY?: boolean },
  stdout: { isTTY?: boolean },
  env: Record<string, string | undefined>,
): boolean {
  return Boolean(stdin.isTTY) && Boolean(stdout.isTTY) && !isCi(env);
}

export function isCi(env: Record<string, string | undefined>): boolean {
  const ci = env.CI;
  if (ci === undefined) return false;
  const v = ci.trim().toLowerCase();
  return !(v === '' || v === '0' || v === 'false');
}
