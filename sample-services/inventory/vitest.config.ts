import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'sample-inventory',
    include: ['test/**/*.test.ts'],
  },
});
