import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildControlPlane,
  cleanEnv,
  CONTROL_PLANE_DIR,
  freePort,
  REPO_ROOT,
  run,
  runControlPlane,
  type RunningProcess,
  waitForHttp,
} from '../support/control-plane-process.js';

/**
 * `portico gateway`: the gateway as a process of its own, following a control plane (its registry
 * through /api/v1/services and /api/v1/events, its routes through /api/v1/routes and
 * /api/v1/routes/events) with a viewer token. Real processes throughout: a control plane, a
 * standalone gateway pointed at it, and upstream services, registered through the admin API.
 */

const adminToken = `gws-${randomBytes(24).toString('hex')}`;
let dataDir: string;
let unusedDataDir: string;
let controlPlane: RunningProcess;
let controlPlaneEnv: Record<string, string>;
let standalone: RunningProcess;
let api: string;
/** The control plane's own gateway, in its process. */
let inProcess: string;
/** The standalone gateway's gateway port, and its port for /healthz, /readyz and /metrics. */
let gateway: string;
let gatewayHealth: string;
let viewerToken: string;
const processes: RunningProcess[] = [];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function adminCall(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${api}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function startUpstream(name: string): Promise<{ name: string; port: number }> {
  const port = await freePort();
  const child = run(process.execPath, ['--import', 'tsx', join(CONTROL_PLANE_DIR, 'test', 'support', 'test-upstream.ts')], {
    cwd: CONTROL_PLANE_DIR,
    env: cleanEnv({ UPSTREAM_NAME: name, UPSTREAM_PORT: String(port) }),
  });
  processes.push(child);
  await child.waitForOutput(`listening ${name}`);
  return { name, port };
}

async function register(service: string, id: string, port: number): Promise<void> {
  const res = await adminCall('PUT', `/instances/${id}`, { service, address: '127.0.0.1', port, checks: [{ kind: 'ttl', ttl: '10m', status: 'passing' }] });
  expect(res.status, await res.clone().text()).toBe(201);
}

/** GET `url` until `accept` says yes; returns that answer. */
async function until(url: string, accept: (status: number, body: string) => boolean, what: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    try {
      const res = await fetch(url);
      const body = await res.text();
      if (accept(res.status, body)) return { status: res.status, body };
      last = `${res.status} ${body.slice(0, 200)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: ${url} still answers ${last}`);
    await sleep(25);
  }
}

const ok = (name: string) => (status: number, body: string) => status === 200 && body === name;
const code = (status: number, errorCode: string) => (got: number, body: string) => got === status && body.includes(`"${errorCode}"`);

function startStandalone(env: Record<string, string>): RunningProcess {
  const child = runControlPlane(env, { args: ['gateway'] });
  processes.push(child);
  return child;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'portico-gws-'));
  unusedDataDir = join(dataDir, 'gateway-must-not-make-this');
  const port = await freePort();
  api = `http://127.0.0.1:${port}`;
  const inProcessPort = await freePort();
  inProcess = `http://127.0.0.1:${inProcessPort}`;
  controlPlaneEnv = {
    PORTICO_PORT: String(port),
    PORTICO_GATEWAY_PORT: String(inProcessPort),
    PORTICO_DATA_DIR: dataDir,
    PORTICO_ADMIN_TOKEN: adminToken,
    PORTICO_LOG_LEVEL: 'warn',
  };
  controlPlane = runControlPlane(controlPlaneEnv);
  await waitForHttp(`${api}/healthz`);

  const made = await adminCall('POST', '/tokens', { name: 'standalone-gateway', role: 'viewer' });
  expect(made.status).toBe(201);
  viewerToken = ((await made.json()) as { secret: string }).secret;

  const healthPort = await freePort();
  const gatewayPort = await freePort();
  gateway = `http://127.0.0.1:${gatewayPort}`;
  gatewayHealth = `http://127.0.0.1:${healthPort}`;
  standalone = startStandalone({
    PORTICO_PORT: String(healthPort),
    PORTICO_GATEWAY_PORT: String(gatewayPort),
    PORTICO_GATEWAY_CONTROL_PLANE: api,
    PORTICO_GATEWAY_TOKEN: viewerToken,
    PORTICO_GATEWAY_TIMEOUT: '2s',
    // Neither made nor read: the gateway alone has no store and no private redis-server.
    PORTICO_DATA_DIR: unusedDataDir,
    // Nothing listens there: rate limits kept in Redis fail open.
    PORTICO_REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
    PORTICO_LOG_LEVEL: 'info',
  });
  await standalone.waitForOutput('"msg":"gateway listening"');
}, 60_000);

afterAll(async () => {
  await standalone?.stop('SIGTERM');
  await controlPlane?.stop('SIGTERM');
  await Promise.all(processes.map((child) => child.stop('SIGKILL')));
  await rm(dataDir, { recursive: true, force: true });
});

describe('the gateway on its own (main.js gateway)', () => {
  it('is ready once it has read the registry and the routes, and makes no store nor Redis of its own', async () => {
    const ready = await fetch(`${gatewayHealth}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { registry: { ok: true }, routes: { ok: true } } });
    expect((await fetch(`${gatewayHealth}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${gatewayHealth}/metrics`)).text();
    expect(metrics).toContain('portico_gateway_requests_total');
    expect(metrics).toContain('process_resident_memory_bytes');
    expect(metrics).toContain('portico_gateway_source_up{source="registry"} 1');
    expect(metrics).toContain('portico_gateway_source_up{source="routes"} 1');
    expect(existsSync(unusedDataDir)).toBe(false);
    expect(standalone.output()).not.toMatch(/redis-server|migrat/i);
  });

  it('serves neither the admin API nor the Consul-compatible API, on either of its ports', async () => {
    for (const path of ['/api/v1/me', '/api/v1/services', '/api/v1/routes', '/api/v1/events', '/v1/agent/self', '/v1/catalog/services', '/api/openapi.json']) {
      const health = await fetch(`${gatewayHealth}${path}`, { headers: { authorization: `Bearer ${adminToken}` } });
      expect(health.status, path).toBe(404);
      expect(((await health.json()) as { code: string }).code).toBe('PORTICO_ERR_REQUEST_NOT_FOUND');
      const proxied = await fetch(`${gateway}${path}`, { headers: { authorization: `Bearer ${adminToken}` } });
      expect(proxied.status, path).toBe(404);
      expect(((await proxied.json()) as { code: string }).code).toBe('PORTICO_ERR_GATEWAY_SERVICE_NOT_FOUND');
    }
    for (const path of ['/metrics', '/healthz', '/readyz']) expect((await fetch(`${gateway}${path}`)).status, path).toBe(404);
  });

  it('routes to instances registered through the admin API, and answers as the in-process gateway does when they leave', async () => {
    const service = `solo-${randomUUID().slice(0, 8)}`;
    const a = await startUpstream(`${service}-a`);
    const b = await startUpstream(`${service}-b`);
    await register(service, a.name, a.port);
    await register(service, b.name, b.port);
    for (const base of [gateway, inProcess]) {
      await until(`${base}/${service}/whoami`, ok(a.name), `${a.name} through ${base}`);
      await until(`${base}/${service}/whoami`, ok(b.name), `${b.name} through ${base}`);
    }
    const echoed = JSON.parse((await until(`${gateway}/${service}/echo/x?y=1`, (status) => status === 200, 'echo')).body) as { path: string };
    expect(echoed.path).toBe('/echo/x?y=1');

    // Failing its check: 503 from both.
    for (const instance of [a, b]) expect((await adminCall('PUT', `/instances/${instance.name}/health`, { status: 'critical' })).status).toBe(200);
    for (const base of [gateway, inProcess]) await until(`${base}/${service}/whoami`, code(503, 'PORTICO_ERR_GATEWAY_NO_HEALTHY_INSTANCE'), `503 from ${base}`);

    // Deregistered: 404 from both.
    for (const instance of [a, b]) expect((await adminCall('DELETE', `/instances/${instance.name}`)).status).toBe(204);
    const answers = await Promise.all(
      [gateway, inProcess].map((base) => until(`${base}/${service}/whoami`, code(404, 'PORTICO_ERR_GATEWAY_SERVICE_NOT_FOUND'), `404 from ${base}`)),
    );
    expect(answers[0]).toEqual(answers[1]);
  });

  it('applies routes created, changed and deleted through the API without a restart', async () => {
    const service = `routed-${randomUUID().slice(0, 8)}`;
    const other = `other-${randomUUID().slice(0, 8)}`;
    const upstream = await startUpstream(`${service}-a`);
    const otherUpstream = await startUpstream(`${other}-a`);
    await register(service, upstream.name, upstream.port);
    await register(other, otherUpstream.name, otherUpstream.port);

    const name = `shop-${randomUUID().slice(0, 8)}`;
    const created = await adminCall('POST', '/routes', { name, pathPrefix: `/${name}`, service, stripPrefix: true, timeout: '500ms' });
    expect(created.status).toBe(201);
    const id = ((await created.json()) as { id: string }).id;
    await until(`${gateway}/${name}/whoami`, ok(upstream.name), 'the new route');
    // The route's own timeout came across: 500 ms, not the gateway's 2 s.
    const slow = await fetch(`${gateway}/${name}/slow/1500`);
    expect(slow.status).toBe(504);
    expect(((await slow.json()) as { code: string }).code).toBe('PORTICO_ERR_GATEWAY_UPSTREAM_TIMEOUT');

    const replaced = await adminCall('PUT', `/routes/${id}`, {
      name,
      pathPrefix: `/${name}`,
      service: other,
      stripPrefix: true,
      // Kept in a Redis that does not answer: requests pass (fail open).
      middlewares: { rateLimit: { requestsPerSecond: 1, burst: 1, store: 'redis' } },
    });
    expect(replaced.status).toBe(200);
    await until(`${gateway}/${name}/whoami`, ok(otherUpstream.name), 'the replaced route');
    for (let i = 0; i < 5; i++) expect((await fetch(`${gateway}/${name}/whoami`)).status).toBe(200);

    expect((await adminCall('DELETE', `/routes/${id}`)).status).toBe(204);
    await until(`${gateway}/${name}/whoami`, code(404, 'PORTICO_ERR_GATEWAY_SERVICE_NOT_FOUND'), 'the deleted route');
    expect(standalone.output()).toContain('a route keeps its rate limit in Redis: connecting');
  });

  it('keeps routing by the last known state while the control plane is away, and follows it again once it is back', async () => {
    const service = `outage-${randomUUID().slice(0, 8)}`;
    const a = await startUpstream(`${service}-a`);
    const b = await startUpstream(`${service}-b`);
    await register(service, a.name, a.port);
    const name = `keep-${randomUUID().slice(0, 8)}`;
    expect((await adminCall('POST', '/routes', { name, pathPrefix: `/${name}`, service, stripPrefix: true })).status).toBe(201);
    await until(`${gateway}/${service}/whoami`, ok(a.name), 'before the outage');
    await until(`${gateway}/${name}/whoami`, ok(a.name), 'the route before the outage');

    expect(await controlPlane.stop('SIGTERM')).toBe(0);
    await until(`${gatewayHealth}/readyz`, (_status, body) => body.includes('serving the last known registry'), 'readiness noting the outage');
    const ready = (await (await fetch(`${gatewayHealth}/readyz`)).json()) as { status: string; checks: Record<string, { ok: boolean; message?: string }> };
    expect(ready.status).toBe('ready');
    expect(ready.checks.registry).toMatchObject({ ok: true, message: expect.stringContaining('serving the last known registry') as unknown });
    expect(await (await fetch(`${gatewayHealth}/metrics`)).text()).toContain('portico_gateway_source_up{source="registry"} 0');
    for (let i = 0; i < 20; i++) {
      const [direct, routed] = await Promise.all([fetch(`${gateway}/${service}/whoami`), fetch(`${gateway}/${name}/whoami`)]);
      expect(await direct.text()).toBe(a.name);
      expect(await routed.text()).toBe(a.name);
    }

    // The control plane back on the same data directory and port: changes flow again.
    controlPlane = runControlPlane(controlPlaneEnv);
    await waitForHttp(`${api}/healthz`);
    await register(service, b.name, b.port);
    await until(`${gateway}/${service}/whoami`, ok(b.name), 'an instance registered after the restart', 20_000);
    expect((await adminCall('DELETE', `/instances/${a.name}`)).status).toBe(204);
    const name2 = `back-${randomUUID().slice(0, 8)}`;
    expect((await adminCall('POST', '/routes', { name: name2, pathPrefix: `/${name2}`, service, stripPrefix: true })).status).toBe(201);
    await until(`${gateway}/${name2}/whoami`, ok(b.name), 'a route created after the restart', 20_000);
    for (let i = 0; i < 10; i++) expect(await (await fetch(`${gateway}/${service}/whoami`)).text()).toBe(b.name);
    await until(`${gatewayHealth}/readyz`, (status, body) => status === 200 && !body.includes('last known'), 'readiness without the note');
  }, 60_000);

  it('follows Consul directly with PORTICO_CONSUL_ADDR (here the control plane\'s Consul-compatible API), without a store', async () => {
    const healthPort = await freePort();
    const gatewayPort = await freePort();
    const viaConsul = `http://127.0.0.1:${gatewayPort}`;
    const child = startStandalone({
      PORTICO_PORT: String(healthPort),
      PORTICO_GATEWAY_PORT: String(gatewayPort),
      PORTICO_CONSUL_ADDR: new URL(api).host,
      PORTICO_CONSUL_TOKEN: viewerToken,
      PORTICO_DATA_DIR: unusedDataDir,
      PORTICO_LOG_LEVEL: 'info',
    });
    await child.waitForOutput('"msg":"gateway listening"');
    const ready = (await (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).json()) as { status: string; checks: Record<string, unknown> };
    expect(ready).toEqual({ status: 'ready', checks: { registry: { ok: true } } });

    const service = `consul-${randomUUID().slice(0, 8)}`;
    const upstream = await startUpstream(`${service}-a`);
    await register(service, upstream.name, upstream.port);
    await until(`${viaConsul}/${service}/whoami`, ok(upstream.name), 'through the gateway that follows Consul');
    expect((await adminCall('DELETE', `/instances/${upstream.name}`)).status).toBe(204);
    await until(`${viaConsul}/${service}/whoami`, code(404, 'PORTICO_ERR_GATEWAY_SERVICE_NOT_FOUND'), 'gone from the gateway that follows Consul');
    expect((await fetch(`${viaConsul}/v1/catalog/services`)).status).toBe(404);
    expect(existsSync(unusedDataDir)).toBe(false);
    expect(await child.stop('SIGTERM')).toBe(0);
  }, 30_000);

  it('refuses to start without a source, or with a token the control plane refuses, and exits 78 naming the variable', async () => {
    const withoutToken = startStandalone({ PORTICO_PORT: '0', PORTICO_GATEWAY_CONTROL_PLANE: api });
    const withoutSource = startStandalone({ PORTICO_PORT: '0' });
    const refused = startStandalone({ PORTICO_PORT: '0', PORTICO_GATEWAY_CONTROL_PLANE: api, PORTICO_GATEWAY_TOKEN: 'ptc_not-a-token-of-this-control-plane' });
    const unknown = runControlPlane({}, { args: ['gateway', 'now'] });
    processes.push(unknown);
    expect(await Promise.all([withoutToken.exited, withoutSource.exited, refused.exited, unknown.exited])).toEqual([78, 78, 78, 64]);
    expect(withoutToken.output()).toContain('PORTICO_GATEWAY_TOKEN: must be set too when PORTICO_GATEWAY_CONTROL_PLANE is set');
    expect(withoutSource.output()).toContain('PORTICO_GATEWAY_CONTROL_PLANE: must be set when the gateway runs on its own');
    expect(refused.output()).toMatch(/PORTICO_GATEWAY_TOKEN: the control plane refused it .*401 PORTICO_ERR_AUTH_INVALID_TOKEN/);
    expect(unknown.output()).toContain('usage:');
  }, 30_000);

  it('is not ready, and opens no gateway port, until it has read a control plane', async () => {
    const healthPort = await freePort();
    const gatewayPort = await freePort();
    const away = `http://127.0.0.1:${await freePort()}`;
    const child = startStandalone({ PORTICO_PORT: String(healthPort), PORTICO_GATEWAY_PORT: String(gatewayPort), PORTICO_GATEWAY_CONTROL_PLANE: away, PORTICO_GATEWAY_TOKEN: viewerToken });
    const waiting = await until(`http://127.0.0.1:${healthPort}/readyz`, (status) => status === 503, 'not ready', 20_000);
    const body = JSON.parse(waiting.body) as { status: string; checks: Record<string, { ok: boolean; code?: string; message?: string }> };
    expect(body.status).toBe('not_ready');
    expect(body.checks.registry).toMatchObject({ ok: false, code: 'PORTICO_ERR_GATEWAY_SOURCE_UNAVAILABLE', message: expect.stringContaining('ECONNREFUSED') as unknown });
    expect(body.checks.routes).toMatchObject({ ok: false, code: 'PORTICO_ERR_GATEWAY_SOURCE_UNAVAILABLE' });
    expect((await fetch(`http://127.0.0.1:${healthPort}/healthz`)).status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${gatewayPort}/anything`)).rejects.toThrow();
    expect(await child.stop('SIGTERM')).toBe(0);
  }, 30_000);

  it('runs from the bundle as npm run gateway does, with the flags of npm start', async () => {
    const scripts = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.gateway).toBe(`${scripts.start} gateway`);

    await buildControlPlane();
    const healthPort = await freePort();
    const gatewayPort = await freePort();
    const child = runControlPlane(
      { PORTICO_PORT: String(healthPort), PORTICO_GATEWAY_PORT: String(gatewayPort), PORTICO_GATEWAY_CONTROL_PLANE: api, PORTICO_GATEWAY_TOKEN: viewerToken, PORTICO_LOG_LEVEL: 'warn' },
      { built: true, args: ['gateway'] },
    );
    processes.push(child);
    await waitForHttp(`http://127.0.0.1:${healthPort}/readyz`);
    const service = `bundle-${randomUUID().slice(0, 8)}`;
    const upstream = await startUpstream(`${service}-a`);
    await register(service, upstream.name, upstream.port);
    await until(`http://127.0.0.1:${gatewayPort}/${service}/whoami`, ok(upstream.name), 'through the bundled gateway');
    expect(await child.stop('SIGTERM')).toBe(0);
  }, 60_000);
});
