import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHostPort, probeTcp } from '../../../../src/registry/health/probe-tcp.js';
import { closedPort, startBlackholePort } from './local-servers.js';

describe('probeTcp', () => {
  let server: Server;
  let port: number;
  let accepted = 0;

  beforeAll(async () => {
    server = createServer((socket) => {
      accepted += 1;
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('reports a port that accepts a connection as passing, and closes the connection', async () => {
    expect(await probeTcp({ host: '127.0.0.1', port, timeoutMs: 2_000 })).toEqual({ status: 'passing', output: `TCP connect 127.0.0.1:${port}: Success` });
    await expect.poll(() => accepted).toBe(1);
    await expect.poll(() => new Promise<number>((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count))))).toBe(0);
  });

  it('reports a closed port as critical', async () => {
    const closed = await closedPort();
    expect(await probeTcp({ host: '127.0.0.1', port: closed, timeoutMs: 2_000 })).toEqual({
      status: 'critical',
      output: `TCP connect 127.0.0.1:${closed}: Connection refused`,
    });
  });

  it('reports a connection that does not open in time as critical once the timeout has passed', async () => {
    const blackhole = await startBlackholePort();
    try {
      const started = performance.now();
      const result = await probeTcp({ host: '127.0.0.1', port: blackhole.port, timeoutMs: 300 });
      const elapsed = performance.now() - started;
      expect(result).toEqual({ status: 'critical', output: `TCP connect 127.0.0.1:${blackhole.port}: Timed out after 300 ms` });
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(300 + 500);
    } finally {
      await blackhole.close();
    }
  });

  it('reports an invalid port as critical without throwing', async () => {
    expect(await probeTcp({ host: '127.0.0.1', port: 70_000, timeoutMs: 1_000 })).toEqual({ status: 'critical', output: 'TCP connect 127.0.0.1:70000: Invalid port' });
  });

  it('ends early, as critical, when its signal aborts', async () => {
    const blackhole = await startBlackholePort();
    try {
      const controller = new AbortController();
      const pending = probeTcp({ host: '127.0.0.1', port: blackhole.port, timeoutMs: 5_000 }, { signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      expect(await pending).toMatchObject({ status: 'critical', output: expect.stringMatching(/: Probe cancelled$/) as unknown });
    } finally {
      await blackhole.close();
    }
  });
});

describe('parseHostPort', () => {
  it('splits host:port and [v6]:port', () => {
    expect(parseHostPort('10.0.0.1:8080')).toEqual({ host: '10.0.0.1', port: 8080 });
    expect(parseHostPort('db.internal:5432')).toEqual({ host: 'db.internal', port: 5432 });
    expect(parseHostPort('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
  });

  it('rejects what is not host:port', () => {
    for (const address of ['10.0.0.1', ':80', '10.0.0.1:0', '10.0.0.1:65536', '::1:80', 'host:port', '']) {
      expect(parseHostPort(address), address).toBeUndefined();
    }
  });
});
