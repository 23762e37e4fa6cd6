import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { type AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { withJitter } from '../../../src/consul-api/blocking-query.js';
import { startRedisServer } from '../../support/redis-server.js';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { consulToken, put, read, register, uniqueName } from './consul-support.js';

/** A GET over a real socket; resolves with the status, headers and body, or rejects when the socket dies. */
function get(port: number, path: string, secret: string): { request: ClientRequest; response: Promise<{ res: IncomingMessage; body: string }> } {
  const request = httpRequest({ host: '127.0.0.1', port, path, headers: consulToken(secret) });
  const response = new Promise<{ res: IncomingMessage; body: string }>((resolve, reject) => {
    request.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ res, body }));
      res.on('error', reject);
    });
    request.on('error', reject);
  });
  request.end();
  return { request, response };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait until `condition` holds, polling; fails after `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('Consul API: blocking queries', () => {
  let redis: Awaited<ReturnType<typeof startRedisServer>>;
  let t: TestApp;

  beforeAll(async () => {
    redis = await startRedisServer();
    t = await createTestApp({ redisUrl: redis.url });
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await t.close();
    await redis.stop();
  });

  async function ttlService(): Promise<string> {
    const name = uniqueName();
    const res = await register(t, { Name: name, Port: 80, Check: { TTL: '1m' } });
    expect(res.statusCode, res.body).toBe(200);
    return name;
  }

  it('holds a read at the current index until a change, then answers with the new state and index', async () => {
    const name = await ttlService();
    const { index } = await read(t, `/v1/health/service/${name}`);
    const waitSpy = vi.spyOn(t.registry, 'waitForChange');

    const started = Date.now();
    const blocked = t.app.inject({ method: 'GET', url: `/v1/health/service/${name}?index=${index}&wait=5s`, headers: consulToken(t.adminToken) });
    await until(() => waitSpy.mock.calls.length === 1);
    expect(waitSpy.mock.calls[0]?.[1]).toMatchObject({ service: name });
    await put(t, `/v1/agent/check/pass/service:${name}?note=up`);

    const res = await blocked;
    expect(res.statusCode).toBe(200);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(Number(res.headers['x-consul-index'])).toBeGreaterThan(index);
    expect(res.json()[0].Checks[0]).toMatchObject({ Status: 'passing', Output: 'up' });
  });

  it('answers at the end of the wait with the same index when nothing changed', async () => {
    const name = await ttlService();
    const { index, body } = await read(t, `/v1/health/service/${name}`);
    const started = Date.now();
    const res = await t.app.inject({ method: 'GET', url: `/v1/health/service/${name}?index=${index}&wait=400ms`, headers: consulToken(t.adminToken) });
    const elapsed = Date.now() - started;
    expect(res.statusCode).toBe(200);
    expect(elapsed).toBeGreaterThanOrEqual(390);
    expect(elapsed).toBeLessThan(400 + 400 / 16 + 500);
    expect(Number(res.headers['x-consul-index'])).toBe(index);
    expect(res.json()).toEqual(body);
  });

  it('is not woken by changes to other services, and answers at once for an index already passed', async () => {
    const name = await ttlService();
    const { index } = await read(t, `/v1/catalog/service/${name}`);
    const started = Date.now();
    const blocked = t.app.inject({ method: 'GET', url: `/v1/catalog/service/${name}?index=${index}&wait=500ms`, headers: consulToken(t.adminToken) });
    await sleep(50);
    await ttlService();
    const res = await blocked;
    expect(Date.now() - started).toBeGreaterThanOrEqual(490);
    expect(Number(res.headers['x-consul-index'])).toBe(index);

    const stale = Date.now();
    const past = await t.app.inject({ method: 'GET', url: `/v1/catalog/services?index=1&wait=5s`, headers: consulToken(t.adminToken) });
    expect(Date.now() - stale).toBeLessThan(1_000);
    expect(Number(past.headers['x-consul-index'])).toBeGreaterThan(1);
  });

  it('wakes a blocked /v1/catalog/services when a service appears', async () => {
    const { index } = await read<Record<string, string[]>>(t, '/v1/catalog/services');
    const blocked = t.app.inject({ method: 'GET', url: `/v1/catalog/services?index=${index}&wait=5s`, headers: consulToken(t.adminToken) });
    await sleep(50);
    const name = await ttlService();
    const res = await blocked;
    expect(Number(res.headers['x-consul-index'])).toBeGreaterThan(index);
    expect(Object.keys(res.json())).toContain(name);
  });

  it('adds at most wait/16 of jitter, as Consul does', () => {
    expect(withJitter(160_000, () => 0)).toBe(160_000);
    expect(withJitter(160_000, () => 0.999999)).toBe(169_999);
    expect(withJitter(160_000, () => 0.5)).toBe(165_000);
  });

  describe('over a real socket', () => {
    let port: number;
    beforeAll(async () => {
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      port = (t.app.server.address() as AddressInfo).port;
    });

    it('serves a blocking read, woken by a change', async () => {
      const name = await ttlService();
      const { index } = await read(t, `/v1/health/service/${name}`);
      const { response } = get(port, `/v1/health/service/${name}?index=${index}&wait=5s`, t.adminToken);
      await sleep(100);
      await put(t, `/v1/agent/check/warn/${`service:${name}`}`);
      const { res, body } = await response;
      expect(res.statusCode).toBe(200);
      expect(Number(res.headers['x-consul-index'])).toBeGreaterThan(index);
      expect(JSON.parse(body)[0].Checks[0].Status).toBe('warning');
    });

    it('lets go of the wait when the client disconnects, and later changes still go through', async () => {
      const name = await ttlService();
      const { index } = await read(t, `/v1/health/service/${name}`);
      const waits: Array<Promise<number>> = [];
      const original = t.registry.waitForChange.bind(t.registry);
      vi.spyOn(t.registry, 'waitForChange').mockImplementation((after, options) => {
        const wait = original(after, options);
        waits.push(wait);
        return wait;
      });
      const errors: unknown[] = [];
      const onUnhandled = (error: unknown): void => void errors.push(error);
      process.on('unhandledRejection', onUnhandled);
      onTestFinished(() => void process.off('unhandledRejection', onUnhandled));

      const { request, response } = get(port, `/v1/health/service/${name}?index=${index}&wait=5s`, t.adminToken);
      response.catch(() => undefined);
      await until(() => waits.length === 1);
      const abandoned = Date.now();
      request.destroy();

      // The backend's wait ends with the connection, not five seconds later.
      const settled = await Promise.race([waits[0]!.then(() => 'settled'), sleep(1_500).then(() => 'still waiting')]);
      expect(settled).toBe('settled');
      expect(Date.now() - abandoned).toBeLessThan(1_500);

      await put(t, `/v1/agent/check/pass/service:${name}`);
      await put(t, `/v1/agent/check/fail/service:${name}`);
      const after = await read(t, `/v1/health/service/${name}`);
      expect(after.index).toBeGreaterThan(index);
      await sleep(50);
      expect(errors).toEqual([]);
      expect(t.logLines.filter((line) => line.includes('"level":50'))).toEqual([]);
    });
  });

  it('answers blocked reads at once when the server closes', async () => {
    const other = await createTestApp({ redisUrl: redis.url });
    let closed = false;
    try {
      await other.app.listen({ port: 0, host: '127.0.0.1' });
      const port = (other.app.server.address() as AddressInfo).port;
      const { index } = await read(other, '/v1/catalog/services');
      const waitSpy = vi.spyOn(other.registry, 'waitForChange');
      const { response } = get(port, `/v1/catalog/services?index=${index}&wait=5m`, other.adminToken);
      await until(() => waitSpy.mock.calls.length === 1);

      const started = Date.now();
      await other.close();
      closed = true;
      expect(Date.now() - started).toBeLessThan(3_000);
      const { res } = await response;
      expect(res.statusCode).toBe(200);
      expect(Number(res.headers['x-consul-index'])).toBe(index);
    } finally {
      if (!closed) await other.close();
    }
  });
});
