import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request, WebSocket } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_PLANE_DIR, cleanEnv, freePort, run, runControlPlane, type RunningProcess, waitForHttp } from '../support/control-plane-process.js';

/** The gateway with PORTICO_GATEWAY_TLS_CERT/KEY: HTTPS, HTTP/2 by ALPN, and WebSocket over TLS. */

const token = `tls-${randomBytes(24).toString('hex')}`;
let dir: string;
let ca: Buffer;
let controlPlane: RunningProcess;
let upstream: RunningProcess;
let gateway: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portico-gateway-tls-'));
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ]);
  ca = await readFile(join(dir, 'cert.pem'));
  const [port, gatewayPort, upstreamPort] = [await freePort(), await freePort(), await freePort()];
  gateway = `https://127.0.0.1:${gatewayPort}`;
  controlPlane = runControlPlane({
    PORTICO_PORT: String(port),
    PORTICO_GATEWAY_PORT: String(gatewayPort),
    PORTICO_GATEWAY_TLS_CERT: join(dir, 'cert.pem'),
    PORTICO_GATEWAY_TLS_KEY: join(dir, 'key.pem'),
    PORTICO_DATA_DIR: join(dir, 'data'),
    PORTICO_ADMIN_TOKEN: token,
    PORTICO_LOG_LEVEL: 'warn',
  });
  upstream = run(process.execPath, ['--import', 'tsx', join(CONTROL_PLANE_DIR, 'test', 'support', 'test-upstream.ts')], {
    cwd: CONTROL_PLANE_DIR,
    env: cleanEnv({ UPSTREAM_NAME: 'secure-1', UPSTREAM_PORT: String(upstreamPort) }),
  });
  await upstream.waitForOutput('listening secure-1');
  await waitForHttp(`http://127.0.0.1:${port}/healthz`);
  const registered = await fetch(`http://127.0.0.1:${port}/api/v1/instances/secure-1`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ service: 'secure', address: '127.0.0.1', port: upstreamPort, checks: [{ kind: 'ttl', ttl: '5m', status: 'passing' }] }),
  });
  expect(registered.status).toBe(201);
}, 30_000);

afterAll(async () => {
  await controlPlane?.stop('SIGTERM');
  await upstream?.stop('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('gateway over TLS', () => {
  it('serves HTTPS over HTTP/1.1, telling the instance the client came over https', async () => {
    const agent = new Agent({ connect: { ca } });
    const deadline = Date.now() + 5_000;
    let res = await request(`${gateway}/secure/echo/a`, { dispatcher: agent });
    while (res.statusCode !== 200 && Date.now() < deadline) {
      await res.body.dump();
      await new Promise((resolve) => setTimeout(resolve, 20));
      res = await request(`${gateway}/secure/echo/a`, { dispatcher: agent });
    }
    const echo = (await res.body.json()) as { name: string; path: string; headers: Record<string, string> };
    expect(res.statusCode).toBe(200);
    expect(echo).toMatchObject({ name: 'secure-1', path: '/echo/a', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': `127.0.0.1:${new URL(gateway).port}` } });
    await agent.close();
  });

  it('offers HTTP/2, forwarding no pseudo-header and answering without hop-by-hop headers', async () => {
    const session = connect(gateway, { ca });
    try {
      const { status, headers, body } = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
        const stream = session.request({ ':path': '/secure/echo/h2?x=1', ':method': 'GET' });
        let text = '';
        let head: Record<string, unknown> = {};
        stream.on('response', (h) => (head = h));
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (text += chunk));
        stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: text }));
        stream.on('error', reject);
        stream.end();
      });
      expect(status).toBe(200);
      expect(headers.connection).toBeUndefined();
      expect(headers['keep-alive']).toBeUndefined();
      const echo = JSON.parse(body) as { path: string; rawHeaders: string[]; headers: Record<string, string> };
      expect(echo.path).toBe('/echo/h2?x=1');
      expect(echo.rawHeaders.filter((_, i) => i % 2 === 0).some((name) => name.startsWith(':'))).toBe(false);
      expect(echo.headers['x-forwarded-proto']).toBe('https');
    } finally {
      session.close();
    }
  });

  it('carries a WebSocket over TLS', async () => {
    const agent = new Agent({ connect: { ca } });
    const socket = new WebSocket(`wss://127.0.0.1:${new URL(gateway).port}/secure/ws`, { dispatcher: agent });
    const message = new Promise<string>((resolve) => socket.addEventListener('message', (event) => resolve(String(event.data))));
    await new Promise((resolve, reject) => {
      socket.addEventListener('open', resolve);
      socket.addEventListener('error', reject);
    });
    socket.send('over tls');
    expect(await message).toBe('secure-1: over tls');
    socket.close();
    await agent.close();
  });
});
