/**
 * A cheap "is Redis there?" check, for `/readyz` and for start-up.
 */

import { Redis } from 'ioredis';
import { PorticoError } from '../errors.js';
import { whenReady } from './redis-ready.js';

const TIMEOUT_MS = 1_000;

/**
 * Answers whether the Redis at a URL responds to PING, quickly either way.
 *
 * It keeps one connection that reconnects in the background (so a Redis that comes back is seen by
 * the next `ping`), never queues commands while disconnected, and swallows the driver's `error`
 * events: the outcome of `ping` is the only report.
 */
export class RedisProbe {
  private readonly redis: Redis;
  private readonly url: string;
  private closed = false;

  /** @param url - A `redis://` or `rediss://` URL. Nothing is connected until the first `ping`. */
  constructor(url: string) {
    this.url = url;
    this.redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      connectTimeout: TIMEOUT_MS,
      commandTimeout: TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      // Capped low so that readiness recovers within about a second of Redis returning.
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
    });
    // Without a listener ioredis reports each failed attempt on the console; `ping` reports instead.
    this.redis.on('error', () => undefined);
  }

  /**
   * Sends PING and waits for PONG, at most about one second.
   *
   * @throws PorticoError `PORTICO_ERR_BROKER_UNAVAILABLE` when Redis does not answer in time (or
   *   answers with an error, e.g. it wants a password), the driver's error as `cause`; or when the
   *   probe has been closed.
   */
  async ping(): Promise<void> {
    if (this.closed) throw this.unavailable('the probe is closed');
    const deadline = Date.now() + TIMEOUT_MS;
    try {
      await whenReady(this.redis, deadline - Date.now());
      await withDeadline(this.redis.ping(), deadline);
    } catch (error) {
      throw this.unavailable(error instanceof Error ? error.message : String(error), error);
    }
  }

  /** Closes the connection and stops reconnecting. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.redis.status === 'ready') {
      try {
        await withDeadline(this.redis.quit(), Date.now() + TIMEOUT_MS);
        return;
      } catch {
        // Fall through: a dead connection is simply dropped.
      }
    }
    this.redis.disconnect(false);
  }

  private unavailable(reason: string, cause?: unknown): PorticoError {
    return new PorticoError('PORTICO_ERR_BROKER_UNAVAILABLE', {
      message: `Redis at ${redactUrl(this.url)} did not answer PING: ${reason}`,
      cause,
    });
  }
}

/** The URL with any password replaced, fit for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable URL)';
  }
}

function withDeadline<T>(promise: Promise<T>, deadline: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no answer within ${TIMEOUT_MS} ms`)),
      Math.max(0, deadline - Date.now()),
    );
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
