import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    // Integration tests start real OS processes over real TCP; two cores are shared between
    // them, so keep the parallelism modest and the timeouts generous (they bound hangs, they
    // do not assert speed).
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 30_000,
  },
});
