import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, run, runControlPlane, type RunningProcess, waitForHttp } from '../support/control-plane-process.js';

const INTERVAL_MS = 1000;
const TIMEOUT_MS = 500;

/** A real service in its own process: answers 200 on /health until it is killed. */
function startService(port: number): RunningProcess {
  const source = `require('node:http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1', () => console.log('up'))`;
  return run(process.execPath, ['-e', source], { cwd: tmpdir(), env: process.env });
}

describe('an HTTP check run by the control plane', () => {
  let dir: string;
  let controlPlane: RunningProcess;
  let base: string;
  const token = `e2e-${randomBytes(24).toString('hex')}`;
  const headers = { 'x-consul-token': token };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-http-check-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    controlPlane = runControlPlane({ PORTICO_PORT: String(port), PORTICO_DATA_DIR: dir, PORTICO_ADMIN_TOKEN: token, PORTICO_LOG_LEVEL: 'warn' });
    await waitForHttp(`${base}/healthz`);
  });
  afterAll(async () => {
    await controlPlane.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('takes a killed instance out of ?passing within interval + timeout, and wakes a blocking query', async () => {
    const servicePort = await freePort();
    const service = startService(servicePort);
    await service.waitForOutput('up');
    const name = `killed-${randomBytes(4).toString('hex')}`;
    const register = await fetch(`${base}/v1/agent/service/register`, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({
        Name: name,
        ID: `${name}-1`,
        Address: '127.0.0.1',
        Port: servicePort,
        Check: { HTTP: `http://127.0.0.1:${servicePort}/health`, Interval: `${INTERVAL_MS}ms`, Timeout: `${TIMEOUT_MS}ms` },
      }),
    });
    expect(register.status, await register.text()).toBe(200);

    // Critical until the first probe passes (within one interval, with jitter).
    let index = '0';
    const deadline = Date.now() + 5 * INTERVAL_MS;
    for (;;) {
      const res = await fetch(`${base}/v1/health/service/${name}?passing`, { headers });
      index = res.headers.get('x-consul-index') ?? '0';
      if (((await res.json()) as unknown[]).length === 1) break;
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const blocking = fetch(`${base}/v1/health/service/${name}?passing&index=${index}&wait=30s`, { headers }).then(async (res) => ({
      at: Date.now(),
      index: Number(res.headers.get('x-consul-index')),
      passing: ((await res.json()) as unknown[]).length,
    }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const killedAt = Date.now();
    await service.stop('SIGKILL');

    const woke = await blocking;
    const elapsed = woke.at - killedAt;
    expect(woke.index).toBeGreaterThan(Number(index));
    expect(woke.passing).toBe(0);
    // The next probe comes within one interval (plus its jitter) and fails at once (connection refused).
    expect(elapsed).toBeLessThan(INTERVAL_MS * 1.1 + TIMEOUT_MS + 300);
    const after = (await (await fetch(`${base}/v1/health/service/${name}`, { headers })).json()) as Array<{ Checks: Array<{ Status: string; Output: string; ServiceID: string }> }>;
    const check = after[0]?.Checks.find((c) => c.ServiceID === `${name}-1`);
    expect(check?.Status).toBe('critical');
    expect(check?.Output).toMatch(/refused/i);
  });
});
