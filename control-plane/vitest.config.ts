import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'control-plane',
    include: ['test/**/*.test.ts'],
    // Integration tests start real processes (control plane, redis-server) and talk to PostgreSQL.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
