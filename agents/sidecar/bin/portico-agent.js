#!/usr/bin/env node
// portico-agent. Runs the bundle (`npm run build -w @portico/sidecar`, one file with the SDK inside)
// when it exists, so no TypeScript loader is in memory at run time; from a fresh checkout without
// a build, it runs the sources through tsx instead (about 30 MB more memory).
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const bundle = new URL('../dist/portico-agent.js', import.meta.url);
if (existsSync(bundle)) {
  await import(bundle.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/main.ts', import.meta.url).href);
}
