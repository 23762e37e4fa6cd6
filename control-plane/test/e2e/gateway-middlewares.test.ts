import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { WebSocket } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_PLANE_DIR, cleanEnv, freePort, run, runControlPlane, type RunningProcess, waitForHttp } from '../support/control-plane-process.js';
import { startRedisServer, type TestRedis } from '../support/redis-server.js';

/**
 * Route middlewares with real processes: two control planes (so two gateways) sharing one Redis, an
 * upstream registered in both, and the same route created in both through the admin API.
 */

const token = `mw-${randomBytes(24).toString('hex')}`;
const apiKey = `key-${randomBytes(16).toString('hex')}`;
let dir: string;
let redis: TestRedis;
let upstream: RunningProcess;
let upstreamPort: number;
const planes: Array<{ process: RunningProcess; api: string; gateway: string; port: number }> = [];

async function count(): Promise<number> {
  return Number(await (await fetch(`http://127.0.0.1:${upstreamPort}/__count`)).text());
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portico-gateway-mw-'));
  redis = await startRedisServer();
  upstreamPort = await freePort();
  upstream = run(process.execPath, ['--import', 'tsx', join(CONTROL_PLANE_DIR, 'test', 'support', 'test-upstream.ts')], {
    cwd: CONTROL_PLANE_DIR,
    env: cleanEnv({ UPSTREAM_NAME: 'guarded-1', UPSTREAM_PORT: String(upstreamPort) }),
  });
  await upstream.waitForOutput('listening guarded-1');
  for (const name of ['a', 'b']) {
    const [port, gatewayPort] = [await freePort(), await freePort()];
    const process = runControlPlane({
      PORTICO_PORT: String(port),
      PORTICO_GATEWAY_PORT: String(gatewayPort),
      PORTICO_DATA_DIR: join(dir, name),
      PORTICO_REDIS_URL: redis.url,
      PORTICO_ADMIN_TOKEN: token,
      PORTICO_LOG_LEVEL: 'warn',
    });
    planes.push({ process, api: `http://127.0.0.1:${port}`, gateway: `http://127.0.0.1:${gatewayPort}`, port: gatewayPort });
  }
  for (const plane of planes) {
    await waitForHttp(`${plane.api}/healthz`);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const registered = await fetch(`${plane.api}/api/v1/instances/guarded-1`, {
      method: 'PUT',
      headers,
      body: JSON.stringify({ service: 'guarded', address: '127.0.0.1', port: upstreamPort, checks: [{ kind: 'ttl', ttl: '5m', status: 'passing' }] }),
    });
    expect(registered.status).toBe(201);
    const route = await fetch(`${plane.api}/api/v1/routes`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        name: 'guarded',
        pathPrefix: '/guarded',
        service: 'guarded',
        stripPrefix: true,
        middlewares: {
          rateLimit: { requestsPerSecond: 1, burst: 6, key: 'consumer', store: 'redis' },
          apiKey: { keys: [{ name: 'shop-frontend', key: apiKey }] },
          cors: { origins: ['https://shop.example'] },
        },
      }),
    });
    expect(route.status, await route.clone().text()).toBe(201);
    const view = (await route.json()) as { middlewares: { apiKey: { keys: Array<{ name: string; hash: string }> } } };
    expect(JSON.stringify(view)).not.toContain(apiKey);
    expect(view.middlewares.apiKey.keys[0]?.name).toBe('shop-frontend');
    // Routable once the instance is (the route's own answer to no key is 401, not 404/503).
    const deadline = Date.now() + 5_000;
    while ((await fetch(`${plane.gateway}/guarded/whoami`)).status !== 401) {
      if (Date.now() > deadline) throw new Error('the route never became routable');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(planes.map((plane) => plane.process.stop('SIGTERM')));
  await upstream?.stop('SIGKILL');
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('route middlewares', () => {
  it('answers 401 without a valid API key, and the instance never sees the request', async () => {
    const before = await count();
    const none = await fetch(`${planes[0]!.gateway}/guarded/echo`);
    const wrong = await fetch(`${planes[0]!.gateway}/guarded/echo`, { headers: { 'x-api-key': `${apiKey}x` } });
    for (const res of [none, wrong]) {
      expect(res.status).toBe(401);
      expect(((await res.json()) as { code: string }).code).toBe('PORTICO_ERR_GATEWAY_UNAUTHORIZED');
    }
    // Nor by asking for a WebSocket.
    const socket = new WebSocket(`ws://127.0.0.1:${planes[0]!.port}/guarded/ws`);
    const outcome = await new Promise<string>((resolve) => {
      socket.addEventListener('open', () => resolve('open'));
      socket.addEventListener('error', () => resolve('refused'));
    });
    expect(outcome).toBe('refused');
    expect(await count()).toBe(before);

    // With the key, the WebSocket passes the route's middlewares and reaches the instance.
    const keyed = new WebSocket(`ws://127.0.0.1:${planes[0]!.port}/guarded/ws`, { headers: { 'x-api-key': apiKey } });
    const echoed = await new Promise<string>((resolve, reject) => {
      keyed.addEventListener('open', () => keyed.send('hello'));
      keyed.addEventListener('message', (event) => resolve(String(event.data)));
      keyed.addEventListener('error', () => reject(new Error('the keyed WebSocket was refused')));
    });
    keyed.close();
    expect(echoed).toBe('guarded-1: hello');
  });

  it('lets a valid key through as its consumer, without forwarding the key', async () => {
    const res = await fetch(`${planes[1]!.gateway}/guarded/echo/x`, { headers: { 'x-api-key': apiKey, origin: 'https://shop.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://shop.example');
    const echo = (await res.json()) as { path: string; headers: Record<string, string> };
    expect(echo.path).toBe('/echo/x');
    expect(echo.headers['x-consumer']).toBe('shop-frontend');
    expect(echo.headers['x-api-key']).toBeUndefined();
  });

  it('sends the same headers again when it retries on another instance', async () => {
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const plane = planes[0]!;
    const deadPort = await freePort();
    for (const [id, port] of [['retry-dead', deadPort], ['retry-live', upstreamPort]] as const) {
      const registered = await fetch(`${plane.api}/api/v1/instances/${id}`, {
        method: 'PUT',
        headers,
        body: JSON.stringify({ service: 'retried', address: '127.0.0.1', port, checks: [{ kind: 'ttl', ttl: '5m', status: 'passing' }] }),
      });
      expect(registered.status).toBe(201);
    }
    const route = await fetch(`${plane.api}/api/v1/routes`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'retried', pathPrefix: '/retried', service: 'retried', stripPrefix: true, middlewares: { apiKey: { keys: [{ name: 'shop-frontend', key: apiKey }] } } }),
    });
    expect(route.status).toBe(201);
    const consumers: string[] = [];
    const deadline = Date.now() + 3_000;
    while (consumers.length < 4 && Date.now() < deadline) {
      const res = await fetch(`${plane.gateway}/retried/echo`, { headers: { 'x-api-key': apiKey } });
      if (res.status !== 200) {
        await res.text();
        continue;
      }
      consumers.push(((await res.json()) as { headers: Record<string, string> }).headers['x-consumer'] ?? '');
    }
    // Round robin over a dead and a live instance: half the requests were retried.
    expect(consumers).toEqual(['shop-frontend', 'shop-frontend', 'shop-frontend', 'shop-frontend']);
  });

  it('answers CORS preflights itself, and refuses origins not allowed', async () => {
    const before = await count();
    const allowed = await fetch(`${planes[0]!.gateway}/guarded/echo`, {
      method: 'OPTIONS',
      headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key, content-type' },
    });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://shop.example');
    expect(allowed.headers.get('access-control-allow-headers')).toBe('x-api-key, content-type');
    const refused = await fetch(`${planes[0]!.gateway}/guarded/echo`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(refused.status).toBe(403);
    expect(await count()).toBe(before);
  });

  it('limits a consumer across both gateways through Redis: 429 with Retry-After, one shared bucket', async () => {
    // A fresh consumer's bucket: the previous tests spent some of shop-frontend's burst; wait for it to refill.
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    const before = await count();
    const answers: Array<{ status: number; retryAfter: string | null }> = [];
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${planes[i % 2]!.gateway}/guarded/whoami`, { headers: { 'x-api-key': apiKey } });
      await res.text();
      answers.push({ status: res.status, retryAfter: res.headers.get('retry-after') });
    }
    const passed = answers.filter((answer) => answer.status === 200).length;
    // Burst 6 at 1/s, shared: about 6 of 12 pass (a token may refill during the run). Per gateway
    // (not shared), each would have passed its 6, so all 12.
    expect(passed).toBeGreaterThanOrEqual(6);
    expect(passed).toBeLessThanOrEqual(7);
    const limited = answers.filter((answer) => answer.status === 429);
    expect(limited.every((answer) => Number(answer.retryAfter) >= 1)).toBe(true);
    expect((await count()) - before).toBe(passed);
  }, 20_000);

  it('replays GET answers from its cache until the TTL, never a no-store one, and never POSTs', async () => {
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const created = await fetch(`${planes[1]!.api}/api/v1/routes`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'cached', pathPrefix: '/cached', service: 'guarded', stripPrefix: true, middlewares: { cache: { ttlSeconds: 1 } } }),
    });
    expect(created.status).toBe(201);
    const get = async (path: string, method = 'GET') => {
      const res = await fetch(`${planes[1]!.gateway}${path}`, { method });
      return { status: res.status, cache: res.headers.get('x-cache'), body: await res.text() };
    };
    const deadline = Date.now() + 3_000;
    let first = await get('/cached/counted');
    while (first.status === 404 && Date.now() < deadline) first = await get('/cached/counted');
    expect(first).toMatchObject({ status: 200, cache: 'MISS' });
    const before = await count();
    const second = await get('/cached/counted');
    expect(second).toEqual({ status: 200, cache: 'HIT', body: first.body });
    expect(await count()).toBe(before);
    // Another path is another entry.
    expect((await get('/cached/counted?page=2')).cache).toBe('MISS');

    const noStore = [await get('/cached/counted-nostore'), await get('/cached/counted-nostore')];
    expect(noStore.map((answer) => answer.cache)).toEqual(['MISS', 'MISS']);
    expect(noStore[0]!.body).not.toBe(noStore[1]!.body);

    const posts = [await get('/cached/counted', 'POST'), await get('/cached/counted', 'POST')];
    expect(posts[0]!.body).not.toBe(posts[1]!.body);

    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const expired = await get('/cached/counted');
    expect(expired.cache).toBe('MISS');
    expect(expired.body).not.toBe(first.body);
  });

  describe('JWT from an identity provider', () => {
    let provider: Server;
    let issuer: string;
    let sign: (claims: Record<string, unknown>, options?: { expiresIn?: string; audience?: string; key?: 'trusted' | 'stranger' }) => Promise<string>;

    beforeAll(async () => {
      const trusted = await generateKeyPair('ES256');
      const stranger = await generateKeyPair('ES256');
      const jwk: JWK = { ...(await exportJWK(trusted.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
      provider = createServer((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(req.url === '/.well-known/jwks.json' ? JSON.stringify({ keys: [jwk] }) : '{}');
      });
      await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
      const { port } = provider.address() as { port: number };
      issuer = `http://127.0.0.1:${port}`;
      sign = (claims, options = {}) =>
        new SignJWT(claims)
          .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
          .setIssuer(issuer)
          .setAudience(options.audience ?? 'shop-api')
          .setIssuedAt()
          .setExpirationTime(options.expiresIn ?? '5m')
          .sign(options.key === 'stranger' ? stranger.privateKey : trusted.privateKey);
      const route = await fetch(`${planes[0]!.api}/api/v1/routes`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'secured',
          pathPrefix: '/secured',
          service: 'guarded',
          stripPrefix: true,
          middlewares: { jwt: { issuer, audience: 'shop-api', jwksUrl: `${issuer}/.well-known/jwks.json`, claims: { sub: 'x-auth-subject', role: 'x-auth-role' } } },
        }),
      });
      expect(route.status, await route.clone().text()).toBe(201);
    });

    afterAll(async () => {
      await new Promise((resolve) => provider.close(resolve));
    });

    it('forwards a valid token\'s verified claims, and never a client\'s own copy of those headers', async () => {
      const jwt = await sign({ sub: 'user-42', role: 'buyer' });
      const deadline = Date.now() + 3_000;
      let res = await fetch(`${planes[0]!.gateway}/secured/echo/me`, { headers: { authorization: `Bearer ${jwt}`, 'x-auth-subject': 'admin' } });
      while (res.status === 404 && Date.now() < deadline) {
        await res.text();
        res = await fetch(`${planes[0]!.gateway}/secured/echo/me`, { headers: { authorization: `Bearer ${jwt}`, 'x-auth-subject': 'admin' } });
      }
      expect(res.status).toBe(200);
      const echo = (await res.json()) as { headers: Record<string, string> };
      expect(echo.headers['x-auth-subject']).toBe('user-42');
      expect(echo.headers['x-auth-role']).toBe('buyer');
    });

    it.each([
      ['no token', async () => undefined],
      ['a bad signature', async () => sign({ sub: 'u' }, { key: 'stranger' })],
      ['an expired token', async () => sign({ sub: 'u' }, { expiresIn: '-1m' })],
      ['the wrong audience', async () => sign({ sub: 'u' }, { audience: 'other-api' })],
      ['garbage', async () => 'not.a.jwt'],
    ])('answers 401 for %s, and the instance never sees the request', async (_case, make) => {
      const jwt = await make();
      const before = await count();
      const res = await fetch(`${planes[0]!.gateway}/secured/echo/me`, jwt === undefined ? {} : { headers: { authorization: `Bearer ${jwt}` } });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(((await res.json()) as { code: string }).code).toBe('PORTICO_ERR_GATEWAY_UNAUTHORIZED');
      expect(await count()).toBe(before);
    });
  });
});
