import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openSse, type SseStream } from '../../support/sse-client.js';
import { bearer, useListeningTestApp } from '../../support/test-app.js';

interface TopologyJson {
  services: Array<{ service: string; queue: string; consumes: string[]; declaredAt: string }>;
  types: Record<string, string[]>;
}

describe('GET /api/v1/topology/events (Server-Sent Events over a real socket)', () => {
  const { t, base: baseUrl } = useListeningTestApp();

  const auth = () => bearer(t.adminToken);

  async function open(headers: Record<string, string>): Promise<SseStream> {
    const stream = await openSse(`${baseUrl()}/api/v1/topology/events`, headers);
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const first = await stream.next();
    expect(first?.comments).toContain('connected');
    return stream;
  }

  /** The next `topology` event's document; it carries no id. */
  async function nextTopology(stream: SseStream): Promise<TopologyJson> {
    const message = await stream.nextEvent();
    expect(message?.event).toBe('topology');
    expect(message?.id).toBeUndefined();
    return JSON.parse(message?.data ?? '{}') as TopologyJson;
  }

  async function current(): Promise<TopologyJson> {
    return (await t.app.inject({ method: 'GET', url: '/api/v1/topology', headers: auth() })).json<TopologyJson>();
  }

  it('sends ": connected", the whole topology, then the whole topology again after each change', async () => {
    const service = `svc-${randomUUID().slice(0, 8)}`;
    expect((await t.app.inject({ method: 'PUT', url: `/api/v1/topology/services/${service}`, headers: auth(), payload: { consumes: ['first.type'] } })).statusCode).toBe(200);
    const stream = await open(bearer(await t.tokenFor('viewer')));
    try {
      expect(await nextTopology(stream)).toEqual(await current());

      const declared = await t.app.inject({ method: 'PUT', url: `/api/v1/topology/services/${service}`, headers: auth(), payload: { consumes: ['second.type', 'first.type'] } });
      expect(declared.statusCode).toBe(200);
      const afterDeclare = await nextTopology(stream);
      expect(afterDeclare).toEqual(await current());
      expect(afterDeclare.services.find((s) => s.service === service)).toMatchObject({ queue: `${service}_service_queue`, consumes: ['first.type', 'second.type'] });
      expect(afterDeclare.types['second.type']).toContain(service);

      expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/topology/services/${service}`, headers: auth() })).statusCode).toBe(204);
      const afterDelete = await nextTopology(stream);
      expect(afterDelete.services.map((s) => s.service)).not.toContain(service);
    } finally {
      stream.close();
    }
  });

  it('sends nothing for a refused change or a declaration that changes nothing', async () => {
    const service = `svc-${randomUUID().slice(0, 8)}`;
    expect((await t.app.inject({ method: 'PUT', url: `/api/v1/topology/services/${service}`, headers: auth(), payload: { consumes: ['same.type'] } })).statusCode).toBe(200);
    const stream = await open(bearer(await t.tokenFor('agent', [service])));
    try {
      await nextTopology(stream);
      expect((await t.app.inject({ method: 'PUT', url: `/api/v1/topology/services/${service}`, headers: auth(), payload: { consumes: ['bad type'] } })).statusCode).toBe(400);
      expect((await t.app.inject({ method: 'PUT', url: `/api/v1/topology/services/${service}`, headers: auth(), payload: { consumes: ['same.type'] } })).statusCode).toBe(200);
      const marker = `svc-${randomUUID().slice(0, 8)}`;
      expect((await t.app.inject({ method: 'PUT', url: `/api/v1/topology/services/${marker}`, headers: auth(), payload: { consumes: ['marker.type'] } })).statusCode).toBe(200);
      // The next event is the marker's change: nothing was sent for the two before it.
      const next = await nextTopology(stream);
      expect(next.services.map((s) => s.service)).toContain(marker);
      expect(next.services.find((s) => s.service === service)?.consumes).toEqual(['same.type']);
    } finally {
      stream.close();
    }
  });

  it('folds a burst of changes into documents that end with the last state', async () => {
    const service = `svc-${randomUUID().slice(0, 8)}`;
    const stream = await open(auth());
    try {
      await nextTopology(stream);
      for (let i = 0; i < 20; i++) {
        expect((await t.app.inject({ method: 'PUT', url: `/api/v1/topology/services/${service}`, headers: auth(), payload: { consumes: [`burst.${i}`] } })).statusCode).toBe(200);
      }
      let last: TopologyJson | undefined;
      for (let i = 0; i < 20; i++) {
        last = await nextTopology(stream);
        if (last.services.find((s) => s.service === service)?.consumes[0] === 'burst.19') break;
      }
      expect(last?.services.find((s) => s.service === service)?.consumes).toEqual(['burst.19']);
    } finally {
      stream.close();
    }
  });

  it('asks topology:read of its caller, as GET /api/v1/topology does', async () => {
    const none = await fetch(`${baseUrl()}/api/v1/topology/events`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { code: string }).code).toBe('PORTICO_ERR_AUTH_MISSING_TOKEN');
    const bad = await fetch(`${baseUrl()}/api/v1/topology/events`, { headers: bearer(`ptc_${randomUUID()}`) });
    expect(bad.status).toBe(401);
    const operator = await open(bearer(await t.tokenFor('operator')));
    await nextTopology(operator);
    operator.close();
  });

  it('is in the OpenAPI document, tagged with the topology', async () => {
    const document = (await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json<{ paths: Record<string, { get?: { tags?: string[]; responses?: Record<string, unknown> } }> }>();
    const get = document.paths['/api/v1/topology/events']?.get;
    expect(get?.tags).toEqual(['topology']);
    expect(Object.keys(get?.responses ?? {})).toEqual(expect.arrayContaining(['200', '401', '403']));
    expect(JSON.stringify(get?.responses?.['200'])).toContain('text/event-stream');
  });
});
