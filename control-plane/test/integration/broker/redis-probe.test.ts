import { createServer, type Server, type Socket } from 'node:net';
import getPort from 'get-port';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RedisProbe } from '../../../src/broker/redis-probe.js';
import { PorticoError } from '../../../src/errors.js';
import { redisServerInstalled, startRedisServer, type TestRedis } from '../../support/redis-server.js';

const hasRedisServer = await redisServerInstalled();

/** Awaits `promise`, expecting a PorticoError, and returns it with how long it took to arrive. */
async function rejection(promise: Promise<unknown>): Promise<{ error: PorticoError; ms: number }> {
  const started = Date.now();
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(PorticoError);
    return { error: error as PorticoError, ms: Date.now() - started };
  }
  throw new Error('expected a rejection');
}

describe('RedisProbe', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    vi.restoreAllMocks();
  });

  function probeFor(url: string): RedisProbe {
    const probe = new RedisProbe(url);
    cleanups.push(() => probe.close());
    return probe;
  }

  async function ownRedis(port?: number): Promise<TestRedis> {
    const redis = await startRedisServer(port === undefined ? {} : { port });
    cleanups.push(() => redis.stop());
    return redis;
  }

  it('resolves when Redis answers', async () => {
    const redis = await ownRedis();
    const probe = probeFor(redis.url);
    await expect(probe.ping()).resolves.toBeUndefined();
    await expect(probe.ping()).resolves.toBeUndefined();
  });

  it('rejects with PORTICO_ERR_BROKER_UNAVAILABLE within about a second when nothing listens', async () => {
    const port = await getPort({ host: '127.0.0.1' });
    const { error, ms } = await rejection(probeFor(`redis://127.0.0.1:${port}`).ping());
    expect(error.code).toBe('PORTICO_ERR_BROKER_UNAVAILABLE');
    expect(error.retryable).toBe(true);
    expect(error.message).toContain(`redis://127.0.0.1:${port}`);
    expect(ms).toBeLessThan(1_500);
  });

  it('rejects within about a second when something accepts the connection but never answers', async () => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((settle) => server.listen(0, '127.0.0.1', settle));
    cleanups.push(
      () =>
        new Promise<void>((settle) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => settle());
        }),
    );
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;

    const { error, ms } = await rejection(probeFor(`redis://127.0.0.1:${port}`).ping());
    expect(error.code).toBe('PORTICO_ERR_BROKER_UNAVAILABLE');
    expect(ms).toBeLessThan(1_500);
  });

  it.skipIf(!hasRedisServer)('rejects within ~1.5 s once Redis is killed, quietly, and recovers when it returns', async () => {
    const consoleCalls = (['log', 'warn', 'error', 'info', 'debug'] as const).map((method) =>
      vi.spyOn(console, method).mockImplementation(() => undefined),
    );
    const redis = await ownRedis();
    const probe = probeFor(redis.url);
    await probe.ping();

    redis.kill();
    const { error, ms } = await rejection(probe.ping());
    expect(error.code).toBe('PORTICO_ERR_BROKER_UNAVAILABLE');
    expect(ms).toBeLessThan(1_500);
    const second = await rejection(probe.ping());
    expect(second.ms).toBeLessThan(1_500);

    await redis.stop();
    await ownRedis(redis.port);
    // It reconnects in the background (back-off capped at 1 s), so within a few tries it is ready again.
    await vi.waitFor(() => probe.ping(), { timeout: 5_000, interval: 100 });

    for (const spy of consoleCalls) expect(spy).not.toHaveBeenCalled();
  });

  it('keeps a password out of its error message', async () => {
    const port = await getPort({ host: '127.0.0.1' });
    const { error } = await rejection(probeFor(`redis://:s3cret-pass@127.0.0.1:${port}`).ping());
    expect(error.message).not.toContain('s3cret-pass');
    expect(error.message).toContain('***');
  });

  it('rejects after close, and close is idempotent', async () => {
    const redis = await ownRedis();
    const probe = new RedisProbe(redis.url);
    await probe.ping();
    await probe.close();
    await probe.close();
    const { error } = await rejection(probe.ping());
    expect(error.code).toBe('PORTICO_ERR_BROKER_UNAVAILABLE');
    expect(error.message).toContain('closed');
  });

  it('closes cleanly when it never connected', async () => {
    const probe = new RedisProbe('redis://127.0.0.1:1');
    await expect(probe.close()).resolves.toBeUndefined();
  });
});
