import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    // Integration tests start real OS processes over real TCP; two cores are shared between
    // them, so keep the parallelism modest and the timeouts generous (they bound hangs, they
    // do not assert speed).
    maxWorkers: 2,
    // Ink draws only the last frame when it thinks it runs under CI (it reads CI when it loads);
    // the TUI tests are about what a person sees in a terminal, so they must see every frame.
    // Tests that are about CI behaviour pass their own CI to what they start.
    env: { CI: 'false' },
    testTimeout: 60_000,
    hookTimeout: 30_000,
  },
});
