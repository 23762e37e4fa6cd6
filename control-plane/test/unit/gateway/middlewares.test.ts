import { describe, expect, it } from 'vitest';
import { canonicalRoute, type RouteSpec } from '../../../src/gateway/gateway-route.js';
import { hashApiKey } from '../../../src/gateway/middlewares/api-key/api-key.js';
import { type Middleware, runMiddlewares } from '../../../src/gateway/middlewares/middleware.js';
import { type RouteMiddlewares } from '../../../src/gateway/middlewares/pipeline.js';
import { MemoryBuckets } from '../../../src/gateway/middlewares/rate-limit/rate-limit.js';

describe('MemoryBuckets', () => {
  it('lets a burst through, then one request per 1/rate seconds, saying how long to wait', () => {
    let now = 0;
    const buckets = new MemoryBuckets(() => now);
    const take = () => buckets.take('k', 2, 3);
    expect([take(), take(), take()].every((result) => result.allowed)).toBe(true);
    expect(take()).toEqual({ allowed: false, retryAfterMs: 500 });
    now += 250;
    expect(take()).toEqual({ allowed: false, retryAfterMs: 250 });
    now += 250;
    expect(take().allowed).toBe(true);
    expect(buckets.take('other', 2, 3).allowed).toBe(true);
  });
});

describe('runMiddlewares', () => {
  it('runs middlewares in order and goes on only when each calls next', () => {
    const seen: string[] = [];
    const step = (name: string, goOn: boolean): Middleware => ({ name, handle: (_context, next) => (seen.push(name), goOn ? next() : undefined) });
    let done = false;
    runMiddlewares([step('a', true), step('b', true)], {} as never, () => (done = true));
    expect([seen, done]).toEqual([['a', 'b'], true]);
    seen.length = 0;
    done = false;
    runMiddlewares([step('a', true), step('b', false), step('c', true)], {} as never, () => (done = true));
    expect([seen, done]).toEqual([['a', 'b'], false]);
  });
});

describe('canonicalRoute middlewares', () => {
  const spec = (middlewares: RouteMiddlewares): RouteSpec => ({
    name: 'r', pathPrefix: '/r', host: null, methods: null, service: 's', stripPrefix: false, timeoutMs: null, balancer: 'round_robin', middlewares, resilience: {},
  });

  it('fills in defaults', () => {
    expect(canonicalRoute(spec({ rateLimit: { requestsPerSecond: 5 } })).middlewares.rateLimit).toEqual({ requestsPerSecond: 5, key: 'ip', store: 'memory' });
    expect(canonicalRoute(spec({ apiKey: { header: 'X-Key', keys: [{ name: 'a', hash: hashApiKey('k') }] } })).middlewares.apiKey?.header).toBe('x-key');
  });

  it.each([
    [{ cors: { origins: [] } }, 'cors/origins'],
    [{ cors: { origins: ['shop.example'] } }, 'cors/origins'],
    [{ cors: { origins: ['*'], credentials: true } }, 'cors/credentials'],
    [{ apiKey: { keys: [] } }, 'apiKey/keys'],
    [{ apiKey: { keys: [{ name: 'a', hash: 'not-a-hash' }] } }, 'apiKey/keys'],
    [{ apiKey: { keys: [{ name: 'a', hash: hashApiKey('k') }, { name: 'b', hash: hashApiKey('k') }] } }, 'apiKey/keys'],
    [{ jwt: { issuer: '', audience: 'a', jwksUrl: 'https://idp.example/jwks' } }, 'jwt/issuer'],
    [{ jwt: { issuer: 'i', audience: [], jwksUrl: 'https://idp.example/jwks' } }, 'jwt/audience'],
    [{ jwt: { issuer: 'i', audience: 'a', jwksUrl: 'file:///etc/keys' } }, 'jwt/jwksUrl'],
    [{ jwt: { issuer: 'i', audience: 'a', jwksUrl: 'https://idp.example/jwks', algorithms: ['HS256'] } }, 'jwt/algorithms'],
    [{ jwt: { issuer: 'i', audience: 'a', jwksUrl: 'https://idp.example/jwks', claims: { sub: 'bad header' } } }, 'jwt/claims'],
    [{ aggregate: { parts: [] } }, 'aggregate/parts'],
    [{ aggregate: { parts: [{ name: 'a', service: 's', path: '/x' }, { name: 'a', service: 't', path: '/y' }] } }, 'aggregate/parts'],
    [{ aggregate: { parts: [{ name: 'errors', service: 's', path: '/x' }] } }, 'aggregate/parts'],
    [{ aggregate: { parts: [{ name: 'a', service: 's', path: '/x/../y' }] } }, 'aggregate/parts'],
    [{ cache: { ttlSeconds: 0 } }, 'cache/ttlSeconds'],
    [{ rateLimit: { requestsPerSecond: 0 } }, 'rateLimit/requestsPerSecond'],
    [{ rateLimit: { requestsPerSecond: 1, burst: 0 } }, 'rateLimit/burst'],
    [{ rateLimit: { requestsPerSecond: 1, key: 'cookie' } }, 'rateLimit/key'],
  ] as Array<[RouteMiddlewares, string]>)('refuses %j naming %s', (middlewares, field) => {
    expect(() => canonicalRoute(spec(middlewares))).toThrow(expect.objectContaining({ details: [expect.objectContaining({ location: `body/middlewares/${field}` })] }));
  });
});
