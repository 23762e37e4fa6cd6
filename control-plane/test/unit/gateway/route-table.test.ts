import { describe, expect, it } from 'vitest';
import { canonicalRoute, type GatewayRoute, type RouteSpec, routesOverlap } from '../../../src/gateway/gateway-route.js';
import { RouteTable } from '../../../src/gateway/route-table.js';
import { UpstreamPools } from '../../../src/gateway/upstream.js';

const spec = (overrides: Partial<RouteSpec>): RouteSpec => ({
  name: 'r',
  pathPrefix: '/shop',
  host: null,
  methods: null,
  service: 'catalog',
  stripPrefix: false,
  timeoutMs: null,
  balancer: 'round_robin',
  middlewares: {},
  resilience: {},
  ...overrides,
});
const route = (overrides: Partial<RouteSpec>): GatewayRoute => ({ ...spec(overrides), id: overrides.name ?? 'r', createdAt: new Date(0), updatedAt: new Date(0) });

const pools = new UpstreamPools({ connectTimeoutMs: 1_000, keepAliveTimeoutMs: 1_000, connections: 1 });
const snapshot = new Map([
  ['catalog', [{ instanceId: 'c1', address: '127.0.0.1', port: 1, weight: 1 }]],
  ['user', [{ instanceId: 'u1', address: '127.0.0.1', port: 2, weight: 1 }]],
  ['down', []],
]);

function table(routes: GatewayRoute[]): RouteTable {
  return RouteTable.build(snapshot, routes, RouteTable.empty, pools, 'round_robin');
}

describe('RouteTable.match', () => {
  const routes = table([
    route({ name: 'shop', pathPrefix: '/shop', service: 'catalog', stripPrefix: true, timeoutMs: 2_000 }),
    route({ name: 'shop-users', pathPrefix: '/shop/users', service: 'user', stripPrefix: true }),
    route({ name: 'shop-users-admin-host', pathPrefix: '/shop/users', host: 'admin.example', service: 'catalog' }),
    route({ name: 'writes', pathPrefix: '/api', methods: ['POST', 'PUT'], service: 'user' }),
    route({ name: 'reads', pathPrefix: '/api', methods: ['GET'], service: 'catalog' }),
    route({ name: 'nowhere', pathPrefix: '/ghost', service: 'ghost' }),
  ]);

  it.each([
    ['GET', 'shop.example', '/shop/items/1', '?q=1', 'shop', 'catalog', '/items/1?q=1', '/shop'],
    ['GET', 'shop.example', '/shop', '', 'shop', 'catalog', '/', '/shop'],
    ['GET', 'shop.example', '/shop/', '', 'shop', 'catalog', '/', '/shop'],
    ['GET', 'shop.example', '/shop/users/7', '', 'shop-users', 'user', '/7', '/shop/users'],
    ['GET', 'admin.example', '/shop/users/7', '', 'shop-users-admin-host', 'catalog', '/shop/users/7', ''],
    ['POST', 'any', '/api/orders', '', 'writes', 'user', '/api/orders', ''],
    ['GET', 'any', '/api/orders', '', 'reads', 'catalog', '/api/orders', ''],
    ['GET', 'any', '/user/profile', '', 'discovery', 'user', '/profile', '/user'],
    ['GET', 'any', '/catalog', '', 'discovery', 'catalog', '/', '/catalog'],
  ])('%s %s%s → route %s, service %s, path %s', (method, host, path, query, name, service, forwarded, prefix) => {
    expect(routes.match(host, method, path, query)).toMatchObject({ route: name, serviceName: service, path: forwarded, prefix });
  });

  it('matches prefixes at segment boundaries only', () => {
    // "/shopping" is not under "/shop", and no service is called "shopping".
    expect(routes.match('any', 'GET', '/shopping/x', '')).toBeUndefined();
  });

  it('falls through to the discovery rule when no explicit route takes the method', () => {
    expect(routes.match('any', 'DELETE', '/api/orders', '')).toBeUndefined();
    expect(routes.match('any', 'DELETE', '/user/x', '')?.route).toBe('discovery');
  });

  it('carries the route\'s timeout, and a service with no instance at all as undefined', () => {
    expect(routes.match('h', 'GET', '/shop/x', '')?.timeoutMs).toBe(2_000);
    expect(routes.match('h', 'GET', '/ghost/x', '')).toMatchObject({ route: 'nowhere', serviceName: 'ghost', service: undefined });
    expect(routes.match('h', 'GET', '/down/x', '')?.service?.upstreams).toEqual([]);
  });

  it('matches a route on "/" last, for every path', () => {
    const withRoot = table([route({ name: 'root', pathPrefix: '/', service: 'user', stripPrefix: true }), route({ name: 'shop', pathPrefix: '/shop', service: 'catalog' })]);
    expect(withRoot.match('h', 'GET', '/anything/at/all', '')).toMatchObject({ route: 'root', path: '/anything/at/all', prefix: '' });
    expect(withRoot.match('h', 'GET', '/', '')).toMatchObject({ route: 'root', path: '/' });
    expect(withRoot.match('h', 'GET', '/shop/x', '')?.route).toBe('shop');
  });
});

describe('canonicalRoute', () => {
  it('puts a route in canonical form', () => {
    expect(canonicalRoute(spec({ pathPrefix: '/shop/', host: 'Shop.Example', methods: ['post', 'GET', 'get'] }))).toMatchObject({
      pathPrefix: '/shop',
      host: 'shop.example',
      methods: ['GET', 'POST'],
    });
    expect(canonicalRoute(spec({ pathPrefix: '/' })).pathPrefix).toBe('/');
  });

  it.each([
    [{ name: 'Bad Name' }, 'name'],
    [{ service: 'no spaces' }, 'service'],
    [{ pathPrefix: 'shop' }, 'pathPrefix'],
    [{ pathPrefix: '/shop/../admin' }, 'pathPrefix'],
    [{ pathPrefix: '/shop//x' }, 'pathPrefix'],
    [{ pathPrefix: '/shop?x=1' }, 'pathPrefix'],
    [{ pathPrefix: '/a%2fb' }, 'pathPrefix'],
    [{ host: 'shop.example:8080' }, 'host'],
    [{ methods: [] }, 'methods'],
    [{ methods: ['GET', 'BAD METHOD'] }, 'methods'],
    [{ timeoutMs: 0 }, 'timeout'],
  ])('refuses %j naming %s', (overrides, field) => {
    expect(() => canonicalRoute(spec(overrides as Partial<RouteSpec>))).toThrow(expect.objectContaining({ code: 'PORTICO_ERR_REQUEST_INVALID', details: [expect.objectContaining({ location: `body/${field}` })] }));
  });

  it('finds the routes that would match the same requests', () => {
    expect(routesOverlap(spec({}), spec({ name: 'other' }))).toBe(true);
    expect(routesOverlap(spec({ methods: ['GET'] }), spec({ methods: ['POST'] }))).toBe(false);
    expect(routesOverlap(spec({ methods: ['GET'] }), spec({ methods: null }))).toBe(true);
    expect(routesOverlap(spec({ host: 'a.example' }), spec({}))).toBe(false);
    expect(routesOverlap(spec({ pathPrefix: '/shop' }), spec({ pathPrefix: '/shop/x' }))).toBe(false);
  });
});

describe('RouteTable.build', () => {
  const target = (id: string, port: number) => ({ instanceId: id, address: '127.0.0.1', port, weight: 1 });

  it('makes upstreams on first use, keeps them across snapshots, and retires the origins that leave', async () => {
    const own = new UpstreamPools({ connectTimeoutMs: 1_000, keepAliveTimeoutMs: 1_000, connections: 1 });
    const first = RouteTable.build(new Map([['svc', [target('a', 1), target('b', 2)]]]), [], RouteTable.empty, own, 'round_robin');
    const used = first.route('svc')!.upstreams;
    expect(used.map((upstream) => upstream.origin)).toEqual(['http://127.0.0.1:1', 'http://127.0.0.1:2']);
    used[0]!.inflight = 3;

    // b leaves, c joins: a is the same object (its counts stay), b's origin is retired.
    const ac = [target('a', 1), target('c', 3)];
    const second = RouteTable.build(new Map([['svc', ac]]), [], first, own, 'round_robin');
    expect(second.retired).toEqual(['http://127.0.0.1:2']);
    expect(second.route('svc')!.upstreams[0]).toBe(used[0]);
    expect(second.route('svc')!.upstreams[0]!.inflight).toBe(3);

    // A service nobody called leaves without retiring anything, having made nothing.
    // (The provider hands over the same array for a service that did not change.)
    const third = RouteTable.build(new Map([['svc', ac], ['idle', [target('x', 9)]]]), [], second, own, 'round_robin');
    const fourth = RouteTable.build(new Map([['svc', ac]]), [], third, own, 'round_robin');
    expect(fourth.retired).toEqual([]);
    expect(fourth.route('svc')).toBe(third.route('svc'));

    // The whole service leaves: its origins are retired.
    const fifth = RouteTable.build(new Map(), [], fourth, own, 'round_robin');
    expect([...fifth.retired].sort()).toEqual(['http://127.0.0.1:1', 'http://127.0.0.1:3']);
    await own.close();
  });

  it('keeps an origin two instances share until the last of them leaves', () => {
    const own = new UpstreamPools({ connectTimeoutMs: 1_000, keepAliveTimeoutMs: 1_000, connections: 1 });
    const both = RouteTable.build(new Map([['one', [target('a', 1)]], ['two', [target('b', 1)]]]), [], RouteTable.empty, own, 'round_robin');
    expect(both.route('one')!.upstreams).toHaveLength(1);
    expect(both.route('two')!.upstreams).toHaveLength(1);
    const oneLeft = RouteTable.build(new Map([['two', [target('b', 1)]]]), [], both, own, 'round_robin');
    expect(oneLeft.retired).toEqual([]);
    expect(RouteTable.build(new Map(), [], oneLeft, own, 'round_robin').retired).toEqual(['http://127.0.0.1:1']);
  });
});

describe('per-route resilience', () => {
  it('gives a route with bulkhead or breaker settings a guard of its own, keyed by its settings; others share the service\'s', () => {
    const table = RouteTable.build(
      new Map([['catalog', [{ instanceId: 'c1', address: '127.0.0.1', port: 1, weight: 1 }]]]),
      [
        route({ name: 'own', pathPrefix: '/own', resilience: { maxConcurrent: 2 } }),
        route({ name: 'retry-only', pathPrefix: '/retry-only', resilience: { retries: 0 } }),
      ],
      RouteTable.empty,
      pools,
      'round_robin',
    );
    const own = table.match('', 'GET', '/own/x', '');
    expect(own?.guardKey).toBe('route:own:{"maxConcurrent":2}');
    expect(own?.resilience).toEqual({ maxConcurrent: 2 });
    expect(table.match('', 'GET', '/retry-only/x', '')).toMatchObject({ guardKey: 'catalog', resilience: { retries: 0 } });
    expect(table.match('', 'GET', '/catalog/x', '')).toMatchObject({ guardKey: 'catalog', resilience: {} });
  });

  it('refuses settings out of range, naming the field', () => {
    for (const [resilience, field] of [
      [{ retries: -1 }, 'resilience/retries'],
      [{ retries: 6 }, 'resilience/retries'],
      [{ maxConcurrent: 0.5 }, 'resilience/maxConcurrent'],
      [{ circuitBreaker: { failureRatio: 1.5 } }, 'resilience/circuitBreaker/failureRatio'],
      [{ circuitBreaker: { minimumRequests: 0 } }, 'resilience/circuitBreaker/minimumRequests'],
      [{ circuitBreaker: { openMs: 99 } }, 'resilience/circuitBreaker/openFor'],
    ] as const) {
      expect(() => canonicalRoute(spec({ resilience }))).toThrow(expect.objectContaining({ details: [expect.objectContaining({ location: `body/${field}` })] }));
    }
    expect(canonicalRoute(spec({ resilience: { retries: 0, maxConcurrent: 1, circuitBreaker: { failureRatio: 1, minimumRequests: 1, openMs: 100 } } })).resilience.retries).toBe(0);
  });
});
