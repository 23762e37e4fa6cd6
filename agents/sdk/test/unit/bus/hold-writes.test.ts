import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { holdWritesForTick } from '../../../src/bus/hold-writes.js';
import { useTestResources } from '../../support/bus.js';

const resources = useTestResources();

/** A connection to the test's own Redis, with a count of the socket writes it makes (one per `_write` or `_writev`). */
async function countedConnection(): Promise<{ redis: Redis; writes: () => number }> {
  const server = await resources.redis();
  const redis = new Redis(server.url);
  resources.add(async () => redis.disconnect());
  await new Promise((resolve) => redis.once('ready', resolve));
  let writes = 0;
  const stream = redis.stream as unknown as { _write: (...args: unknown[]) => void; _writev: (...args: unknown[]) => void };
  const write = stream._write.bind(stream);
  const writev = stream._writev.bind(stream);
  stream._write = (...args) => ((writes += 1), write(...args));
  stream._writev = (...args) => ((writes += 1), writev(...args));
  return { redis, writes: () => writes };
}

describe('holdWritesForTick (a real Redis)', () => {
  it('sends the commands of one turn of the event loop in one write, each with its own reply, in order', async () => {
    const { redis, writes } = await countedConnection();
    holdWritesForTick(redis);
    const replies = await Promise.all(Array.from({ length: 20 }, () => redis.incr('n')));
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(writes()).toBe(1);
    expect(redis.stream.writableCorked).toBe(0);
  });

  it('without it, the same commands take a write each', async () => {
    const { redis, writes } = await countedConnection();
    await Promise.all(Array.from({ length: 20 }, () => redis.incr('n')));
    expect(writes()).toBeGreaterThan(1);
  });

  it('leaves a connection that is down alone', async () => {
    const { redis } = await countedConnection();
    redis.disconnect();
    expect(() => holdWritesForTick(redis)).not.toThrow();
    expect(redis.stream.writableCorked).toBe(0);
    holdWritesForTick(undefined);
  });
});
