import { type Redis } from 'ioredis';

/**
 * Resolves once `redis` is connected and ready, connecting a lazy client that has not started; rejects
 * after `timeoutMs` with the last connection error the driver reported (or a timeout error). The client
 * keeps reconnecting in the background either way.
 */
export function whenReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  // The outcome is observed through 'ready' below; the promise of connect() says nothing more.
  if (redis.status === 'wait') redis.connect().catch(() => undefined);
  return new Promise<void>((resolve, reject) => {
    let lastError: unknown;
    const onReady = (): void => {
      cleanUp();
      resolve();
    };
    const onError = (error: unknown): void => {
      lastError = error;
    };
    const timer = setTimeout(
      () => {
        cleanUp();
        reject(lastError instanceof Error ? lastError : new Error(`not connected within ${timeoutMs} ms`));
      },
      Math.max(0, timeoutMs),
    );
    const cleanUp = (): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
    };
    redis.on('ready', onReady);
    redis.on('error', onError);
  });
}
