import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer } from '../../support/redis-server.js';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { consulToken, expectConsulError, put, read, register, uniqueName } from './consul-support.js';

const NODE_KEYS = ['Address', 'CreateIndex', 'Datacenter', 'ID', 'Meta', 'ModifyIndex', 'Node', 'TaggedAddresses'];
const CHECK_KEYS = [
  'CheckID',
  'CreateIndex',
  'Definition',
  'ExposedPort',
  'Interval',
  'ModifyIndex',
  'Name',
  'Node',
  'Notes',
  'Output',
  'ServiceID',
  'ServiceName',
  'ServiceTags',
  'Status',
  'Timeout',
  'Type',
];

interface CatalogEntry {
  Node: string;
  ServiceID: string;
  ServiceTags: string[];
  ModifyIndex: number;
}
interface HealthEntry {
  Node: Record<string, unknown>;
  Service: Record<string, unknown>;
  Checks: Array<Record<string, unknown>>;
}

describe('Consul API: catalog, health, agent and status reads', () => {
  let redis: Awaited<ReturnType<typeof startRedisServer>>;
  let t: TestApp;
  let nodeName: string;

  beforeAll(async () => {
    redis = await startRedisServer();
    t = await createTestApp({ redisUrl: redis.url });
    nodeName = (await read<{ Config: { NodeName: string } }>(t, '/v1/agent/self')).body.Config.NodeName;
  });
  afterAll(async () => {
    await t.close();
    await redis.stop();
  });

  /** A service with two instances: `-a` (tags primary, v1; TTL passing) and `-b` (tag v2; TTL critical). */
  async function twoInstances(): Promise<string> {
    const name = uniqueName();
    for (const [suffix, tags, port] of [['a', ['primary', 'v1'], 8001], ['b', ['v2'], 8002]] as const) {
      const res = await register(t, { Name: name, ID: `${name}-${suffix}`, Address: '10.0.0.5', Port: port, Tags: tags, Meta: { zone: suffix }, Check: { TTL: '1m' } });
      expect(res.statusCode, res.body).toBe(200);
    }
    await put(t, `/v1/agent/check/pass/service:${name}-a?note=fine`);
    return name;
  }

  it('lists services with their tags on /v1/catalog/services', async () => {
    const name = await twoInstances();
    const { body, index, res } = await read<Record<string, string[]>>(t, '/v1/catalog/services');
    expect(body[name]).toEqual(['primary', 'v1', 'v2']);
    expect(index).toBeGreaterThan(1);
    expect(res.headers['x-consul-knownleader']).toBe('true');
    expect(res.headers['x-consul-lastcontact']).toBe('0');
  });

  it('lists instances on /v1/catalog/service/:name with Consul\'s CatalogService fields, and filters by ?tag', async () => {
    const name = await twoInstances();
    const { body, index } = await read<Array<Record<string, unknown>>>(t, `/v1/catalog/service/${name}`);
    expect(body).toHaveLength(2);
    expect(body[0]).toMatchObject({
      Node: nodeName,
      Address: '127.0.0.1',
      Datacenter: 'dc1',
      ServiceID: `${name}-a`,
      ServiceName: name,
      ServiceTags: ['primary', 'v1'],
      ServiceAddress: '10.0.0.5',
      ServicePort: 8001,
      ServiceMeta: { zone: 'a' },
      ServiceWeights: { Passing: 1, Warning: 1 },
      ServiceEnableTagOverride: false,
    });
    expect(typeof body[0]?.CreateIndex).toBe('number');
    expect(Math.max(...body.map((entry) => entry.ModifyIndex as number))).toBe(index);

    const tagged = await read<CatalogEntry[]>(t, `/v1/catalog/service/${name}?tag=v2`);
    expect(tagged.body.map((e) => e.ServiceID)).toEqual([`${name}-b`]);
    const both = await read<CatalogEntry[]>(t, `/v1/catalog/service/${name}?tag=primary&tag=v1`);
    expect(both.body.map((e) => e.ServiceID)).toEqual([`${name}-a`]);
    expect((await read<CatalogEntry[]>(t, `/v1/catalog/service/${name}?tag=primary&tag=v2`)).body).toEqual([]);
    expect((await read<CatalogEntry[]>(t, `/v1/catalog/service/${uniqueName('unknown')}`)).body).toEqual([]);
  });

  it('answers /v1/health/service/:name with Node, Service and Checks (serfHealth included), and honours ?passing and ?tag', async () => {
    const name = await twoInstances();
    const { body } = await read<HealthEntry[]>(t, `/v1/health/service/${name}`);
    expect(body.map((e) => e.Service.ID)).toEqual([`${name}-a`, `${name}-b`]);
    const [a] = body;
    expect(Object.keys(a!).sort()).toEqual(['Checks', 'Node', 'Service']);
    expect(Object.keys(a!.Node).sort()).toEqual(NODE_KEYS);
    expect(a!.Node).toMatchObject({ Node: nodeName, Datacenter: 'dc1' });
    expect(a!.Service).toMatchObject({
      ID: `${name}-a`,
      Service: name,
      Tags: ['primary', 'v1'],
      Address: '10.0.0.5',
      Port: 8001,
      Meta: { zone: 'a' },
      Weights: { Passing: 1, Warning: 1 },
      EnableTagOverride: false,
    });
    expect(a!.Checks.map((c) => c.CheckID)).toEqual([`service:${name}-a`, 'serfHealth']);
    for (const check of a!.Checks) expect(Object.keys(check).sort()).toEqual(CHECK_KEYS);
    expect(a!.Checks[0]).toMatchObject({ Node: nodeName, Name: `Service '${name}' check`, Status: 'passing', Output: 'fine', ServiceID: `${name}-a`, ServiceName: name, ServiceTags: ['primary', 'v1'], Type: 'ttl' });
    expect(a!.Checks[1]).toMatchObject({ Name: 'Serf Health Status', Status: 'passing', ServiceID: '', ServiceName: '' });

    const passing = await read<HealthEntry[]>(t, `/v1/health/service/${name}?passing`);
    expect(passing.body.map((e) => e.Service.ID)).toEqual([`${name}-a`]);
    expect((await read<HealthEntry[]>(t, `/v1/health/service/${name}?passing=false`)).body).toHaveLength(2);
    expect((await read<HealthEntry[]>(t, `/v1/health/service/${name}?tag=v2`)).body.map((e) => e.Service.ID)).toEqual([`${name}-b`]);
    expect((await read<HealthEntry[]>(t, `/v1/health/service/${name}?tag=v2&passing=1`)).body).toEqual([]);
    const bad = await t.app.inject({ method: 'GET', url: `/v1/health/service/${name}?passing=perhaps`, headers: consulToken(t.adminToken) });
    expectConsulError(bad, 400, 'PORTICO_ERR_REQUEST_INVALID', /\?passing/);
  });

  it('lists a service\'s checks on /v1/health/checks/:name', async () => {
    const name = await twoInstances();
    const { body } = await read<Array<Record<string, unknown>>>(t, `/v1/health/checks/${name}`);
    expect(body.map((c) => [c.CheckID, c.Status])).toEqual([
      [`service:${name}-a`, 'passing'],
      [`service:${name}-b`, 'critical'],
    ]);
    for (const check of body) expect(Object.keys(check).sort()).toEqual(CHECK_KEYS);
  });

  it('describes HTTP checks with Go durations', async () => {
    const name = uniqueName();
    const res = await register(t, {
      Name: name,
      Address: '10.0.0.7',
      Port: 80,
      Check: { HTTP: 'http://10.0.0.7/health', Interval: '1m30s', Timeout: '500ms', Header: { 'X-Probe': ['a', 'b'] }, Method: 'HEAD', DeregisterCriticalServiceAfter: '90m' },
    });
    expect(res.statusCode, res.body).toBe(200);
    const [check] = (await read<Array<Record<string, unknown>>>(t, `/v1/health/checks/${name}`)).body;
    expect(check).toMatchObject({
      Type: 'http',
      Interval: '1m30s',
      Timeout: '500ms',
      Definition: { HTTP: 'http://10.0.0.7/health', Method: 'HEAD', Header: { 'X-Probe': ['a, b'] }, Interval: '1m30s', Timeout: '500ms', DeregisterCriticalServiceAfter: '1h30m0s' },
    });
  });

  it('describes the node on /v1/agent/self and the leader on /v1/status/leader, which needs no token', async () => {
    const self = (await read<{ Config: Record<string, unknown>; Member: Record<string, unknown> }>(t, '/v1/agent/self')).body;
    expect(self.Config).toMatchObject({ Datacenter: 'dc1', NodeName: nodeName, Server: true });
    expect(self.Config.Version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(self.Config.NodeID).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(self.Member).toMatchObject({ Name: nodeName, Status: 1 });

    const leader = await t.app.inject({ method: 'GET', url: '/v1/status/leader' });
    expect(leader.statusCode).toBe(200);
    expect(leader.headers['content-type']).toMatch(/^application\/json/);
    expect(leader.json()).toBe('127.0.0.1:8300');
    const peers = await t.app.inject({ method: 'GET', url: '/v1/status/peers' });
    expect(peers.json()).toEqual(['127.0.0.1:8300']);
  });

  it('gives every read an X-Consul-Index that only grows, per service and for the registry', async () => {
    const name = uniqueName();
    const other = uniqueName('other');
    const urls = [`/v1/health/service/${name}`, `/v1/catalog/service/${name}`, `/v1/health/checks/${name}`];
    const indexes = async () => Promise.all([...urls, '/v1/catalog/services', '/v1/agent/services'].map(async (url) => (await read(t, url)).index));

    const before = await indexes();
    for (const index of before) expect(index).toBeGreaterThanOrEqual(1);
    expect((await register(t, { Name: name, Port: 80, Check: { TTL: '1m' } })).statusCode).toBe(200);
    const registered = await indexes();
    registered.forEach((index, i) => expect(index, String(i)).toBeGreaterThan(before[i]!));
    // All three per-service reads watch the service's own index.
    expect(new Set(registered.slice(0, 3)).size).toBe(1);

    await put(t, `/v1/agent/check/pass/service:${name}`);
    const passed = await indexes();
    passed.forEach((index, i) => expect(index, String(i)).toBeGreaterThan(registered[i]!));

    expect((await register(t, { Name: other, Port: 80 })).statusCode).toBe(200);
    const afterOther = await indexes();
    expect(afterOther.slice(0, 3)).toEqual(passed.slice(0, 3));
    expect(afterOther[3]).toBeGreaterThan(passed[3]!);

    await put(t, `/v1/agent/service/deregister/${name}`);
    const gone = await indexes();
    gone.forEach((index, i) => expect(index, String(i)).toBeGreaterThan(afterOther[i]!));
  });

  it('accepts ?dc=dc1, ?stale and ?consistent, and refuses what Consul refuses', async () => {
    const name = await twoInstances();
    for (const query of ['?dc=dc1', '?stale', '?consistent', '?stale=1&near=_agent', '?cached']) {
      expect((await read<HealthEntry[]>(t, `/v1/health/service/${name}${query}`)).body).toHaveLength(2);
    }
    expect((await read(t, `/v1/catalog/services?stale`)).res.headers['x-consul-effective-consistency']).toBe('stale');

    const dc2 = await t.app.inject({ method: 'GET', url: `/v1/catalog/service/${name}?dc=dc2`, headers: consulToken(t.adminToken) });
    expectConsulError(dc2, 500, 'PORTICO_ERR_CONSUL_UNKNOWN_DATACENTER', /^No path to datacenter \(/);
    for (const [query, text] of [
      ['?stale&consistent', /Cannot specify \?stale with \?consistent/],
      ['?index=abc', /Invalid index "abc"/],
      ['?index=-1', /Invalid index/],
      ['?index=5&wait=forever', /Invalid wait time "forever"/],
      ['?filter=Service.Port%20%3D%3D%2080', /\?filter/],
    ] as const) {
      const res = await t.app.inject({ method: 'GET', url: `/v1/health/service/${name}${query}`, headers: consulToken(t.adminToken) });
      expectConsulError(res, 400, 'PORTICO_ERR_REQUEST_INVALID', text);
    }
  });

  it('lets every role read, and refuses reads without a valid token', async () => {
    const name = await twoInstances();
    for (const role of ['viewer', 'operator', 'agent'] as const) {
      const secret = await t.tokenFor(role, ['somewhere-else']);
      expect((await read<HealthEntry[]>(t, `/v1/health/service/${name}`, secret)).body).toHaveLength(2);
    }
    for (const url of ['/v1/catalog/services', `/v1/catalog/service/${name}`, `/v1/health/service/${name}`, `/v1/health/checks/${name}`, '/v1/agent/services', '/v1/agent/checks', '/v1/agent/self']) {
      expectConsulError(await t.app.inject({ method: 'GET', url }), 403, 'PORTICO_ERR_AUTH_MISSING_TOKEN', /^ACL not found/);
      expectConsulError(await t.app.inject({ method: 'GET', url, headers: consulToken('nope') }), 403, 'PORTICO_ERR_AUTH_INVALID_TOKEN', /^ACL not found/);
    }
  });

  it('keeps the Consul routes out of the admin API\'s OpenAPI document', () => {
    const doc = t.app.swagger() as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).length).toBeGreaterThan(0);
    expect(Object.keys(doc.paths).filter((path) => path.startsWith('/v1'))).toEqual([]);
  });

  it('leaves the admin API\'s JSON errors alone', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/me' });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: 'PORTICO_ERR_AUTH_MISSING_TOKEN' });
  });
  it('shows the newest check output even when only the output changed (same index)', async () => {
    const name = uniqueName();
    expect((await register(t, { Name: name, ID: `${name}-1`, Address: '10.0.0.5', Port: 8001, Check: { TTL: '1m' } })).statusCode).toBe(200);
    await put(t, `/v1/agent/check/pass/service:${name}-1?note=first`);
    const first = await read<HealthEntry[]>(t, `/v1/health/service/${name}`);
    await put(t, `/v1/agent/check/pass/service:${name}-1?note=second`);
    const second = await read<HealthEntry[]>(t, `/v1/health/service/${name}`);
    expect(second.index).toBe(first.index);
    const output = (entries: HealthEntry[]) => entries[0]?.Checks.find((c) => c.ServiceID === `${name}-1`)?.Output;
    expect(output(first.body)).toBe('first');
    expect(output(second.body)).toBe('second');
  });
});
