import { defineConfig } from 'vitest/config';

// One vitest project per workspace; each workspace's own vitest.config.ts says how its tests run.
export default defineConfig({
  test: {
    projects: ['control-plane', 'agents/*', 'sample-services/*', 'dashboard'],
  },
});
