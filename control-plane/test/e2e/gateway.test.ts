import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request, WebSocket } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BYTES_CHUNK } from '../support/bytes-chunk.js';
import { CONTROL_PLANE_DIR, freePort, run, runControlPlane, type RunningProcess, waitForHttp, cleanEnv } from '../support/control-plane-process.js';

/**
 * The gateway with real processes: the control plane (its gateway on its own port), and upstream
 * services each in a process of its own, registered through the admin API.
 */

const token = `gw-${randomBytes(24).toString('hex')}`;
let controlPlane: RunningProcess;
let dataDir: string;
let api: string;
let gatewayPort: number;
let gateway: string;
const upstreams: RunningProcess[] = [];

async function startUpstream(name: string): Promise<{ name: string; port: number; process: RunningProcess }> {
  const port = await freePort();
  const child = run(process.execPath, ['--import', 'tsx', join(CONTROL_PLANE_DIR, 'test', 'support', 'test-upstream.ts')], {
    cwd: CONTROL_PLANE_DIR,
    env: cleanEnv({ UPSTREAM_NAME: name, UPSTREAM_PORT: String(port) }),
  });
  upstreams.push(child);
  await child.waitForOutput(`listening ${name}`);
  return { name, port, process: child };
}

async function register(service: string, id: string, port: number): Promise<void> {
  const res = await fetch(`${api}/api/v1/instances/${id}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ service, address: '127.0.0.1', port, checks: [{ kind: 'ttl', ttl: '5m', status: 'passing' }] }),
  });
  expect(res.status).toBe(201);
}

async function deregister(id: string): Promise<void> {
  const res = await fetch(`${api}/api/v1/instances/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(204);
}

async function countOf(port: number): Promise<number> {
  return Number(await (await fetch(`http://127.0.0.1:${port}/__count`)).text());
}

/** Poll `path` through the gateway until every name in `names` has answered. */
async function routable(path: string, names: string[]): Promise<void> {
  const seen = new Set<string>();
  const deadline = Date.now() + 5_000;
  while (seen.size < names.length) {
    if (Date.now() > deadline) throw new Error(`only ${[...seen].join(', ')} answered ${path}`);
    const res = await fetch(`${gateway}${path}`);
    if (res.status === 200) seen.add(await res.text());
    else await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Start one instance per suffix of a fresh service, register them, and wait until each answers through the gateway. */
async function startService(prefix: string, suffixes: string[] = ['a']): Promise<{ service: string; started: Array<{ name: string; port: number; process: RunningProcess }> }> {
  const service = `${prefix}-${randomUUID().slice(0, 8)}`;
  const started = await Promise.all(suffixes.map((suffix) => startUpstream(`${service}-${suffix}`)));
  for (const upstream of started) await register(service, upstream.name, upstream.port);
  await routable(`/${service}/whoami`, started.map((upstream) => upstream.name));
  return { service, started };
}

/** Send bytes as they are (no client normalises them) and read the answer's status line and body. */
function raw(text: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(gatewayPort, '127.0.0.1');
    let received = '';
    socket.setTimeout(3_000, () => socket.destroy(new Error(`no answer to ${JSON.stringify(text.slice(0, 60))}`)));
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(received)?.[1];
      if (end >= 0 && length !== undefined && received.length >= end + 4 + Number(length)) socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0), body: received.slice(received.indexOf('\r\n\r\n') + 4) }));
    socket.write(text, 'latin1');
  });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'portico-gateway-'));
  const port = await freePort();
  gatewayPort = await freePort();
  api = `http://127.0.0.1:${port}`;
  gateway = `http://127.0.0.1:${gatewayPort}`;
  controlPlane = runControlPlane({
    PORTICO_PORT: String(port),
    PORTICO_GATEWAY_PORT: String(gatewayPort),
    PORTICO_GATEWAY_TIMEOUT: '1s',
    PORTICO_GATEWAY_MAX_CONCURRENT: '64',
    PORTICO_DATA_DIR: dataDir,
    PORTICO_ADMIN_TOKEN: token,
    PORTICO_LOG_LEVEL: 'warn',
  });
  await waitForHttp(`${api}/healthz`);
}, 30_000);

afterAll(async () => {
  await controlPlane?.stop('SIGTERM');
  await Promise.all(upstreams.map((child) => child.stop('SIGKILL')));
  await rm(dataDir, { recursive: true, force: true });
});

describe('gateway', () => {
  it('spreads requests over every passing instance, and serves none of the control plane\'s own routes', async () => {
    const { service, started } = await startService('spread', ['a', 'b', 'c']);

    const before = await Promise.all(started.map((u) => countOf(u.port)));
    const answers: string[] = [];
    for (let batch = 0; batch < 10; batch++) {
      answers.push(...(await Promise.all(Array.from({ length: 30 }, async () => (await fetch(`${gateway}/${service}/whoami`)).text()))));
    }
    const after = await Promise.all(started.map((u) => countOf(u.port)));
    const served = after.map((n, i) => n - (before[i] as number));
    expect(served.reduce((sum, n) => sum + n, 0)).toBe(300);
    for (const n of served) expect(n).toBe(100);
    expect(new Set(answers)).toEqual(new Set(started.map((u) => u.name)));

    for (const path of ['/api/v1/me', '/v1/agent/self', '/metrics', '/healthz']) {
      const res = await fetch(`${gateway}${path}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { code: string }).code).toBe('PORTICO_ERR_GATEWAY_SERVICE_NOT_FOUND');
    }
  }, 30_000);

  it('loses no GET when an instance is killed -9 under steady load', async () => {
    const { service, started } = await startService('kill', ['a', 'b', 'c']);

    const agent = new Agent({ connections: 8 });
    const failures: string[] = [];
    let sent = 0;
    let stop = false;
    const load = Array.from({ length: 8 }, async () => {
      while (!stop) {
        sent += 1;
        try {
          const res = await request(`${gateway}/${service}/slow/5`, { dispatcher: agent });
          const body = await res.body.text();
          if (res.statusCode !== 200) failures.push(`${res.statusCode} ${body}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await started[0]!.process.stop('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    stop = true;
    await Promise.all(load);
    await agent.close();
    expect(sent).toBeGreaterThan(300);
    expect(failures).toEqual([]);
  }, 30_000);

  it('does not retry 5xx answers: the upstream load stays at the offered load', async () => {
    const { service, started } = await startService('unwell', ['a', 'b', 'c']);
    const before = await Promise.all(started.map((u) => countOf(u.port)));

    const statuses = await Promise.all(Array.from({ length: 200 }, async () => (await fetch(`${gateway}/${service}/status/503`)).status));
    const after = await Promise.all(started.map((u) => countOf(u.port)));
    const load = after.reduce((sum, n, i) => sum + n - (before[i] as number), 0);
    expect(statuses.every((status) => status === 503)).toBe(true);
    expect(load).toBeLessThanOrEqual(1.2 * 200);
  }, 30_000);

  it('opens the circuit of a failing service: 503 with Retry-After at once, and far fewer requests reach it', async () => {
    const { service, started } = await startService('failing');
    const upstream = started[0]!;
    const before = await countOf(upstream.port);
    const answers: Array<{ status: number; code?: string; retryAfter: string | null }> = [];
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${gateway}/${service}/status/500`);
      const body = await res.text();
      answers.push({ status: res.status, code: body === '' ? undefined : (JSON.parse(body) as { code: string }).code, retryAfter: res.headers.get('retry-after') });
    }
    const reached = (await countOf(upstream.port)) - before;
    const open = answers.filter((answer) => answer.code === 'PORTICO_ERR_GATEWAY_CIRCUIT_OPEN');
    // The window held the one good request `routable` made: 19 failures of 20 requests (the breaker's
    // minimum) opened the circuit.
    expect(reached).toBe(19);
    expect(open).toHaveLength(81);
    expect(open.every((answer) => answer.status === 503 && Number(answer.retryAfter) >= 1)).toBe(true);
  }, 30_000);

  it('turns away requests beyond the bulkhead with 503 at once', async () => {
    const { service } = await startService('busy');
    const agent = new Agent({ connections: 100 });
    const t0 = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 80 }, async () => {
        const res = await request(`${gateway}/${service}/slow/500`, { dispatcher: agent });
        const body = await res.body.text();
        return { status: res.statusCode, body, ms: Date.now() - t0 };
      }),
    );
    await agent.close();
    const overloaded = answers.filter((answer) => answer.status === 503);
    expect(answers.filter((answer) => answer.status === 200)).toHaveLength(64);
    expect(overloaded).toHaveLength(16);
    for (const answer of overloaded) {
      expect(JSON.parse(answer.body)).toMatchObject({ code: 'PORTICO_ERR_GATEWAY_OVERLOADED' });
      expect(answer.ms).toBeLessThan(450);
    }
  }, 30_000);

  it('guards a route with resilience settings of its own apart from its service\'s other routes', async () => {
    const { service, started } = await startService('fragile');
    const upstream = started[0]!;
    const routeName = `fragile-${randomUUID().slice(0, 8)}`;
    const created = await fetch(`${api}/api/v1/routes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: routeName,
        pathPrefix: `/${routeName}`,
        service,
        stripPrefix: true,
        resilience: { maxConcurrent: 2, circuitBreaker: { minimumRequests: 6, failureRatio: 0.5, openFor: '30s' } },
      }),
    });
    expect(created.status).toBe(201);
    await routable(`/${routeName}/whoami`, [upstream.name]);

    // The route's bulkhead: two in flight at most; the discovery rule to the same service is not limited by it.
    const agent = new Agent({ connections: 20 });
    const slow = (path: string) => request(`${gateway}${path}`, { dispatcher: agent }).then(async (res) => ({ status: res.statusCode, body: await res.body.text() }));
    const [viaRoute, viaService] = await Promise.all([
      Promise.all(Array.from({ length: 5 }, () => slow(`/${routeName}/slow/300`))),
      Promise.all(Array.from({ length: 5 }, () => slow(`/${service}/slow/300`))),
    ]);
    await agent.close();
    expect(viaRoute.map((answer) => answer.status).sort()).toEqual([200, 200, 503, 503, 503]);
    expect(viaRoute.filter((answer) => answer.status === 503).every((answer) => JSON.parse(answer.body).code === 'PORTICO_ERR_GATEWAY_OVERLOADED')).toBe(true);
    expect(viaService.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);

    // The route's breaker opens on its own failures (minimum 6 requests) while the service's stays closed.
    const codes: string[] = [];
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`${gateway}/${routeName}/status/500`);
      const body = await res.text();
      codes.push(body === '' ? String(res.status) : (JSON.parse(body) as { code: string }).code);
    }
    expect(codes.indexOf('PORTICO_ERR_GATEWAY_CIRCUIT_OPEN')).toBeGreaterThan(0);
    expect(codes.indexOf('PORTICO_ERR_GATEWAY_CIRCUIT_OPEN')).toBeLessThanOrEqual(6);
    expect(codes.slice(codes.indexOf('PORTICO_ERR_GATEWAY_CIRCUIT_OPEN')).every((code) => code === 'PORTICO_ERR_GATEWAY_CIRCUIT_OPEN')).toBe(true);
    expect((await fetch(`${gateway}/${service}/whoami`)).status).toBe(200);
    const metrics = await (await fetch(`${api}/metrics`)).text();
    expect(metrics).toContain(`portico_gateway_circuit_state{service="${service}",route="${routeName}"} 2`);

    // Without its own settings, the route shares the service's (closed) guard, and its series is gone.
    const { id } = (await created.json()) as { id: string };
    const replaced = await fetch(`${api}/api/v1/routes/${id}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: routeName, pathPrefix: `/${routeName}`, service, stripPrefix: true }),
    });
    expect(replaced.status).toBe(200);
    const deadline = Date.now() + 2_000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline) status = (await fetch(`${gateway}/${routeName}/whoami`)).status;
    expect(status).toBe(200);
    expect(await (await fetch(`${api}/metrics`)).text()).not.toContain(`route="${routeName}"} 2`);
  }, 30_000);

  it('retries a connection failure on another instance unless the route says no retries', async () => {
    const { service } = await startService('retried');
    const deadPort = await freePort();
    await register(service, `${service}-dead`, deadPort);
    const routeName = `noretry-${randomUUID().slice(0, 8)}`;
    const created = await fetch(`${api}/api/v1/routes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: routeName, pathPrefix: `/${routeName}`, service, stripPrefix: true, resilience: { retries: 0 } }),
    });
    expect(created.status).toBe(201);
    // Until the route applies, its path is an unknown service (404); then the dead instance's turn is a 502.
    const statuses: number[] = [];
    const deadline = Date.now() + 5_000;
    while (!statuses.includes(502) && Date.now() < deadline) statuses.push((await fetch(`${gateway}/${routeName}/whoami`)).status);
    expect(statuses).toContain(502);
    expect(statuses.filter((status) => status !== 502 && status !== 404).every((status) => status === 200)).toBe(true);
    // The discovery rule keeps the default: each failure goes to the live instance instead.
    const viaService = await Promise.all(Array.from({ length: 6 }, async () => (await fetch(`${gateway}/${service}/whoami`)).status));
    expect(viaService).toEqual([200, 200, 200, 200, 200, 200]);
  }, 30_000);

  it('answers 504 at the route timeout when an instance hangs', async () => {
    const { service } = await startService('hang');
    const t0 = Date.now();
    const res = await fetch(`${gateway}/${service}/hang`);
    const elapsed = Date.now() - t0;
    expect(res.status).toBe(504);
    expect(((await res.json()) as { code: string }).code).toBe('PORTICO_ERR_GATEWAY_UPSTREAM_TIMEOUT');
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(3_000);
  }, 30_000);

  it('holds a large answer back at the upstream while the client does not read, then delivers every byte', async () => {
    const { service, started } = await startService('bytes');
    const size = 128 * 1024 * 1024;
    const socket = connect(gatewayPort, '127.0.0.1');
    const chunks: Buffer[] = [];
    // The gateway closes the connection after the answer (the request says so): its end is the answer's end.
    const done = new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', reject);
      socket.on('end', () => resolve());
    });
    socket.write(`GET /${service}/bytes/${size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    socket.pause();
    // Not reading: the gateway stops reading the upstream, and the upstream's writes wait.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const sentWhilePaused = Number(await (await fetch(`http://127.0.0.1:${started[0]!.port}/__sent`)).text());
    expect(sentWhilePaused).toBeGreaterThan(0);
    expect(sentWhilePaused).toBeLessThan(size / 2);
    socket.resume();
    await done;
    socket.destroy();
    const all = Buffer.concat(chunks);
    const head = all.indexOf('\r\n\r\n');
    expect(all.subarray(0, head).toString('latin1')).toMatch(new RegExp(`^HTTP/1.1 200 OK\r\n[^]*content-length: ${size}`, 'i'));
    const body = all.subarray(head + 4);
    expect(body.length).toBe(size);
    for (let at = 0; at < size; at += BYTES_CHUNK.length) {
      if (!body.subarray(at, at + BYTES_CHUNK.length).equals(BYTES_CHUNK)) throw new Error(`the body differs from what was sent in the 64 KiB at ${at}`);
    }
  }, 30_000);

  it('lets in-flight requests finish and sends new ones elsewhere when an instance is deregistered under load', async () => {
    const { service, started } = await startService('drain', ['a', 'b']);

    const agent = new Agent({ connections: 8, pipelining: 1 });
    const failures: string[] = [];
    const served: string[] = [];
    let stop = false;
    const load = Array.from({ length: 8 }, async () => {
      while (!stop) {
        try {
          const res = await request(`${gateway}/${service}/slow/200`, { dispatcher: agent });
          const body = await res.body.text();
          if (res.statusCode === 200) served.push(body);
          else failures.push(`${res.statusCode} ${body}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await deregister(started[0]!.name);
    const leftAt = served.length;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    stop = true;
    await Promise.all(load);
    await agent.close();
    expect(failures).toEqual([]);
    // Requests in flight at the deregistration finished on the leaving instance; later ones went to the other.
    expect(served.slice(leftAt + 8)).not.toContain(started[0]!.name);
    expect(served.slice(leftAt + 8).length).toBeGreaterThan(10);
  }, 30_000);

  it('keeps an event stream open past the request timeout, and ends it cleanly when its instance leaves', async () => {
    const { service, started } = await startService('sse');
    const upstream = started[0]!;
    const res = await fetch(`${gateway}/${service}/sse`);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    const t0 = Date.now();
    while (Date.now() - t0 < 1_500) {
      const { value, done } = await reader.read();
      if (done) throw new Error('the stream ended early');
      text += decoder.decode(value);
    }
    // PORTICO_GATEWAY_TIMEOUT is 1 s: the stream outlived it.
    expect(text.match(/^data: /gm)?.length).toBeGreaterThanOrEqual(10);
    await deregister(upstream.name);
    const endedAt = Date.now();
    for (;;) {
      const { done } = await reader.read(); // a reset would throw here
      if (done) break;
    }
    expect(Date.now() - endedAt).toBeLessThan(2_000);
  }, 30_000);

  it('carries a WebSocket past the request timeout, and closes it with 1001 when its instance leaves', async () => {
    const { service, started } = await startService('ws');
    const upstream = started[0]!;
    const socket = new WebSocket(`ws://127.0.0.1:${gatewayPort}/${service}/ws`);
    const messages: string[] = [];
    const closed = new Promise<number>((resolve) => socket.addEventListener('close', (event) => resolve(event.code)));
    socket.addEventListener('message', (event) => messages.push(String(event.data)));
    await new Promise((resolve, reject) => {
      socket.addEventListener('open', resolve);
      socket.addEventListener('error', reject);
    });
    socket.send('one');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    socket.send('two');
    const deadline = Date.now() + 2_000;
    while (messages.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(messages).toEqual([`${upstream.name}: one`, `${upstream.name}: two`]);
    await deregister(upstream.name);
    expect(await closed).toBe(1001);
  }, 30_000);

  describe('paths and headers', () => {
    let catalog: { name: string; port: number };
    let user: { name: string; port: number };

    beforeAll(async () => {
      catalog = await startUpstream('catalog-1');
      user = await startUpstream('user-1');
      await register('catalog', catalog.name, catalog.port);
      await register('user', user.name, user.port);
      await routable('/catalog/whoami', [catalog.name]);
      await routable('/user/whoami', [user.name]);
    }, 30_000);

    it.each([
      ['/catalog/echo/../echo/items', 'catalog-1', '/echo/items'],
      ['/catalog/echo/%2e%2e/%2e%2e/user/echo/secrets', 'user-1', '/echo/secrets'],
      ['/catalog/..;/user/echo/x', 'user-1', '/echo/x'],
      ['/catalog//echo///a', 'catalog-1', '/echo/a'],
      ['/catalog\\echo\\b', 'catalog-1', '/echo/b'],
      ['/catalog/echo;jsessionid=1/c?q=%2F..', 'catalog-1', '/echo/c?q=%2F..'],
      ['/catalog/echo/b%2e%2e/c', 'catalog-1', '/echo/b../c'],
    ])('routes %s to %s with exactly the path it routed (%s)', async (path, name, forwarded) => {
      const res = await raw(`GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`);
      expect(res.status).toBe(200);
      const echo = JSON.parse(res.body) as { name: string; path: string };
      expect(echo.name).toBe(name);
      expect(echo.path).toBe(forwarded);
    });

    it.each([
      ['/catalog/..%2f..%2fuser/echo'],
      ['/catalog%2f..%2fuser/echo'],
      ['/catalog/%5c..%5cuser/echo'],
      ['/catalog/echo/%zz'],
      ['/catalog/echo/%00'],
    ])('refuses %s with 400 and forwards nothing', async (path) => {
      const before = (await countOf(catalog.port)) + (await countOf(user.port));
      const res = await raw(`GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`);
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'PORTICO_ERR_GATEWAY_BAD_PATH' });
      expect((await countOf(catalog.port)) + (await countOf(user.port))).toBe(before);
    });

    it.each([
      ['Content-Length with Transfer-Encoding', 'POST /catalog/echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
      ['two different Content-Lengths', 'POST /catalog/echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde'],
      ['a bad chunk size', 'POST /catalog/echo HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
      ['obs-fold', 'GET /catalog/echo HTTP/1.1\r\nHost: gw\r\nX-Folded: a\r\n b\r\n\r\n'],
      ['a bare CR', 'GET /catalog/echo HTTP/1.1\r\nHost: gw\rX-Evil: 1\r\n\r\n'],
      ['a NUL in a header', 'GET /catalog/echo HTTP/1.1\r\nHost: gw\r\nX-Evil: a\u0000b\r\n\r\n'],
      ['Transfer-Encoding other than chunked last', 'POST /catalog/echo HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
      ['a space before the colon', 'GET /catalog/echo HTTP/1.1\r\nHost: gw\r\nContent-Length : 0\r\n\r\n'],
    ])('answers a smuggling attempt (%s) with 400 and forwards nothing', async (_name, text) => {
      const before = (await countOf(catalog.port)) + (await countOf(user.port));
      const res = await raw(text);
      expect(res.status).toBe(400);
      expect((await countOf(catalog.port)) + (await countOf(user.port))).toBe(before);
    });

    it('keeps its own forwarding headers whatever the client names in Connection, and continues the trace', async () => {
      const res = await raw(
        'GET /catalog/echo HTTP/1.1\r\nHost: gw.example\r\nConnection: close, X-Forwarded-For, Forwarded, X-Secret\r\nX-Forwarded-For: 6.6.6.6\r\nX-Secret: s\r\n' +
          'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n',
      );
      expect(res.status).toBe(200);
      const { headers } = JSON.parse(res.body) as { headers: Record<string, string> };
      expect(headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(headers.forwarded).toBe('for=127.0.0.1;proto=http;host="gw.example"');
      expect(headers['x-forwarded-host']).toBe('gw.example');
      expect(headers['x-forwarded-proto']).toBe('http');
      expect(headers['x-forwarded-prefix']).toBe('/catalog');
      expect(headers['x-secret']).toBeUndefined();
      expect(headers.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-(?!b7ad6b7169203331)[0-9a-f]{16}-01$/);
    });

    it('aggregates several services into one JSON answer, with partial results when a part fails or is slow', async () => {
      const created = await fetch(`${api}/api/v1/routes`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'profile',
          pathPrefix: '/profile',
          service: 'catalog',
          middlewares: {
            aggregate: {
              timeout: '300ms',
              parts: [
                { name: 'items', service: 'catalog', path: '/echo/items' },
                { name: 'me', service: 'user', path: '/echo/me' },
                { name: 'slow', service: 'catalog', path: '/slow/3000' },
                { name: 'ghost', service: 'no-such-service', path: '/x' },
              ],
            },
          },
        }),
      });
      expect(created.status, await created.clone().text()).toBe(201);
      const deadline = Date.now() + 2_000;
      let res = await fetch(`${gateway}/profile?lang=en`);
      while (res.status === 404 && Date.now() < deadline) res = await fetch(`${gateway}/profile?lang=en`);
      const t0 = Date.now();
      res = await fetch(`${gateway}/profile?lang=en`);
      const body = (await res.json()) as Record<string, unknown> & { errors: Record<string, { code: string }> };
      expect(Date.now() - t0).toBeLessThan(1_500);
      expect(res.status).toBe(200);
      expect(body.items).toMatchObject({ name: 'catalog-1', path: '/echo/items?lang=en' });
      expect(body.me).toMatchObject({ name: 'user-1', path: '/echo/me?lang=en' });
      expect(body.slow).toBeNull();
      expect(body.ghost).toBeNull();
      expect(body.errors.slow?.code).toBe('PORTICO_ERR_GATEWAY_UPSTREAM_TIMEOUT');
      expect(body.errors.ghost?.code).toBe('PORTICO_ERR_GATEWAY_SERVICE_NOT_FOUND');
    });

    it('applies routes created, changed and deleted through the admin API at once, without a restart', async () => {
      const admin = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const created = await fetch(`${api}/api/v1/routes`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({ name: 'shop', pathPrefix: '/shop/things', service: 'catalog', stripPrefix: true }),
      });
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as { id: string };
      const until = async (path: string, ok: (res: Response, body: string) => boolean) => {
        const deadline = Date.now() + 2_000;
        for (;;) {
          const res = await fetch(`${gateway}${path}`);
          const body = await res.text();
          if (ok(res, body)) return { res, body };
          if (Date.now() > deadline) throw new Error(`${path}: still ${res.status} ${body}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      const first = await until('/shop/things/echo/1?x=y', (res) => res.status === 200);
      expect(JSON.parse(first.body)).toMatchObject({ name: 'catalog-1', path: '/echo/1?x=y', headers: { 'x-forwarded-prefix': '/shop/things' } });

      const replaced = await fetch(`${api}/api/v1/routes/${id}`, {
        method: 'PUT',
        headers: admin,
        body: JSON.stringify({ name: 'shop', pathPrefix: '/shop/things', service: 'user', stripPrefix: false }),
      });
      expect(replaced.status).toBe(200);
      // Now to user-1, with the full path (it has no such route of its own: 404 from the instance itself).
      const moved = await until('/shop/things/echo', (res) => res.headers.get('x-upstream') === 'user-1');
      expect(moved.res.status).toBe(404);

      expect((await fetch(`${api}/api/v1/routes/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })).status).toBe(204);
      const gone = await until('/shop/things/echo', (res) => res.status === 404 && res.headers.get('content-type')?.includes('json') === true);
      expect(JSON.parse(gone.body)).toMatchObject({ code: 'PORTICO_ERR_GATEWAY_SERVICE_NOT_FOUND' });
    });

    it('answers 404 for an unknown service and 503 for a service with no passing instance', async () => {
      expect((await fetch(`${gateway}/no-such-service/x`)).status).toBe(404);
      const res = await fetch(`${api}/api/v1/instances/${catalog.name}/maintenance`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ enabled: true, reason: 'test' }),
      });
      expect(res.status).toBe(200);
      const deadline = Date.now() + 2_000;
      let status = 0;
      while (Date.now() < deadline && status !== 503) status = (await fetch(`${gateway}/catalog/whoami`)).status;
      expect(status).toBe(503);
    });
  });
});
