import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearer, useTestApp } from '../../support/test-app.js';

interface ServiceEntry {
  service: string;
  queue: string;
  consumes: string[];
  declaredAt: string;
}

interface TopologyJson {
  services: ServiceEntry[];
  types: Record<string, string[]>;
}

describe('/api/v1/topology', () => {
  const t = useTestApp();
  /** A service name and message types no other test uses. */
  const unique = () => randomUUID().slice(0, 8);

  async function declare(service: string, consumes: unknown, token = t.adminToken) {
    return t.app.inject({ method: 'PUT', url: `/api/v1/topology/services/${service}`, headers: bearer(token), payload: { consumes } });
  }

  async function read(token = t.adminToken): Promise<TopologyJson> {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/topology', headers: bearer(token) });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<TopologyJson>();
  }

  async function auditOf(service: string) {
    return (await t.store.audit.list({ limit: 1_000 })).filter((entry) => entry.target === `service:${service}`);
  }

  it('declares, reads, replaces and deletes a service\'s set, indexing types by consumer and auditing each change', async () => {
    const id = unique();
    const [catalog, inventory, user] = [`catalog-${id}`, `inventory-${id}`, `user-${id}`];
    const changed = `product.availability_changed.${id}`;
    const command = `sku_set_availability_${id}`;

    const declared = await declare(catalog, [command, changed]);
    expect(declared.statusCode, declared.body).toBe(200);
    const entry = declared.json<ServiceEntry>();
    expect(entry).toMatchObject({ service: catalog, queue: `${catalog}_service_queue`, consumes: [changed, command] });
    expect(Number.isNaN(Date.parse(entry.declaredAt))).toBe(false);
    expect((await declare(user, [changed])).statusCode).toBe(200);
    expect((await declare(inventory, [changed, `sku_update_wishlist_${id}`])).statusCode).toBe(200);

    let topology = await read();
    expect(topology.services.find((s) => s.service === catalog)).toEqual(entry);
    expect(topology.types[changed]).toEqual([catalog, inventory, user]);
    expect(topology.types[command]).toEqual([catalog]);
    const names = topology.services.map((s) => s.service);
    expect(names).toEqual([...names].sort());
    const types = Object.keys(topology.types);
    expect(types).toEqual([...types].sort());

    const replaced = await declare(catalog, [command, `catalog.rebuilt.${id}`]);
    expect(replaced.statusCode, replaced.body).toBe(200);
    expect(replaced.json<ServiceEntry>().consumes).toEqual([`catalog.rebuilt.${id}`, command]);
    topology = await read();
    expect(topology.types[changed]).toEqual([inventory, user]);
    expect(topology.types[`catalog.rebuilt.${id}`]).toEqual([catalog]);

    const deleted = await t.app.inject({ method: 'DELETE', url: `/api/v1/topology/services/${catalog}`, headers: bearer(t.adminToken) });
    expect(deleted.statusCode, deleted.body).toBe(204);
    expect(deleted.body).toBe('');
    topology = await read();
    expect(topology.services.map((s) => s.service)).not.toContain(catalog);
    expect(topology.types[command]).toBeUndefined();
    expect(topology.types[changed]).toEqual([inventory, user]);

    const audit = await auditOf(catalog);
    expect(audit.map((e) => e.action)).toEqual(['topology.delete', 'topology.declare', 'topology.declare']);
    expect(audit[2]).toMatchObject({ actorName: expect.stringMatching(/^admin-/), details: { consumes: [changed, command], added: [changed, command], removed: [] } });
    expect(audit[1]!.details).toEqual({ consumes: [`catalog.rebuilt.${id}`, command], added: [`catalog.rebuilt.${id}`], removed: [changed] });
    expect(audit[0]!.details).toEqual({ consumes: [`catalog.rebuilt.${id}`, command] });
  });

  it('changes and audits nothing when the same set is declared again, in another order', async () => {
    const service = `same-${unique()}`;
    const first = (await declare(service, ['b.event', 'a.event'])).json<ServiceEntry>();
    const before = await t.counts();
    const again = await declare(service, ['a.event', 'b.event']);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(first);
    expect(await t.counts()).toEqual(before);
    expect((await auditOf(service)).map((e) => e.action)).toEqual(['topology.declare']);
  });

  it('removes a service\'s subscriptions when it declares an empty set', async () => {
    const service = `empty-${unique()}`;
    expect((await declare(service, ['x.happened'])).statusCode).toBe(200);
    const emptied = await declare(service, []);
    expect(emptied.statusCode, emptied.body).toBe(200);
    expect(emptied.json()).toMatchObject({ service, queue: `${service}_service_queue`, consumes: [] });
    expect((await read()).services.map((s) => s.service)).not.toContain(service);
    expect((await auditOf(service))[0]).toMatchObject({ action: 'topology.declare', details: { consumes: [], added: [], removed: ['x.happened'] } });
    const deleted = await t.app.inject({ method: 'DELETE', url: `/api/v1/topology/services/${service}`, headers: bearer(t.adminToken) });
    expect(deleted.statusCode).toBe(404);
  });

  it('answers 404 PORTICO_ERR_TOPOLOGY_SERVICE_NOT_FOUND when deleting a service that consumes nothing', async () => {
    const before = await t.counts();
    const res = await t.app.inject({ method: 'DELETE', url: `/api/v1/topology/services/ghost-${unique()}`, headers: bearer(t.adminToken) });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'PORTICO_ERR_TOPOLOGY_SERVICE_NOT_FOUND', statusCode: 404 });
    expect(await t.counts()).toEqual(before);
  });

  describe('who may do what', () => {
    it('lets every role read, agents included', async () => {
      for (const role of ['operator', 'viewer', 'agent'] as const) {
        const res = await t.app.inject({ method: 'GET', url: '/api/v1/topology', headers: bearer(await t.tokenFor(role)) });
        expect(res.statusCode, role).toBe(200);
      }
    });

    it('lets an agent declare for its own service, and answers 403 for another, changing nothing', async () => {
      const [own, other] = [`own-${unique()}`, `other-${unique()}`];
      const agent = await t.tokenFor('agent', [own]);
      expect((await declare(other, ['kept.type'])).statusCode).toBe(200);
      const before = await t.counts();

      const refused = await declare(other, ['taken.over'], agent);
      expect(refused.statusCode).toBe(403);
      expect(refused.json()).toMatchObject({ code: 'PORTICO_ERR_TOPOLOGY_SERVICE_FORBIDDEN', details: { service: other } });
      expect(await t.counts()).toEqual(before);
      expect((await read()).services.find((s) => s.service === other)?.consumes).toEqual(['kept.type']);

      const allowed = await declare(own, ['mine.happened'], agent);
      expect(allowed.statusCode, allowed.body).toBe(200);
      expect((await auditOf(own))[0]).toMatchObject({ action: 'topology.declare', actorName: expect.stringMatching(/^agent-/) });

      const deleted = await t.app.inject({ method: 'DELETE', url: `/api/v1/topology/services/${own}`, headers: bearer(agent) });
      expect(deleted.statusCode).toBe(403);
      expect(deleted.json().code).toBe('PORTICO_ERR_AUTH_FORBIDDEN');
    });

    it('answers 403 to a viewer on PUT and DELETE, changing nothing', async () => {
      const service = `viewed-${unique()}`;
      expect((await declare(service, ['seen.type'])).statusCode).toBe(200);
      const viewer = await t.tokenFor('viewer');
      const before = await t.counts();
      const put = await declare(service, ['other.type'], viewer);
      expect(put.statusCode).toBe(403);
      expect(put.json().code).toBe('PORTICO_ERR_AUTH_FORBIDDEN');
      const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/topology/services/${service}`, headers: bearer(viewer) });
      expect(del.statusCode).toBe(403);
      expect(await t.counts()).toEqual(before);
      expect((await read()).services.find((s) => s.service === service)?.consumes).toEqual(['seen.type']);
    });

    it('lets an operator declare and delete for any service', async () => {
      const operator = await t.tokenFor('operator');
      const service = `operated-${unique()}`;
      expect((await declare(service, ['op.type'], operator)).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/topology/services/${service}`, headers: bearer(operator) })).statusCode).toBe(204);
    });
  });

  describe('bad input: a coded 400, and nothing changed', () => {
    const cases: Array<[name: string, consumes: unknown, code: string]> = [
      ['a type that is not a valid name', ['good.type', 'bad type!'], 'PORTICO_ERR_TOPOLOGY_INVALID_TYPE'],
      ['a type starting with a dot', ['.hidden'], 'PORTICO_ERR_TOPOLOGY_INVALID_TYPE'],
      ['a type longer than 128', ['x'.repeat(129)], 'PORTICO_ERR_TOPOLOGY_INVALID_TYPE'],
      ['a type listed twice', ['a.type', 'b.type', 'a.type'], 'PORTICO_ERR_TOPOLOGY_INVALID_TYPE'],
      ['more than 256 types', Array.from({ length: 257 }, (_, i) => `type.${i}`), 'PORTICO_ERR_TOPOLOGY_TOO_MANY_TYPES'],
      ['consumes not an array', 'a.type', 'PORTICO_ERR_REQUEST_INVALID'],
      ['a type that is not a string', ['a.type', 7], 'PORTICO_ERR_REQUEST_INVALID'],
    ];
    for (const [name, consumes, code] of cases) {
      it(name, async () => {
        const service = `bad-${unique()}`;
        expect((await declare(service, ['kept.type'])).statusCode).toBe(200);
        const before = await t.counts();
        const res = await declare(service, consumes);
        expect(res.statusCode, res.body).toBe(400);
        const body = res.json<{ code: string; message: string; statusCode: number }>();
        expect(body.code).toBe(code);
        expect(body.statusCode).toBe(400);
        expect(body.message.length).toBeGreaterThan(10);
        expect(await t.counts()).toEqual(before);
        expect((await read()).services.find((s) => s.service === service)?.consumes).toEqual(['kept.type']);
      });
    }

    it('names every bad type, by position', async () => {
      const res = await declare(`bad-${unique()}`, ['ok', 'no way', 'ok', '']);
      expect(res.json()).toMatchObject({
        code: 'PORTICO_ERR_TOPOLOGY_INVALID_TYPE',
        details: [
          { location: 'body/consumes/1', problem: expect.stringContaining('not a valid message type') },
          { location: 'body/consumes/2', problem: expect.stringContaining('consumes/0') },
          { location: 'body/consumes/3', problem: expect.stringContaining('not a valid message type') },
        ],
      });
    });

    it('an unknown field, or a service name the registry would refuse', async () => {
      const extra = await t.app.inject({ method: 'PUT', url: `/api/v1/topology/services/x-${unique()}`, headers: bearer(t.adminToken), payload: { consumes: [], extra: 1 } });
      expect(extra.statusCode).toBe(400);
      expect(extra.json().code).toBe('PORTICO_ERR_REQUEST_INVALID');
      const before = await t.counts();
      const badName = await declare('-bad', ['a.type']);
      expect(badName.statusCode).toBe(400);
      expect(badName.json().code).toBe('PORTICO_ERR_REQUEST_INVALID');
      expect(await t.counts()).toEqual(before);
    });

    it('accepts exactly 256 types', async () => {
      const service = `wide-${unique()}`;
      const res = await declare(service, Array.from({ length: 256 }, (_, i) => `type.${String(i).padStart(3, '0')}`));
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json<ServiceEntry>().consumes).toHaveLength(256);
    });
  });

  it('documents every topology route in the OpenAPI document', async () => {
    const doc = (await t.app.inject('/api/openapi.json')).json<{ paths: Record<string, Record<string, { tags?: string[]; responses: Record<string, unknown> }>> }>();
    const routes = [
      ['/api/v1/topology', 'get', ['200']],
      ['/api/v1/topology/services/{service}', 'put', ['200', '400']],
      ['/api/v1/topology/services/{service}', 'delete', ['204', '404']],
      ['/api/v1/topology/events', 'get', ['200']],
    ] as const;
    for (const [path, method, statuses] of routes) {
      const operation = doc.paths[path]?.[method];
      expect(operation, `${method} ${path}`).toBeDefined();
      expect(operation!.tags).toEqual(['topology']);
      expect(Object.keys(operation!.responses)).toEqual(expect.arrayContaining([...statuses, '401', '403']));
    }
    expect(JSON.stringify(doc.paths['/api/v1/topology']!.get!.responses['200'])).toContain('declaredAt');
  });
});
