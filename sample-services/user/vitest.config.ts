import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: 'sample-user',
    include: ['test/**/*.test.ts'],
  },
});
