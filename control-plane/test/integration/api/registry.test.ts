import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../../src/config/duration.js';
import { formatDuration } from '../../../src/api/routes/registry-views.js';
import { bearer, useTestApp } from '../../support/test-app.js';

interface CheckJson {
  id: string;
  name: string;
  kind: string;
  status: string;
  output: string;
  interval?: string;
  timeout?: string;
  ttl?: string;
  ttlExpiresAt?: string | null;
  deregisterCriticalAfter?: string;
  lastResultAt: string | null;
}

interface InstanceJson {
  id: string;
  service: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  weights: { passing: number; warning: number };
  health: string;
  maintenance: { reason: string; since: string } | null;
  registeredAt: string;
  registeredBy: string | null;
  checks: CheckJson[];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('/api/v1 registry routes', () => {
  const t = useTestApp();

  const svc = () => `svc-${randomUUID()}`;
  const put = (id: string, payload: unknown, token = t.adminToken) =>
    t.app.inject({ method: 'PUT', url: `/api/v1/instances/${encodeURIComponent(id)}`, headers: bearer(token), payload: payload as object });
  const get = (url: string, token = t.adminToken) => t.app.inject({ method: 'GET', url, headers: bearer(token) });

  async function register(service: string, extra: Record<string, unknown> = {}, id = `${service}-1`): Promise<InstanceJson> {
    const res = await put(id, { service, address: '127.0.0.1', port: 4001, ...extra });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<InstanceJson>();
  }

  /** The registry's index and the audit log's length: "stored nothing" means neither moved. */
  async function state() {
    return { index: (await t.registry.services()).index, audit: (await t.counts()).audit };
  }

  describe('registration', () => {
    it('registers (201), re-registers (200), and reads back through the service routes', async () => {
      const service = svc();
      const created = await register(service, {
        tags: ['v1', 'blue'],
        meta: { version: '1.2.3' },
        weights: { passing: 10, warning: 1 },
        checks: [{ kind: 'ttl', ttl: '30s', notes: 'agent heartbeat' }],
      });
      expect(created).toMatchObject({
        id: `${service}-1`,
        service,
        address: '127.0.0.1',
        port: 4001,
        tags: ['v1', 'blue'],
        meta: { version: '1.2.3' },
        weights: { passing: 10, warning: 1 },
        health: 'critical',
        maintenance: null,
      });
      expect(created.registeredBy).not.toBeNull();
      expect(created.checks).toEqual([
        expect.objectContaining({ id: `service:${service}-1`, kind: 'ttl', status: 'critical', ttl: '30s', output: '', lastResultAt: null }),
      ]);
      expect(Date.parse(created.registeredAt)).not.toBeNaN();

      const again = await put(`${service}-1`, { service, address: '127.0.0.1', port: 4002, checks: [{ kind: 'ttl', ttl: '1m30s' }] });
      expect(again.statusCode, again.body).toBe(200);
      expect(again.json()).toMatchObject({ port: 4002, registeredAt: created.registeredAt, checks: [{ ttl: '1m30s' }] });

      const list = await get('/api/v1/services');
      expect(list.statusCode).toBe(200);
      const body = list.json<{ services: Array<{ name: string }>; index: number }>();
      expect(body.services.find((s) => s.name === service)).toEqual({ name: service, tags: [], instances: { passing: 0, warning: 0, critical: 1 } });
      expect(body.index).toBe((await t.registry.services()).index);

      const detail = await get(`/api/v1/services/${service}`);
      expect(detail.statusCode).toBe(200);
      expect(detail.json()).toMatchObject({ name: service, instances: [{ id: `${service}-1`, port: 4002 }] });
      expect(typeof detail.json().index).toBe('number');
    });

    it('shows durations as Go-style strings that parse back to what was registered', async () => {
      const service = svc();
      const created = await register(service, {
        checks: [{ kind: 'tcp', tcp: '127.0.0.1:4001', interval: '1m30s', timeout: '1500ms', deregisterCriticalAfter: '1h' }],
      });
      expect(created.checks[0]).toMatchObject({ kind: 'tcp', interval: '1m30s', timeout: '1s500ms', deregisterCriticalAfter: '1h' });
      for (const ms of [0, 0.5, 1, 100, 999, 1000, 1500, 60_000, 90_000, 3_600_000, 3_723_004.005]) {
        expect(parseDuration(formatDuration(ms)), String(ms)).toBe(ms);
      }
      await t.app.inject({ method: 'DELETE', url: `/api/v1/instances/${service}-1`, headers: bearer(t.adminToken) });
    });

    it('gives 404 for a service with no instances', async () => {
      const res = await get(`/api/v1/services/${svc()}`);
      expect(res.statusCode).toBe(404);
      expect(res.json().code).toBe('PORTICO_ERR_REGISTRY_SERVICE_NOT_FOUND');
    });

    it('deregisters (204) and then gives 404', async () => {
      const service = svc();
      await register(service);
      const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/instances/${service}-1`, headers: bearer(t.adminToken) });
      expect(del.statusCode, del.body).toBe(204);
      expect(del.body).toBe('');
      expect((await get(`/api/v1/services/${service}`)).statusCode).toBe(404);
      const again = await t.app.inject({ method: 'DELETE', url: `/api/v1/instances/${service}-1`, headers: bearer(t.adminToken) });
      expect(again.statusCode).toBe(404);
      expect(again.json().code).toBe('PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND');
    });

    it('writes audit rows for register, update, maintenance and deregister', async () => {
      const service = svc();
      const id = `${service}-1`;
      await register(service);
      await put(id, { service, address: '127.0.0.1', port: 4005 });
      await t.app.inject({ method: 'PUT', url: `/api/v1/instances/${id}/maintenance`, headers: bearer(t.adminToken), payload: { enabled: true, reason: 'upgrade' } });
      await t.app.inject({ method: 'PUT', url: `/api/v1/instances/${id}/maintenance`, headers: bearer(t.adminToken), payload: { enabled: false } });
      await t.app.inject({ method: 'DELETE', url: `/api/v1/instances/${id}`, headers: bearer(t.adminToken) });
      const entries = (await t.store.audit.list({ limit: 1000 })).filter((entry) => entry.target === `instance:${id}`).reverse();
      expect(entries.map((entry) => entry.action)).toEqual([
        'instance.register',
        'instance.update',
        'instance.maintenance_on',
        'instance.maintenance_off',
        'instance.deregister',
      ]);
      expect(entries[0]).toMatchObject({ actorName: expect.stringMatching(/^admin-/), details: { service, address: '127.0.0.1', port: 4001 } });
      expect(entries[2]!.details).toMatchObject({ reason: 'upgrade' });
    });
  });

  describe('bad registrations are refused with a coded 400 naming the field, and store nothing', () => {
    const ttl = { kind: 'ttl', ttl: '10s' };
    const base = { service: 'bad-input-svc', address: '127.0.0.1', port: 4001 };
    const cases: Array<{ what: string; id?: string; body: unknown; code: string; message: RegExp }> = [
      { what: 'a service name with a space', body: { ...base, service: 'two words' }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/service/ },
      { what: 'a service name starting with a dash', body: { ...base, service: '-svc' }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/service/ },
      { what: 'an instance id with a slash-free bad character', id: 'bad*id', body: base, code: 'PORTICO_ERR_REQUEST_INVALID', message: /params\/id/ },
      { what: 'port 0', body: { ...base, port: 0 }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/port/ },
      { what: 'port 65536', body: { ...base, port: 65536 }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/port/ },
      { what: 'a port as a string', body: { ...base, port: '4001' }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/port must be of type integer/ },
      { what: 'an address that is a URL', body: { ...base, address: 'http://10.0.0.1' }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/address .*neither an IP address nor a host name/ },
      { what: 'an address with a space', body: { ...base, address: 'my host' }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/address/ },
      { what: 'an unknown field', body: { ...base, colour: 'blue' }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /unknown field "colour"/ },
      { what: 'an id in the body', body: { ...base, id: 'x' }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /unknown field "id"/ },
      { what: 'an unknown check field', body: { ...base, checks: [{ ...ttl, every: '1s' }] }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/checks\/0 unknown field "every"/ },
      { what: 'an unknown check kind', body: { ...base, checks: [{ kind: 'grpc', interval: '1s' }] }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/checks\/0\/kind must be one of: http, tcp, ttl/ },
      { what: 'a ttl below 100ms', body: { ...base, checks: [{ kind: 'ttl', ttl: '99ms' }] }, code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: /body\/checks\/0\/ttl must be at least 100ms/ },
      {
        what: 'an interval below 100ms',
        body: { ...base, checks: [{ kind: 'http', http: 'http://127.0.0.1:4001/health', interval: '50ms' }] },
        code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK',
        message: /body\/checks\/0\/interval must be at least 100ms/,
      },
      { what: 'a duration without a unit', body: { ...base, checks: [{ kind: 'ttl', ttl: '10' }] }, code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: /body\/checks\/0\/ttl "10" is not a duration/ },
      { what: 'a negative duration', body: { ...base, checks: [{ kind: 'ttl', ttl: '-1s' }] }, code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: /body\/checks\/0\/ttl/ },
      { what: 'a duration in English', body: { ...base, checks: [{ kind: 'ttl', ttl: '3 hours' }] }, code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: /body\/checks\/0\/ttl/ },
      { what: 'a ttl check without a ttl', body: { ...base, checks: [{ kind: 'ttl' }] }, code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: /body\/checks\/0 a ttl check needs "ttl"/ },
      { what: 'an http check without a URL', body: { ...base, checks: [{ kind: 'http' }] }, code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: /needs "http"/ },
      { what: 'a tcp field on a ttl check', body: { ...base, checks: [{ ...ttl, tcp: '127.0.0.1:1' }] }, code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: /body\/checks\/0\/tcp not allowed on a ttl check/ },
      { what: 'an interval on a ttl check', body: { ...base, checks: [{ ...ttl, interval: '1s' }] }, code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: /body\/checks\/0\/interval not allowed/ },
      { what: 'two checks with one id', body: { ...base, checks: [{ ...ttl, id: 'c1' }, { ...ttl, id: 'c1' }] }, code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: /body\/checks\/1\/id "c1" is used by checks\/0/ },
      {
        what: 'an http check probing another host',
        body: { ...base, checks: [{ kind: 'http', http: 'http://169.254.169.254/latest', interval: '1s' }] },
        code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK',
        message: /own address/,
      },
      { what: 'a bad meta key', body: { ...base, meta: { 'a b': 'c' } }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/meta/ },
      { what: 'duplicate tags', body: { ...base, tags: ['a', 'a'] }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/tags/ },
      { what: 'a zero passing weight', body: { ...base, weights: { passing: 0 } }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/weights\/passing/ },
      { what: 'a header with a newline', body: { ...base, checks: [{ kind: 'http', http: 'http://127.0.0.1:4001/', headers: { 'X-A': 'a\r\nb' } }] }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /headers/ },
      { what: 'a bad address and a bad check together', body: { ...base, address: 'a_b', checks: [{ kind: 'ttl', ttl: '1' }] }, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/address .*; body\/checks\/0\/ttl/ },
    ];

    for (const c of cases) {
      it(`${c.what} → 400 ${c.code}`, async () => {
        const before = await state();
        const res = await put(c.id ?? `bad-${randomUUID()}`, c.body);
        expect(res.statusCode, res.body).toBe(400);
        const body = res.json<{ code: string; message: string; details?: unknown }>();
        expect(body.code).toBe(c.code);
        expect(body.message).toMatch(c.message);
        expect(await state()).toEqual(before);
      });
    }

    it('a check id another instance holds → 409, storing nothing', async () => {
      const service = svc();
      const checkId = `${service}-check`;
      await register(service, { checks: [{ id: checkId, kind: 'ttl', ttl: '10s' }] });
      const before = await state();
      const res = await put(`${service}-2`, { ...base, service, checks: [{ id: checkId, kind: 'ttl', ttl: '10s' }] });
      expect(res.statusCode, res.body).toBe(409);
      expect(res.json().code).toBe('PORTICO_ERR_REGISTRY_CHECK_ID_TAKEN');
      expect(await state()).toEqual(before);
    });

    it('lists every problem in details, by location', async () => {
      const res = await put(`bad-${randomUUID()}`, { ...base, checks: [{ kind: 'ttl', ttl: '10ms', interval: '1s' }] });
      expect(res.json().details).toEqual([
        { location: 'body/checks/0/interval', problem: 'not allowed on a ttl check (only http and tcp)' },
        { location: 'body/checks/0/ttl', problem: 'must be at least 100ms, not "10ms"' },
      ]);
    });
  });

  describe('permissions', () => {
    it('lets a viewer read but not write', async () => {
      const service = svc();
      await register(service);
      const viewer = await t.tokenFor('viewer');
      expect((await get('/api/v1/services', viewer)).statusCode).toBe(200);
      expect((await get(`/api/v1/services/${service}`, viewer)).statusCode).toBe(200);
      expect((await get('/api/v1/sd/prometheus', viewer)).statusCode).toBe(200);
      const before = await state();
      const writes = [
        put(`${service}-2`, { service, address: '127.0.0.1', port: 1 }, viewer),
        t.app.inject({ method: 'DELETE', url: `/api/v1/instances/${service}-1`, headers: bearer(viewer) }),
        t.app.inject({ method: 'PUT', url: `/api/v1/instances/${service}-1/maintenance`, headers: bearer(viewer), payload: { enabled: true } }),
        t.app.inject({ method: 'PUT', url: `/api/v1/instances/${service}-1/health`, headers: bearer(viewer), payload: { status: 'passing' } }),
      ];
      for (const res of await Promise.all(writes)) {
        expect(res.statusCode).toBe(403);
        expect(res.json().code).toBe('PORTICO_ERR_AUTH_FORBIDDEN');
      }
      expect(await state()).toEqual(before);
    });

    it('lets an agent register its own services only', async () => {
      const mine = svc();
      const theirs = svc();
      await register(theirs);
      const agent = await t.tokenFor('agent', [mine]);

      const before = await state();
      const forbidden = [
        await put(`${theirs}-2`, { service: theirs, address: '127.0.0.1', port: 1 }, agent),
        // Moving another service's instance into its own service is changing that service too.
        await put(`${theirs}-1`, { service: mine, address: '127.0.0.1', port: 1 }, agent),
        await t.app.inject({ method: 'DELETE', url: `/api/v1/instances/${theirs}-1`, headers: bearer(agent) }),
        await t.app.inject({ method: 'PUT', url: `/api/v1/instances/${theirs}-1/maintenance`, headers: bearer(agent), payload: { enabled: true } }),
      ];
      for (const res of forbidden) {
        expect(res.statusCode, res.body).toBe(403);
        expect(res.json().code).toBe('PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN');
      }
      expect(await state()).toEqual(before);

      const own = await put(`${mine}-1`, { service: mine, address: '127.0.0.1', port: 4100, checks: [{ kind: 'ttl', ttl: '10s' }] }, agent);
      expect(own.statusCode, own.body).toBe(201);
      const beat = await t.app.inject({ method: 'PUT', url: `/api/v1/instances/${mine}-1/health`, headers: bearer(agent), payload: { status: 'passing' } });
      expect(beat.statusCode, beat.body).toBe(200);
      expect((await t.app.inject({ method: 'DELETE', url: `/api/v1/instances/${mine}-1`, headers: bearer(agent) })).statusCode).toBe(204);
    });

    it('refuses requests without a token', async () => {
      for (const [method, url] of [
        ['GET', '/api/v1/services'],
        ['GET', '/api/v1/sd/prometheus'],
        ['PUT', '/api/v1/instances/x'],
        ['DELETE', '/api/v1/instances/x'],
      ] as const) {
        const res = await t.app.inject({ method, url });
        expect(res.statusCode, url).toBe(401);
        expect(res.json().code).toBe('PORTICO_ERR_AUTH_MISSING_TOKEN');
      }
    });
  });

  describe('heartbeats', () => {
    const beat = (id: string, payload: object) => t.app.inject({ method: 'PUT', url: `/api/v1/instances/${id}/health`, headers: bearer(t.adminToken), payload });

    it('applies to the instance\'s ttl check and returns its health', async () => {
      const service = svc();
      await register(service, { checks: [{ kind: 'ttl', ttl: '10s' }] });
      const res = await beat(`${service}-1`, { status: 'warning', output: 'disk 91% full' });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ instanceId: `${service}-1`, service, health: 'warning', check: { kind: 'ttl', status: 'warning', output: 'disk 91% full' } });
      expect(res.json().check.lastResultAt).not.toBeNull();
    });

    it('needs a checkId when there are several ttl checks, and refuses one that is not a ttl check', async () => {
      const service = svc();
      await register(service, {
        checks: [
          { id: `${service}-a`, kind: 'ttl', ttl: '10s' },
          { id: `${service}-b`, kind: 'ttl', ttl: '10s', status: 'passing' },
          { id: `${service}-c`, kind: 'tcp', tcp: '127.0.0.1:4001', interval: '1h' },
        ],
      });
      const before = await state();
      const ambiguous = await beat(`${service}-1`, { status: 'passing' });
      expect(ambiguous.statusCode).toBe(400);
      expect(ambiguous.json()).toMatchObject({ code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: expect.stringContaining(`${service}-a, ${service}-b`) });
      const notTtl = await beat(`${service}-1`, { status: 'passing', checkId: `${service}-c` });
      expect(notTtl.statusCode).toBe(400);
      expect(notTtl.json().code).toBe('PORTICO_ERR_REGISTRY_INVALID_CHECK');
      const unknown = await beat(`${service}-1`, { status: 'passing', checkId: 'nope' });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json().code).toBe('PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND');
      expect(await state()).toEqual(before);

      const named = await beat(`${service}-1`, { status: 'passing', checkId: `${service}-a` });
      expect(named.statusCode, named.body).toBe(200);
      expect(named.json()).toMatchObject({ check: { id: `${service}-a`, status: 'passing' }, health: 'critical' });
    });

    it('refuses an instance without a ttl check, an unknown instance, and a bad status', async () => {
      const service = svc();
      await register(service);
      const none = await beat(`${service}-1`, { status: 'passing' });
      expect(none.statusCode).toBe(400);
      expect(none.json()).toMatchObject({ code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', message: expect.stringMatching(/no ttl check/) });
      const missing = await beat(`nope-${randomUUID()}`, { status: 'passing' });
      expect(missing.statusCode).toBe(404);
      expect(missing.json().code).toBe('PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND');
      const bad = await beat(`${service}-1`, { status: 'ok' });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().message).toMatch(/body\/status must be one of: passing, warning, critical/);
    });

    it('keeps a ttl check passing while heartbeats arrive, and turns it critical once they stop', async () => {
      const service = svc();
      const id = `${service}-1`;
      await register(service, { checks: [{ kind: 'ttl', ttl: '300ms' }] });
      expect((await beat(id, { status: 'passing' })).json().health).toBe('passing');
      for (let i = 0; i < 4; i++) {
        await sleep(150);
        const res = await beat(id, { status: 'passing' });
        expect(res.json().health).toBe('passing');
      }
      const stoppedAt = Date.now();
      let health = 'passing';
      while (health === 'passing' && Date.now() - stoppedAt < 2_000) {
        await sleep(20);
        health = (await get(`/api/v1/services/${service}`)).json<{ instances: InstanceJson[] }>().instances[0]!.health;
      }
      const elapsed = Date.now() - stoppedAt;
      expect(health).toBe('critical');
      // The TTL, plus the reaper's 50 ms period and some scheduling slack.
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(700);
      const detail = (await get(`/api/v1/services/${service}`)).json<{ instances: InstanceJson[] }>();
      expect(detail.instances[0]!.checks[0]!.output).toMatch(/ttl|TTL/);
    });
  });

  describe('maintenance', () => {
    it('turns an instance critical with a reason, and back', async () => {
      const service = svc();
      const id = `${service}-1`;
      await register(service);
      const on = await t.app.inject({ method: 'PUT', url: `/api/v1/instances/${id}/maintenance`, headers: bearer(t.adminToken), payload: { enabled: true, reason: 'kernel upgrade' } });
      expect(on.statusCode, on.body).toBe(200);
      expect(on.json()).toMatchObject({ health: 'critical', maintenance: { reason: 'kernel upgrade' } });
      const off = await t.app.inject({ method: 'PUT', url: `/api/v1/instances/${id}/maintenance`, headers: bearer(t.adminToken), payload: { enabled: false } });
      expect(off.json()).toMatchObject({ health: 'passing', maintenance: null });
      const bad = await t.app.inject({ method: 'PUT', url: `/api/v1/instances/${id}/maintenance`, headers: bearer(t.adminToken), payload: { enabled: 'yes' } });
      expect(bad.statusCode).toBe(400);
      const missing = await t.app.inject({ method: 'PUT', url: `/api/v1/instances/nope-${randomUUID()}/maintenance`, headers: bearer(t.adminToken), payload: { enabled: true } });
      expect(missing.statusCode).toBe(404);
    });
  });

  describe('Prometheus service discovery', () => {
    it('lists every instance as a target group with __meta_portico_ labels, or only passing ones', async () => {
      const service = svc();
      await register(service, { tags: ['a', 'b'], meta: { 'build-id': '42' } }, `${service}-1`);
      await register(service, { port: 4002, checks: [{ kind: 'ttl', ttl: '10s' }] }, `${service}-2`);
      const res = await get(`/api/v1/sd/prometheus?service=${service}`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.json()).toEqual([
        {
          targets: ['127.0.0.1:4001'],
          labels: {
            __meta_portico_service: service,
            __meta_portico_instance_id: `${service}-1`,
            __meta_portico_address: '127.0.0.1',
            __meta_portico_port: '4001',
            __meta_portico_tags: ',a,b,',
            __meta_portico_health: 'passing',
            __meta_portico_maintenance: 'false',
            __meta_portico_meta_build_id: '42',
          },
        },
        expect.objectContaining({ targets: ['127.0.0.1:4002'], labels: expect.objectContaining({ __meta_portico_health: 'critical', __meta_portico_tags: ',,' }) }),
      ]);
      for (const url of [`/api/v1/sd/prometheus?service=${service}&passing`, `/api/v1/sd/prometheus?service=${service}&passing=true`]) {
        const passing = (await get(url)).json<Array<{ targets: string[] }>>();
        expect(passing.map((group) => group.targets[0]), url).toEqual(['127.0.0.1:4001']);
      }
      const all = (await get('/api/v1/sd/prometheus')).json<Array<{ labels: Record<string, string> }>>();
      expect(all.filter((group) => group.labels.__meta_portico_service === service)).toHaveLength(2);
      expect((await get('/api/v1/sd/prometheus?passing=maybe')).statusCode).toBe(400);
    });

    it('brackets IPv6 addresses', async () => {
      const service = svc();
      await register(service, { address: '::1' });
      const groups = (await get(`/api/v1/sd/prometheus?service=${service}`)).json<Array<{ targets: string[] }>>();
      expect(groups[0]!.targets).toEqual(['[::1]:4001']);
    });
  });

  it('documents every registry route in the OpenAPI document', async () => {
    const doc = (await t.app.inject('/api/openapi.json')).json<{ paths: Record<string, Record<string, { tags?: string[]; responses: Record<string, unknown> }>> }>();
    const routes = [
      ['/api/v1/services', 'get'],
      ['/api/v1/services/{name}', 'get'],
      ['/api/v1/instances/{id}', 'put'],
      ['/api/v1/instances/{id}', 'delete'],
      ['/api/v1/instances/{id}/health', 'put'],
      ['/api/v1/instances/{id}/maintenance', 'put'],
      ['/api/v1/events', 'get'],
      ['/api/v1/sd/prometheus', 'get'],
    ] as const;
    for (const [path, method] of routes) {
      const operation = doc.paths[path]?.[method];
      expect(operation, `${method} ${path}`).toBeDefined();
      expect(operation!.tags).toEqual(['registry']);
      expect(Object.keys(operation!.responses)).toEqual(expect.arrayContaining(['401', '403']));
    }
    expect(JSON.stringify(doc.paths['/api/v1/events']!.get!.responses['200'])).toContain('text/event-stream');
  });
});
