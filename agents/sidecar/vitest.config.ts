import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'sidecar',
    include: ['test/**/*.test.ts'],
    // The e2e tests run the control plane and the sidecar as real processes; one keeps the control
    // plane down for 30 s.
    testTimeout: 60_000,
    hookTimeout: 40_000,
  },
});
