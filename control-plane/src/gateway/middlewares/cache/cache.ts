import { type Middleware, type MiddlewareContext, type ResponseObserver } from '../middleware.js';

export interface CacheConfig {
  /** How long a response is served from the cache (an instance's shorter `max-age` wins). */
  ttlSeconds: number;
  /** Responses kept at most; the least recently used go first (default 1,000). */
  maxEntries?: number;
  /** Larger responses are not kept (default 1 MiB). */
  maxBodyBytes?: number;
}

interface Entry {
  status: number;
  headers: string[];
  body: Buffer;
  storedAt: number;
  expiresAt: number;
}

/** Response headers never replayed from the cache: they describe one exchange. */
const NOT_REPLAYED = new Set(['date', 'age', 'x-cache', 'set-cookie']);

function cacheControl(headers: readonly string[]): { noStore: boolean; maxAgeMs: number | undefined } {
  let noStore = false;
  let maxAgeMs: number | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = (headers[i] as string).toLowerCase();
    if (name === 'set-cookie') noStore = true;
    if (name !== 'cache-control') continue;
    for (const directive of (headers[i + 1] as string).toLowerCase().split(',')) {
      const [key, value] = directive.trim().split('=');
      if (key === 'no-store' || key === 'private' || key === 'no-cache') noStore = true;
      if ((key === 's-maxage' || key === 'max-age') && value !== undefined) maxAgeMs = Math.min(maxAgeMs ?? Infinity, Number(value) * 1000);
    }
  }
  return { noStore, maxAgeMs };
}

/**
 * GET response caching with a TTL, in this gateway's memory. A cached answer is replayed without an
 * instance (`X-Cache: HIT`, `Age`). Only 200 answers to GET/HEAD are kept, never one the instance marks
 * `no-store`, `private` or `no-cache`, nor one setting a cookie. A request with `Authorization` or
 * `Cookie` is private to its client and bypasses the cache, unless an authentication middleware of the
 * route identified its consumer: then the cache is per consumer.
 */
export function create(config: CacheConfig, now: () => number = Date.now): Middleware {
  const ttlMs = config.ttlSeconds * 1000;
  const maxEntries = config.maxEntries ?? 1_000;
  const maxBody = config.maxBodyBytes ?? 1_048_576;
  // A Map iterates in insertion order: re-inserting on use makes the first key the least recently used.
  const entries = new Map<string, Entry>();

  return {
    name: 'cache',
    handle(context: MiddlewareContext, next: () => void): void {
      const { req, res } = context;
      const method = req.method ?? 'GET';
      const personal = req.headers.authorization !== undefined || req.headers.cookie !== undefined;
      if ((method !== 'GET' && method !== 'HEAD') || (personal && context.consumer === undefined)) {
        next();
        return;
      }
      const key = `${context.consumer ?? ''}\u0000${req.headers.host ?? ''}\u0000${context.match.path}`;
      const hit = entries.get(key);
      const at = now();
      if (hit !== undefined && hit.expiresAt > at) {
        entries.delete(key);
        entries.set(key, hit);
        res.writeHead(hit.status, [...hit.headers, 'x-cache', 'HIT', 'age', String(Math.floor((at - hit.storedAt) / 1000)), ...context.responseHeaders]);
        res.end(method === 'HEAD' ? undefined : hit.body);
        return;
      }
      if (hit !== undefined) entries.delete(key);
      context.responseHeaders.push('x-cache', 'MISS');
      if (method === 'HEAD') {
        next();
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let keep = false;
      let status = 0;
      let headers: string[] = [];
      let lifetime = ttlMs;
      const observer: ResponseObserver = {
        start(statusCode, responseHeaders) {
          const control = cacheControl(responseHeaders);
          keep = statusCode === 200 && !control.noStore;
          status = statusCode;
          headers = pairsWithout(responseHeaders);
          if (control.maxAgeMs !== undefined) lifetime = Math.min(lifetime, control.maxAgeMs);
        },
        data(chunk) {
          if (!keep) return;
          size += chunk.length;
          if (size > maxBody) keep = false;
          else chunks.push(chunk);
        },
        end() {
          if (!keep || lifetime <= 0) return;
          const storedAt = now();
          entries.set(key, { status, headers, body: Buffer.concat(chunks), storedAt, expiresAt: storedAt + lifetime });
          while (entries.size > maxEntries) entries.delete(entries.keys().next().value as string);
        },
      };
      context.observers.push(observer);
      next();
    },
  };
}

/** The header list without the ones that describe one exchange (kept in pairs). */
function pairsWithout(headers: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!NOT_REPLAYED.has((headers[i] as string).toLowerCase())) out.push(headers[i] as string, headers[i + 1] as string);
  }
  return out;
}
