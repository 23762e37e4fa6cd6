import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalCheck } from '../../../src/checks/local-check.js';

const target = (port: number) => ({ address: '127.0.0.1', port });

describe('local checks', () => {
  let server: Server;
  let port: number;
  let closedPort: number;

  beforeAll(async () => {
    server = createServer((request, response) => {
      const status = Number(request.url?.slice(1));
      if (status === 0) return; // never answers
      response.statusCode = status;
      response.end(`status ${status}`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    const probe = createTcpServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it.each([
    [200, 'passing'],
    [204, 'passing'],
    [429, 'warning'],
    [500, 'critical'],
    [404, 'critical'],
    [301, 'critical'],
  ])('HTTP: %i is %s, with the status line and body in the output', async (status, expected) => {
    const result = await createLocalCheck({ path: `/${status}` }, target(port)).run(1_000);
    expect(result.status).toBe(expected);
    expect(result.output).toContain(`HTTP GET http://127.0.0.1:${port}/${status}: ${status}`);
  });

  it('HTTP: no answer within the timeout is critical', async () => {
    const started = Date.now();
    const result = await createLocalCheck({ path: '/0' }, target(port)).run(150);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(result).toEqual({ status: 'critical', output: `HTTP GET http://127.0.0.1:${port}/0: no complete answer within 150 ms` });
  });

  it('HTTP and TCP: a refused connection is critical, said plainly', async () => {
    expect(await createLocalCheck({ path: '/health' }, target(closedPort)).run(500)).toEqual({
      status: 'critical',
      output: `HTTP GET http://127.0.0.1:${closedPort}/health: connection refused`,
    });
    expect(await createLocalCheck({ tcp: true }, target(closedPort)).run(500)).toEqual({ status: 'critical', output: `TCP connect 127.0.0.1:${closedPort}: connection refused` });
  });

  it('TCP: a connection that opens is passing, on the instance\'s port or a named one', async () => {
    expect((await createLocalCheck({ tcp: true }, target(port)).run(500)).status).toBe('passing');
    expect((await createLocalCheck({ tcp: `127.0.0.1:${port}` }, target(1)).run(500)).status).toBe('passing');
  });

  it('functions: booleans, statuses and results count; throwing or hanging is critical', async () => {
    const run = (fn: Parameters<typeof createLocalCheck>[0]) => createLocalCheck(fn, target(port)).run(100);
    expect(await run(() => true)).toEqual({ status: 'passing', output: 'healthy' });
    expect(await run(() => false)).toEqual({ status: 'critical', output: 'unhealthy' });
    expect(await run(async () => 'warning' as const)).toEqual({ status: 'warning', output: 'warning' });
    expect(await run(() => ({ status: 'passing', output: 'db ok' }))).toEqual({ status: 'passing', output: 'db ok' });
    expect(await run(() => {
      throw new Error('db down');
    })).toEqual({ status: 'critical', output: 'the health function failed: db down' });
    let aborted = false;
    const hanging = await run((signal) => new Promise<boolean>(() => signal.addEventListener('abort', () => (aborted = true))));
    expect(hanging).toEqual({ status: 'critical', output: 'the health function did not answer within 100 ms' });
    expect(aborted).toBe(true);
  });

  it('without a check, the heartbeat says the process is alive', async () => {
    expect((await createLocalCheck(undefined, target(port)).run(100)).status).toBe('passing');
  });
});
