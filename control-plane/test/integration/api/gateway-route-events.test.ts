import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openSse, type SseStream } from '../../support/sse-client.js';
import { bearer, useListeningTestApp } from '../../support/test-app.js';

interface ChangeJson {
  action: string;
  id: string;
  name: string;
  at: string;
}

describe('GET /api/v1/routes/events (Server-Sent Events over a real socket)', () => {
  const { t, base: baseUrl } = useListeningTestApp();

  const auth = () => bearer(t.adminToken);

  /** The stream, past its `: connected` comment (after which no change is missed). */
  async function connected(headers: Record<string, string>): Promise<SseStream> {
    const stream = await openSse(`${baseUrl()}/api/v1/routes/events`, headers);
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const first = await stream.next();
    expect(first?.comments).toContain('connected');
    return stream;
  }

  it('sends route.changed for each creation, replacement and deletion, in order, without ids', async () => {
    const stream = await connected(bearer(await t.tokenFor('viewer')));
    try {
      const name = `r-${randomUUID().slice(0, 8)}`;
      const created = await t.app.inject({ method: 'POST', url: '/api/v1/routes', headers: auth(), payload: { name, pathPrefix: `/${name}`, service: 'catalog' } });
      expect(created.statusCode, created.body).toBe(201);
      const id = created.json<{ id: string }>().id;
      expect((await t.app.inject({ method: 'PUT', url: `/api/v1/routes/${id}`, headers: auth(), payload: { name, pathPrefix: `/${name}`, service: 'user' } })).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/routes/${id}`, headers: auth() })).statusCode).toBe(204);

      const changes: ChangeJson[] = [];
      for (let i = 0; i < 3; i++) {
        const message = await stream.nextEvent();
        expect(message?.event).toBe('route.changed');
        expect(message?.id).toBeUndefined();
        changes.push(JSON.parse(message?.data ?? '{}') as ChangeJson);
      }
      expect(changes.map((change) => [change.action, change.id, change.name])).toEqual([
        ['created', id, name],
        ['updated', id, name],
        ['deleted', id, name],
      ]);
      for (const change of changes) expect(Number.isNaN(Date.parse(change.at))).toBe(false);
    } finally {
      stream.close();
    }
  });

  it('does not tell of a change that was refused', async () => {
    const stream = await connected(auth());
    try {
      const refused = await t.app.inject({ method: 'POST', url: '/api/v1/routes', headers: auth(), payload: { name: 'UPPER', pathPrefix: '/x', service: 'catalog' } });
      expect(refused.statusCode).toBe(400);
      const name = `r-${randomUUID().slice(0, 8)}`;
      expect((await t.app.inject({ method: 'POST', url: '/api/v1/routes', headers: auth(), payload: { name, pathPrefix: `/${name}`, service: 'catalog' } })).statusCode).toBe(201);
      const message = await stream.nextEvent();
      expect(JSON.parse(message?.data ?? '{}')).toMatchObject({ action: 'created', name });
    } finally {
      stream.close();
    }
  });

  it('asks routes:read of its caller, as GET /api/v1/routes does', async () => {
    const none = await fetch(`${baseUrl()}/api/v1/routes/events`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { code: string }).code).toBe('PORTICO_ERR_AUTH_MISSING_TOKEN');
    const agent = await fetch(`${baseUrl()}/api/v1/routes/events`, { headers: bearer(await t.tokenFor('agent')) });
    expect(agent.status).toBe(403);
    expect(((await agent.json()) as { code: string }).code).toBe('PORTICO_ERR_AUTH_FORBIDDEN');
    const operator = await connected(bearer(await t.tokenFor('operator')));
    operator.close();
  });

  it('is in the OpenAPI document, tagged with the routes', async () => {
    const document = (await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json<{ paths: Record<string, { get?: { tags?: string[]; responses?: Record<string, unknown> } }> }>();
    const get = document.paths['/api/v1/routes/events']?.get;
    expect(get?.tags).toEqual(['routes']);
    expect(Object.keys(get?.responses ?? {})).toEqual(expect.arrayContaining(['200', '401', '403']));
  });
});
