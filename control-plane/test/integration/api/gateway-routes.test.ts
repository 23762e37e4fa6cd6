import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearer, useTestApp } from '../../support/test-app.js';

interface RouteView {
  id: string;
  name: string;
  pathPrefix: string;
  host: string | null;
  methods: string[] | null;
  service: string;
  stripPrefix: boolean;
  timeout: string | null;
  balancer: string;
  createdAt: string;
  updatedAt: string;
}

describe('/api/v1/routes', () => {
  const t = useTestApp();
  const name = () => `r-${randomUUID().slice(0, 8)}`;

  async function create(body: Record<string, unknown>, token = t.adminToken) {
    return t.app.inject({ method: 'POST', url: '/api/v1/routes', headers: bearer(token), payload: body });
  }

  it('creates a route in canonical form, reads, lists, replaces and deletes it, auditing each change', async () => {
    const routeName = name();
    const prefix = `/${routeName}/catalog`;
    const created = await create({ name: routeName, pathPrefix: `${prefix}/`, host: 'Shop.Example', methods: ['get', 'POST'], service: 'catalog', stripPrefix: true, timeout: '1.5s' });
    expect(created.statusCode, created.body).toBe(201);
    const route = created.json<RouteView>();
    expect(route).toMatchObject({ name: routeName, pathPrefix: prefix, host: 'shop.example', methods: ['GET', 'POST'], service: 'catalog', stripPrefix: true, timeout: '1500ms', balancer: 'round_robin' });

    expect((await t.app.inject({ method: 'GET', url: `/api/v1/routes/${route.id}`, headers: bearer(t.adminToken) })).json()).toEqual(route);
    const list = (await t.app.inject({ method: 'GET', url: '/api/v1/routes', headers: bearer(t.adminToken) })).json<{ routes: RouteView[] }>();
    expect(list.routes).toContainEqual(route);

    const replaced = await t.app.inject({ method: 'PUT', url: `/api/v1/routes/${route.id}`, headers: bearer(t.adminToken), payload: { name: routeName, pathPrefix: prefix, service: 'user', balancer: 'least_request' } });
    expect(replaced.statusCode, replaced.body).toBe(200);
    expect(replaced.json()).toMatchObject({ id: route.id, service: 'user', host: null, methods: null, stripPrefix: false, timeout: null, balancer: 'least_request', createdAt: route.createdAt });

    const deleted = await t.app.inject({ method: 'DELETE', url: `/api/v1/routes/${route.id}`, headers: bearer(t.adminToken) });
    expect(deleted.statusCode).toBe(204);
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/routes/${route.id}`, headers: bearer(t.adminToken) })).json()).toMatchObject({ code: 'PORTICO_ERR_ROUTE_NOT_FOUND' });

    const audit = await t.store.audit.list({ limit: 500 });
    expect(audit.filter((entry) => entry.target === `route:${route.id}`).map((entry) => entry.action)).toEqual(['route.delete', 'route.update', 'route.create']);
  });

  it('keeps a route\'s own resilience settings, and refuses ones out of range without storing anything', async () => {
    const routeName = name();
    const resilience = { retries: 0, maxConcurrent: 8, circuitBreaker: { failureRatio: 0.25, minimumRequests: 10, openFor: '2s' } };
    const created = await create({ name: routeName, pathPrefix: `/${routeName}`, service: 'catalog', resilience });
    expect(created.statusCode, created.body).toBe(201);
    const route = created.json<RouteView & { resilience: unknown }>();
    expect(route.resilience).toEqual({ retries: 0, maxConcurrent: 8, circuitBreaker: { failureRatio: 0.25, minimumRequests: 10, openFor: '2000ms' } });
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/routes/${route.id}`, headers: bearer(t.adminToken) })).json()).toEqual(route);
    // Without settings: the gateway's defaults, shown as an empty object.
    const plain = name();
    expect((await create({ name: plain, pathPrefix: `/${plain}`, service: 'catalog' })).json()).toMatchObject({ resilience: {} });

    const before = await t.counts();
    for (const [bad, location] of [
      [{ retries: 6 }, 'body/resilience/retries'],
      [{ retries: 1.5 }, 'body/resilience/retries'],
      [{ maxConcurrent: 0 }, 'body/resilience/maxConcurrent'],
      [{ circuitBreaker: { failureRatio: 0 } }, 'body/resilience/circuitBreaker/failureRatio'],
      [{ circuitBreaker: { openFor: 'soon' } }, 'body/resilience/circuitBreaker/openFor'],
      [{ circuitBreaker: { openFor: '10ms' } }, 'body/resilience/circuitBreaker/openFor'],
      [{ bulkhead: 3 }, 'body/resilience'],
    ] as const) {
      const other = name();
      const res = await create({ name: other, pathPrefix: `/${other}`, service: 'catalog', resilience: bad });
      expect(res.statusCode, JSON.stringify(bad)).toBe(400);
      expect(res.json(), JSON.stringify(bad)).toMatchObject({ code: 'PORTICO_ERR_REQUEST_INVALID', details: [expect.objectContaining({ location: expect.stringContaining(location) })] });
    }
    expect(await t.counts()).toEqual(before);
  });

  it('refuses a route that matches the same requests as another, or takes its name, and changes nothing', async () => {
    const first = name();
    expect((await create({ name: first, pathPrefix: `/${first}`, service: 'catalog', methods: ['GET'] })).statusCode).toBe(201);
    const before = await t.counts();

    const overlapping = await create({ name: name(), pathPrefix: `/${first}`, service: 'user' });
    expect(overlapping.statusCode).toBe(409);
    expect(overlapping.json()).toMatchObject({ code: 'PORTICO_ERR_ROUTE_CONFLICT', details: { route: first } });
    const taken = await create({ name: first, pathPrefix: `/${first}-other`, service: 'user' });
    expect(taken.statusCode).toBe(409);
    expect(taken.json()).toMatchObject({ code: 'PORTICO_ERR_ROUTE_NAME_TAKEN' });
    expect(await t.counts()).toEqual(before);

    // Other methods on the same prefix are another route.
    expect((await create({ name: name(), pathPrefix: `/${first}`, service: 'user', methods: ['POST'] })).statusCode).toBe(201);
  });

  it.each([
    [{ pathPrefix: '/x', service: 'catalog' }, 'body'],
    [{ name: 'UPPER', pathPrefix: '/x', service: 'catalog' }, 'body/name'],
    [{ name: 'ok', pathPrefix: '/a/../b', service: 'catalog' }, 'body/pathPrefix'],
    [{ name: 'ok', pathPrefix: '/a', service: 'catalog', timeout: 'soon' }, 'body/timeout'],
    [{ name: 'ok', pathPrefix: '/a', service: 'catalog', host: 'a.example:80' }, 'body/host'],
    [{ name: 'ok', pathPrefix: '/a', service: 'catalog', balancer: 'random' }, 'body/balancer'],
    [{ name: 'ok', pathPrefix: '/a', service: 'catalog', extra: 1 }, 'body'],
  ])('refuses %j with a 400 naming %s, and changes nothing', async (body, location) => {
    const before = await t.counts();
    const res = await create(body);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toMatchObject({ code: 'PORTICO_ERR_REQUEST_INVALID' });
    expect(JSON.stringify(res.json())).toContain(location);
    expect(await t.counts()).toEqual(before);
    expect((await t.store.routes.list()).some((route) => route.name === 'ok' || route.name === 'UPPER')).toBe(false);
  });

  it('lets viewers read routes, operators change them, and agents do neither', async () => {
    const viewer = await t.tokenFor('viewer');
    const operator = await t.tokenFor('operator');
    const agent = await t.tokenFor('agent');
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/routes', headers: bearer(viewer) })).statusCode).toBe(200);
    expect((await create({ name: name(), pathPrefix: `/${name()}`, service: 'catalog' }, viewer)).statusCode).toBe(403);
    expect((await create({ name: name(), pathPrefix: `/${name()}`, service: 'catalog' }, operator)).statusCode).toBe(201);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/routes', headers: bearer(agent) })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/routes' })).statusCode).toBe(401);
  });

  it('answers 404 for an unknown route on read, replace and delete', async () => {
    const id = randomUUID();
    expect((await t.app.inject({ method: 'GET', url: `/api/v1/routes/${id}`, headers: bearer(t.adminToken) })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'PUT', url: `/api/v1/routes/${id}`, headers: bearer(t.adminToken), payload: { name: name(), pathPrefix: '/x', service: 's' } })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/routes/${id}`, headers: bearer(t.adminToken) })).statusCode).toBe(404);
  });
});
