import { type Redis } from 'ioredis';

/**
 * Hold `redis`'s writes until the end of this turn of the event loop, then send them together (`cork`,
 * then `uncork` on the next tick, as node:http does with a response): the commands issued meanwhile
 * reach Redis in one write instead of one each. The bytes, their order and every reply are unchanged.
 * Does nothing while the connection is down or already held.
 */
export function holdWritesForTick(redis: Redis | undefined): void {
  const stream = redis?.stream;
  if (stream === undefined || !stream.writable || stream.writableCorked > 0) return;
  stream.cork();
  process.nextTick(uncork, stream);
}

function uncork(stream: Redis['stream']): void {
  stream.uncork();
}
