/**
 * The control plane's own connection to the message bus (BullMQ on Redis), for the queue admin API and
 * the messages an operator sends. The control plane is never on the message path: services add and
 * consume jobs directly; this connection only looks and acts on an operator's request.
 */

import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { QUEUE_PREFIX } from '@portico/sdk/bus/queues';
import { redactUrl } from '../broker/redis-probe.js';
import { whenReady } from '../broker/redis-ready.js';
import { PorticoError } from '../errors.js';

/** How long an operation may wait for Redis to (re)connect before the caller gets a 503. */
const READY_TIMEOUT_MS = 1_000;
/** Bound on one admin operation (several commands), so a request never hangs on a Redis that stopped answering. */
const OPERATION_TIMEOUT_MS = 3_000;

export interface BusConnectionOptions {
  /** A `redis://` or `rediss://` URL (`PORTICO_REDIS_URL`, or the private Redis's). */
  url: string;
  /** Where connection errors are reported (at debug: the outcome of each request reports them). */
  logger?: { debug(object: object, message?: string): void };
}

/**
 * One Redis connection shared by every BullMQ `Queue` the control plane uses.
 *
 * It fails fast rather than queueing: no offline queue, one retry per command, a bounded wait for a
 * reconnection, and a bound on each operation, so that while Redis is down every call rejects within
 * about a second with `PORTICO_ERR_MESSAGING_UNAVAILABLE` instead of hanging. The connection keeps
 * reconnecting in the background, so calls succeed again as soon as Redis answers.
 */
export class BusConnection {
  readonly #url: string;
  readonly #redis: Redis;
  readonly #queues = new Map<string, Queue>();
  #closed = false;

  constructor(options: BusConnectionOptions) {
    this.#url = options.url;
    this.#redis = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: READY_TIMEOUT_MS,
      commandTimeout: OPERATION_TIMEOUT_MS,
      // Capped low, so that the admin API recovers within about a second of Redis returning.
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
    });
    this.#redis.on('error', (error: unknown) => options.logger?.debug({ err: error }, 'message bus connection error'));
  }

  /**
   * Run `work` once Redis answers, with the raw client (for key scans) and the BullMQ objects from
   * `queue`.
   *
   * @throws PorticoError `PORTICO_ERR_MESSAGING_UNAVAILABLE` when Redis is not connected within about a
   *   second, or a command fails for want of a connection, or the work takes longer than a few seconds
   *   (the driver's error as `cause`). A `PorticoError` thrown by `work` passes unchanged.
   */
  async run<T>(work: (redis: Redis) => Promise<T>): Promise<T> {
    if (this.#closed) throw this.#unavailable('the connection is closed');
    try {
      await whenReady(this.#redis, READY_TIMEOUT_MS);
    } catch (error) {
      throw this.#unavailable(error instanceof Error ? error.message : String(error), error);
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work(this.#redis),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${OPERATION_TIMEOUT_MS} ms`)), OPERATION_TIMEOUT_MS);
        }),
      ]);
    } catch (error) {
      throw this.#toPorticoError(error);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The BullMQ queue `name` over this connection (one object per name, kept). Use inside `run`. */
  queue(name: string): Queue {
    let queue = this.#queues.get(name);
    if (queue === undefined) {
      queue = new Queue(name, { connection: this.#redis, prefix: QUEUE_PREFIX, skipVersionCheck: true });
      // Failures reach the caller of each operation; the queue's own 'error' events would only repeat them.
      queue.on('error', () => undefined);
      this.#queues.set(name, queue);
    }
    return queue;
  }

  /** Close the BullMQ objects and the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const parts = [...this.#queues.values()];
    this.#queues.clear();
    // Over a shared connection closing them releases nothing but listeners; one stuck initialising
    // while Redis is away would never settle, so they are not waited for.
    for (const part of parts) void part.close().catch(() => undefined);
    if (this.#redis.status === 'ready') {
      await this.#redis.quit().catch(() => this.#redis.disconnect());
    } else {
      this.#redis.disconnect();
    }
  }

  /**
   * The one place driver failures become Portico's errors. Anything from BullMQ or ioredis that is not
   * a `PorticoError` means Redis could not carry the operation out: a lost connection, a timeout, or a
   * script error, all of which an operator resolves on the Redis side.
   */
  #toPorticoError(error: unknown): PorticoError {
    if (error instanceof PorticoError) return error;
    // BullMQ objects made while Redis was away may be stuck initialising: make them again next time.
    for (const queue of this.#queues.values()) void queue.close().catch(() => undefined);
    this.#queues.clear();
    return this.#unavailable(error instanceof Error ? error.message : String(error), error);
  }

  #unavailable(reason: string, cause?: unknown): PorticoError {
    return new PorticoError('PORTICO_ERR_MESSAGING_UNAVAILABLE', { message: `Redis at ${redactUrl(this.#url)} cannot carry out the operation: ${reason}.`, cause });
  }
}
