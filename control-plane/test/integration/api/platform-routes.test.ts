import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { redisServerInstalled, startRedisServer } from '../../support/redis-server.js';
import { bearer, createTestApp, useTestApp } from '../../support/test-app.js';

const canKillRedis = await redisServerInstalled();

describe('health, readiness, metrics and OpenAPI', () => {
  const t = useTestApp();

  it('reports alive and ready when the store and Redis answer', async () => {
    expect((await t.app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await t.app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready', checks: { store: { ok: true }, redis: { ok: true }, registry: { ok: true } } });
  });

  it('counts API requests by route template in Prometheus format, with process metrics', async () => {
    const id = randomUUID();
    await t.app.inject({ method: 'GET', url: `/api/v1/tokens/${id}`, headers: bearer(t.adminToken) });
    const res = await t.app.inject('/metrics');
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.body).toContain('process_cpu_user_seconds_total');
    expect(res.body).toMatch(/portico_http_requests_total\{method="GET",route="\/api\/v1\/tokens\/:id",status_code="404"\} 1/);
    expect(res.body).toMatch(/portico_http_request_duration_seconds_bucket\{le="\+Inf",method="GET",route="\/api\/v1\/tokens\/:id",status_code="404"\} 1/);
    expect(res.body).not.toContain(id);
  });

  it('serves an OpenAPI 3 document generated from the route schemas', async () => {
    const doc = (await t.app.inject('/api/openapi.json')).json<{
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, { anyOf?: Array<{ const?: string; enum?: string[] }> }> } }> }; responses: Record<string, unknown> }>>;
      components: { securitySchemes: Record<string, unknown>; schemas: Record<string, unknown> };
    }>();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/tokens', '/api/v1/tokens/{id}', '/api/v1/audit', '/healthz', '/readyz']));
    const create = doc.paths['/api/v1/tokens']!.post!;
    const roleSchema = create.requestBody!.content['application/json']!.schema.properties.role!;
    expect(JSON.stringify(roleSchema)).toContain('viewer');
    expect(Object.keys(create.responses)).toEqual(expect.arrayContaining(['201', '400', '401', '403', '409']));
    expect(doc.components.securitySchemes).toHaveProperty('bearer');
    expect(doc.components.schemas).toHaveProperty('ErrorResponse');
    expect(doc.paths['/metrics']).toBeUndefined();
  });

  it('pages the audit log newest first and filters by action', async () => {
    const names = [0, 1, 2, 3, 4].map((i) => `page-${i}-${randomUUID()}`);
    for (const name of names) {
      await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(t.adminToken), payload: { name, role: 'viewer' } });
    }
    const first = (await t.app.inject({ method: 'GET', url: '/api/v1/audit?limit=2&action=token.create', headers: bearer(t.adminToken) })).json<{
      entries: Array<{ id: number; details: { name: string } }>;
      next: number | null;
    }>();
    expect(first.entries.map((e) => e.details.name)).toEqual([names[4], names[3]]);
    expect(first.next).toBe(first.entries[1]!.id);
    const second = (await t.app.inject({ method: 'GET', url: `/api/v1/audit?limit=2&action=token.create&before=${first.next}`, headers: bearer(t.adminToken) })).json<{
      entries: Array<{ details: { name: string } }>;
    }>();
    expect(second.entries.map((e) => e.details.name)).toEqual([names[2], names[1]]);
    const none = (await t.app.inject({ method: 'GET', url: '/api/v1/audit?action=nothing.happened', headers: bearer(t.adminToken) })).json<{ entries: unknown[]; next: null }>();
    expect(none).toEqual({ entries: [], next: null });
  });

  // Needs a Redis of its own to kill; CI installs redis-server, so this runs there.
  it.skipIf(!canKillRedis)('reports not ready, naming the reason, when Redis stops answering', async () => {
    const own = await startRedisServer();
    const app = await createTestApp({ redisUrl: own.url });
    try {
      expect((await app.app.inject('/readyz')).statusCode).toBe(200);
      own.kill();
      const res = await app.app.inject('/readyz');
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ status: 'not_ready', checks: { store: { ok: true }, redis: { ok: false, code: 'PORTICO_ERR_BROKER_UNAVAILABLE' } } });
      expect((await app.app.inject('/healthz')).statusCode).toBe(200);
    } finally {
      await app.close();
      await own.stop();
    }
  });

  it('reports not ready when the store is closed', async () => {
    const app = await createTestApp({ redisUrl: t.redisUrl });
    try {
      await app.store.close();
      const res = await app.app.inject('/readyz');
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ checks: { store: { ok: false }, redis: { ok: true } } });
    } finally {
      await app.close();
    }
  });
});
