import { type IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_PROBE_OUTPUT_LIMIT_BYTES, probeHttp } from '../../../../src/registry/health/probe-http.js';
import { closedPort, startBlackholePort, startHttpServer, type LocalHttpServer } from './local-servers.js';

describe('probeHttp', () => {
  let server: LocalHttpServer;
  const seen: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];

  beforeAll(async () => {
    server = await startHttpServer((req, res) => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      switch (req.url) {
        case '/ok':
          res.end('all good');
          return;
        case '/created':
          res.writeHead(201).end();
          return;
        case '/busy':
          res.writeHead(429).end('slow down');
          return;
        case '/down':
          res.writeHead(503).end('database unreachable');
          return;
        case '/large':
          res.end('a'.repeat(HTTP_PROBE_OUTPUT_LIMIT_BYTES) + 'b'.repeat(200_000));
          return;
        case '/endless': {
          const timer = setInterval(() => res.write('c'.repeat(1024)), 10);
          res.on('close', () => clearInterval(timer));
          return;
        }
        case '/moved':
          res.writeHead(302, { location: '/ok' }).end();
          return;
        case '/hang':
          return;
        default:
          res.writeHead(404).end();
      }
    });
  });
  afterAll(() => server.close());

  it('reports a 2xx as passing, with Consul\'s output and the body excerpt', async () => {
    const url = `${server.origin}/ok`;
    expect(await probeHttp({ url, timeoutMs: 2_000 })).toEqual({ status: 'passing', output: `HTTP GET ${url}: 200 OK Output: all good` });
    expect(await probeHttp({ url: `${server.origin}/created`, timeoutMs: 2_000 })).toMatchObject({ status: 'passing' });
  });

  it('reports 429 Too Many Requests as warning', async () => {
    const url = `${server.origin}/busy`;
    expect(await probeHttp({ url, timeoutMs: 2_000 })).toEqual({
      status: 'warning',
      output: `HTTP GET ${url}: 429 Too Many Requests Output: slow down`,
    });
  });

  it('reports any other status as critical', async () => {
    const url = `${server.origin}/down`;
    expect(await probeHttp({ url, timeoutMs: 2_000 })).toEqual({
      status: 'critical',
      output: `HTTP GET ${url}: 503 Service Unavailable Output: database unreachable`,
    });
    expect(await probeHttp({ url: `${server.origin}/missing`, timeoutMs: 2_000 })).toMatchObject({ status: 'critical' });
  });

  it('does not follow a redirect: a 302 is critical', async () => {
    const before = seen.length;
    const result = await probeHttp({ url: `${server.origin}/moved`, timeoutMs: 2_000 });
    expect(result.status).toBe('critical');
    expect(result.output).toContain(': 302 Found');
    expect(seen.slice(before).map((r) => r.url)).toEqual(['/moved']);
  });

  it('keeps at most 4 KiB of a large body', async () => {
    const result = await probeHttp({ url: `${server.origin}/large`, timeoutMs: 2_000 });
    expect(result.status).toBe('passing');
    const excerpt = result.output.slice(result.output.indexOf('Output: ') + 'Output: '.length);
    expect(excerpt).toBe('a'.repeat(HTTP_PROBE_OUTPUT_LIMIT_BYTES));
  });

  it('stops reading a body that never ends once it has 4 KiB', async () => {
    const result = await probeHttp({ url: `${server.origin}/endless`, timeoutMs: 2_000 });
    expect(result.status).toBe('passing');
    expect(result.output).toMatch(/Output: c{4096}$/);
  });

  it('sends the method and headers it is given, with a user agent of its own', async () => {
    const before = seen.length;
    const url = `${server.origin}/ok`;
    const result = await probeHttp({ url, method: 'head', headers: { 'X-Probe': 'yes', Accept: 'application/json' }, timeoutMs: 2_000 });
    expect(result).toEqual({ status: 'passing', output: `HTTP HEAD ${url}: 200 OK Output: ` });
    const request = seen[before]!;
    expect(request.method).toBe('HEAD');
    expect(request.headers).toMatchObject({ 'x-probe': 'yes', accept: 'application/json', 'user-agent': 'Portico Health Check' });
  });

  it('reports a server that never answers as critical once the timeout has passed', async () => {
    const url = `${server.origin}/hang`;
    const started = performance.now();
    const result = await probeHttp({ url, timeoutMs: 300 });
    const elapsed = performance.now() - started;
    expect(result).toEqual({ status: 'critical', output: `HTTP GET ${url}: timed out after 300 ms` });
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(300 + 500);
  });

  it('reports a connection that cannot open in time as critical once the timeout has passed', async () => {
    const blackhole = await startBlackholePort();
    try {
      const url = `http://127.0.0.1:${blackhole.port}/health`;
      const started = performance.now();
      const result = await probeHttp({ url, timeoutMs: 300 });
      expect(result).toEqual({ status: 'critical', output: `HTTP GET ${url}: timed out after 300 ms` });
      // undici's connect timer ticks about every 500 ms (see createHttpProbeAgent).
      expect(performance.now() - started).toBeLessThan(300 + 1_500);
    } finally {
      await blackhole.close();
    }
  });

  it('reports a refused connection as critical', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/health`;
    expect(await probeHttp({ url, timeoutMs: 2_000 })).toEqual({ status: 'critical', output: `HTTP GET ${url}: connection refused` });
  });

  it('reports a URL it cannot probe as critical, without throwing', async () => {
    expect(await probeHttp({ url: 'not a url', timeoutMs: 1_000 })).toEqual({ status: 'critical', output: 'HTTP GET not a url: invalid URL' });
    expect(await probeHttp({ url: 'ftp://127.0.0.1/health', timeoutMs: 1_000 })).toMatchObject({
      status: 'critical',
      output: expect.stringContaining('unsupported scheme "ftp"') as unknown,
    });
  });

  it('leaves credentials out of the output', async () => {
    const result = await probeHttp({ url: `http://user:secret@127.0.0.1:${server.port}/ok`, timeoutMs: 2_000 });
    expect(result.output).not.toContain('secret');
    expect(result.output).toContain(`HTTP GET http://127.0.0.1:${server.port}/ok: `);
  });

  it('ends early, as critical, when its signal aborts', async () => {
    const controller = new AbortController();
    const started = performance.now();
    const pending = probeHttp({ url: `${server.origin}/hang`, timeoutMs: 5_000 }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const result = await pending;
    expect(result).toEqual({ status: 'critical', output: `HTTP GET ${server.origin}/hang: probe cancelled` });
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
