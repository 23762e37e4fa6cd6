import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'sdk',
    include: ['test/**/*.test.ts'],
    // The e2e tests run the control plane as a real process and restart it.
    testTimeout: 30_000,
    hookTimeout: 40_000,
  },
});
