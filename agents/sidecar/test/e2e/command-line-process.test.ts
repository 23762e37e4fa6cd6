import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnv, run } from '../../../sdk/test/support/portico.js';
import { SIDECAR_DIR, startSidecar } from '../support/sidecar.js';

describe('the portico-agent process', () => {
  it('exits 2 with a usage error for bad flags, before anything else', async () => {
    const started = startSidecar(['--service', 'catalog', '--port', '4002', '--interval', '10'], 'ptc_secret');
    expect(await started.exited).toBe(2);
    expect(started.output()).toMatch(/error: option '--interval <duration>' argument '10' is invalid\. "10" is not a duration/);
    expect(started.output()).toContain('portico-agent --help');
  });

  it('prints its flags and exits 0 with --help, through its bin', async () => {
    const started = run(process.execPath, [join(SIDECAR_DIR, 'bin', 'portico-agent.js'), '--help'], { cwd: SIDECAR_DIR, env: cleanEnv({}) });
    expect(await started.exited).toBe(0);
    expect(started.output()).toMatch(/^Usage: portico-agent --service <name> --port <port>/);
  });

  it('starts the service even when the control plane cannot be reached, and exits with its code', async () => {
    const started = startSidecar(['--service', 'catalog', '--port', '4002', '--control-plane', 'http://127.0.0.1:1', '--', process.execPath, '-e', "console.log('child started'); setTimeout(() => process.exit(5), 300)"], 'ptc_secret');
    expect(await started.exited).toBe(5);
    expect(started.output()).toContain('child started');
    expect(started.output()).toContain('"msg":"control plane unreachable: retrying with backoff; the local check keeps running"');
  });

  it('exits 127 when the command cannot be started', async () => {
    const started = startSidecar(['--service', 'catalog', '--port', '4002', '--control-plane', 'http://127.0.0.1:1', '--', '/nonexistent/portico-test-command'], 'ptc_secret');
    expect(await started.exited).toBe(127);
    expect(started.output()).toMatch(/"msg":"could not start the service"/);
  });
});
