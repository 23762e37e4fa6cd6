import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearer, type TestApp, useTestApp } from '../../support/test-app.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const WRITE_METHODS = new Set<Method>(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Every admin route, as the OpenAPI document lists them, with path parameters filled in. */
function adminRoutes(t: TestApp): Array<{ method: Method; url: string }> {
  const doc = t.app.swagger() as { paths: Record<string, Record<string, unknown>> };
  return Object.entries(doc.paths)
    .filter(([path]) => path.startsWith('/api/v1/'))
    .flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => ({
        method: method.toUpperCase() as Method,
        url: path.replace(/\{[^}]+\}/g, randomUUID()),
      })),
    );
}

describe('admin API authentication and authorisation', () => {
  const t = useTestApp();

  it('finds the admin routes to check', () => {
    const routes = adminRoutes(t).map((r) => `${r.method} ${r.url.replace(/[0-9a-f-]{36}/, ':id')}`);
    expect(routes).toEqual(expect.arrayContaining(['GET /api/v1/tokens', 'POST /api/v1/tokens', 'DELETE /api/v1/tokens/:id', 'GET /api/v1/audit', 'GET /api/v1/me']));
  });

  it('answers 401 on every admin route without a token', async () => {
    for (const { method, url } of adminRoutes(t)) {
      const res = await t.app.inject({ method, url, payload: WRITE_METHODS.has(method) ? { name: 'x', role: 'admin' } : undefined });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
      expect(res.json().code, `${method} ${url}`).toBe('PORTICO_ERR_AUTH_MISSING_TOKEN');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  it('answers 401 on every admin route for an unknown token or a malformed header', async () => {
    for (const { method, url } of adminRoutes(t)) {
      const unknown = await t.app.inject({ method, url, headers: bearer(`ptc_${randomUUID()}`) });
      expect(unknown.statusCode, `${method} ${url}`).toBe(401);
      expect(unknown.json().code).toBe('PORTICO_ERR_AUTH_INVALID_TOKEN');
      const basic = await t.app.inject({ method, url, headers: { authorization: `Basic ${Buffer.from(`x:${t.adminToken}`).toString('base64')}` } });
      expect(basic.statusCode, `${method} ${url}`).toBe(401);
    }
  });

  it('answers 401, not 404, for unknown paths under /api/v1 without a token', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/no-such-thing' });
    expect(res.statusCode).toBe(401);
    const authed = await t.app.inject({ method: 'GET', url: '/api/v1/no-such-thing', headers: bearer(t.adminToken) });
    expect(authed.statusCode).toBe(404);
    expect(authed.json().code).toBe('PORTICO_ERR_REQUEST_NOT_FOUND');
  });

  it('answers 403 to a viewer on every write route, and writes nothing', async () => {
    const viewer = await t.tokenFor('viewer');
    const before = await t.counts();
    const writes = adminRoutes(t).filter((r) => WRITE_METHODS.has(r.method));
    expect(writes.length).toBeGreaterThan(0);
    for (const { method, url } of writes) {
      const res = await t.app.inject({ method, url, headers: bearer(viewer), payload: method === 'DELETE' ? undefined : { name: `v-${randomUUID()}`, role: 'admin' } });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(res.json().code).toBe('PORTICO_ERR_AUTH_FORBIDDEN');
    }
    // Deleting a real token must be refused too, not just a made-up id.
    const victim = (await t.tokens.list())[0]!;
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${victim.id}`, headers: bearer(viewer) });
    expect(del.statusCode).toBe(403);
    expect(await t.counts()).toEqual(before);
  });

  it('lets each role do what it may and no more', async () => {
    const cases: Array<[role: 'admin' | 'operator' | 'viewer' | 'agent', url: string, status: number]> = [
      ['viewer', '/api/v1/audit', 200],
      ['viewer', '/api/v1/tokens', 403],
      ['operator', '/api/v1/audit', 200],
      ['operator', '/api/v1/tokens', 403],
      ['agent', '/api/v1/audit', 403],
      ['agent', '/api/v1/me', 200],
      ['admin', '/api/v1/tokens', 200],
    ];
    for (const [role, url, status] of cases) {
      const secret = role === 'admin' ? t.adminToken : await t.tokenFor(role);
      const res = await t.app.inject({ method: 'GET', url, headers: bearer(secret) });
      expect(res.statusCode, `${role} GET ${url}`).toBe(status);
    }
    const operator = await t.tokenFor('operator');
    const create = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(operator), payload: { name: `o-${randomUUID()}`, role: 'viewer' } });
    expect(create.statusCode).toBe(403);
  });

  it('accepts the scheme in any case, and rejects a token once revoked', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: `bearer ${t.adminToken}` }, payload: { name: `r-${randomUUID()}`, role: 'viewer' } });
    expect(res.statusCode).toBe(201);
    const { token, secret } = res.json<{ token: { id: string }; secret: string }>();
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(secret) })).statusCode).toBe(200);
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${token.id}`, headers: bearer(t.adminToken) });
    expect(del.statusCode).toBe(204);
    const after = await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(secret) });
    expect(after.statusCode).toBe(401);
    expect(after.json().code).toBe('PORTICO_ERR_AUTH_INVALID_TOKEN');
  });

  it('leaves health, metrics and the OpenAPI document open to probes', async () => {
    for (const url of ['/healthz', '/metrics', '/api/openapi.json']) {
      expect((await t.app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
  });
});
