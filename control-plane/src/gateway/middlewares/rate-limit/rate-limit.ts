import { type Redis } from 'ioredis';
import { sendError } from '../../respond.js';
import { type Middleware, type MiddlewareContext } from '../middleware.js';

export interface RateLimitConfig {
  /** Tokens added per second: the sustained rate allowed per client key. */
  requestsPerSecond: number;
  /** Bucket size: how many requests a quiet client may send at once (default: one second's worth). */
  burst?: number;
  /** What a limit is counted per: the client's address, the authenticated consumer, or a request header. */
  key?: 'ip' | 'consumer' | `header:${string}`;
  /** `memory`: per gateway process; `redis`: one limit shared by every gateway replica. */
  store?: 'memory' | 'redis';
}

/** A token bucket store: take one token for `key`, or say how long until there is one. */
export interface BucketStore {
  take(key: string, rate: number, burst: number): Promise<{ allowed: boolean; retryAfterMs: number }> | { allowed: boolean; retryAfterMs: number };
}

/** Buckets in this process's memory; idle buckets are dropped once full again. */
export class MemoryBuckets implements BucketStore {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  take(key: string, rate: number, burst: number): { allowed: boolean; retryAfterMs: number } {
    const now = this.#now();
    const bucket = this.#buckets.get(key) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.at = now;
    if (this.#buckets.size > 100_000) this.#sweep(rate, burst, now);
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, retryAfterMs: 0 };
    }
    return { allowed: false, retryAfterMs: Math.ceil(((1 - bucket.tokens) / rate) * 1000) };
  }

  #sweep(rate: number, burst: number, now: number): void {
    for (const [key, bucket] of this.#buckets) if (bucket.tokens + ((now - bucket.at) / 1000) * rate >= burst) this.#buckets.delete(key);
  }
}

/**
 * The same token bucket in Redis, one Lua script per request so that check and take are atomic, timed
 * by Redis' own clock so gateway replicas with skewed clocks still share one limit.
 */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + (now - at) / 1000 * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return { allowed, retry }
`;

export class RedisBuckets implements BucketStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix = 'portico:ratelimit:') {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  async take(key: string, rate: number, burst: number): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const [allowed, retry] = (await this.#redis.eval(TAKE, 1, `${this.#prefix}${key}`, rate, burst)) as [number, number];
    return { allowed: allowed === 1, retryAfterMs: retry };
  }
}

/**
 * Rate limiting per client key with a token bucket: over the limit, 429 with `Retry-After` (whole
 * seconds, at least 1), and the instance never sees the request. If the shared store cannot be reached,
 * requests go through (failing open) rather than the route going down with Redis; the error is logged.
 */
export function create(config: RateLimitConfig, deps: { route: string; buckets: BucketStore; onError?: (error: unknown) => void }): Middleware {
  const rate = config.requestsPerSecond;
  const burst = config.burst ?? Math.max(1, Math.ceil(rate));
  const keyOf = (context: MiddlewareContext): string => {
    const by = config.key ?? 'ip';
    if (by === 'consumer') return `c:${context.consumer ?? context.req.socket.remoteAddress ?? ''}`;
    if (by.startsWith('header:')) {
      const value = context.req.headers[by.slice('header:'.length).toLowerCase()];
      return `h:${(Array.isArray(value) ? value[0] : value) ?? ''}`;
    }
    return `ip:${context.req.socket.remoteAddress ?? ''}`;
  };
  const refuse = (context: MiddlewareContext, retryAfterMs: number) =>
    sendError(context.res, 'PORTICO_ERR_GATEWAY_RATE_LIMITED', `Rate limit of ${rate}/s on route "${deps.route}" reached.`, {
      'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
    });
  return {
    name: 'rateLimit',
    handle(context: MiddlewareContext, next: () => void): void {
      const key = `${deps.route}:${keyOf(context)}`;
      const taken = deps.buckets.take(key, rate, burst);
      if (!(taken instanceof Promise)) {
        if (taken.allowed) next();
        else refuse(context, taken.retryAfterMs);
        return;
      }
      taken.then(
        (result) => (result.allowed ? next() : refuse(context, result.retryAfterMs)),
        (error: unknown) => {
          deps.onError?.(error);
          next();
        },
      );
    },
  };
}
