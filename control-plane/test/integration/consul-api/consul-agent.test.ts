import { describe, expect, it } from 'vitest';
import { bearer, useTestApp } from '../../support/test-app.js';
import { consulToken, expectConsulError, put, read, register, uniqueName } from './consul-support.js';

interface HealthEntry {
  Service: { ID: string };
  Checks: Array<{ CheckID: string; Name: string; Status: string; Output: string; Notes: string; Type: string; ServiceID: string }>;
}

describe('Consul API: /v1/agent', () => {
  const t = useTestApp();

  const healthOf = async (name: string, query = '') => (await read<HealthEntry[]>(t, `/v1/health/service/${name}${query}`)).body;
  const checkOf = async (name: string, checkId: string) => (await healthOf(name))[0]?.Checks.find((c) => c.CheckID === checkId);

  it('registers a service from Consul\'s JSON, ID defaulting to Name and Address to the caller', async () => {
    const name = uniqueName();
    const res = await register(t, {
      Name: name,
      Tags: ['primary', 'v1'],
      Port: 8000,
      Meta: { redis_version: '4.0' },
      Weights: { Passing: 10, Warning: 1 },
      EnableTagOverride: false,
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.body).toBe('');

    const services = (await read<Record<string, unknown>>(t, '/v1/agent/services')).body;
    expect(services[name]).toEqual({
      ID: name,
      Service: name,
      Tags: ['primary', 'v1'],
      Meta: { redis_version: '4.0' },
      Port: 8000,
      Address: '127.0.0.1',
      Weights: { Passing: 10, Warning: 1 },
      EnableTagOverride: false,
      Datacenter: 'dc1',
    });
    const instance = await t.registry.instance(name);
    expect(instance).toMatchObject({ id: name, service: name, address: '127.0.0.1', port: 8000, weights: { passing: 10, warning: 1 } });
  });

  it('takes keys in any case and snake_case, with no Content-Type, as python-consul sends them', async () => {
    const name = uniqueName();
    const res = await t.app.inject({
      method: 'PUT',
      url: `/v1/agent/service/register?replace-existing-checks=true`,
      headers: consulToken(t.adminToken),
      payload: JSON.stringify({ name, id: `${name}-1`, address: 'db.internal', port: 5432, tags: ['a'], check: { ttl: '10s', deregister_critical_service_after: '1m', id: `${name}-ttl` } }),
    });
    expect(res.statusCode, res.body).toBe(200);
    const instance = await t.registry.instance(`${name}-1`);
    expect(instance).toMatchObject({ service: name, address: 'db.internal', port: 5432, tags: ['a'] });
    expect(instance?.checks).toMatchObject([{ id: `${name}-ttl`, kind: 'ttl', ttlMs: 10_000, deregisterCriticalAfterMs: 60_000, status: 'critical' }]);
  });

  it('reads Go\'s null and zero values as unset, as Consul does (the Go api client sends "Check": null)', async () => {
    const name = uniqueName();
    const res = await register(t, { ID: '', Name: name, Tags: null, Port: 8080, Address: '', Meta: null, Weights: null, EnableTagOverride: false, Check: null, Checks: null });
    expect(res.statusCode, res.body).toBe(200);
    expect(await t.registry.instance(name)).toMatchObject({ id: name, address: '127.0.0.1', tags: [], checks: [] });

    const empty = uniqueName();
    expect((await register(t, { Name: empty, Port: 8080, Check: {}, Checks: [{}, { TTL: '10s' }] })).statusCode).toBe(200);
    expect((await t.registry.instance(empty))?.checks.map((check) => check.kind)).toEqual(['ttl']);
  });

  it('refuses a body that would poison prototypes', async () => {
    const res = await register(t, undefined, { raw: `{"Name": "${uniqueName()}", "Port": 80, "__proto__": {"admin": true}}` });
    expectConsulError(res, 400, 'PORTICO_ERR_REQUEST_MALFORMED_JSON', /^Request decode failed/);
  });

  it('turns a TTL check passing, warning and critical with pass, warn, fail and update, keeping the note as output', async () => {
    const name = uniqueName();
    expect((await register(t, { Name: name, ID: `${name}-1`, Port: 80, Check: { TTL: '30s', Name: 'heartbeat', Notes: 'sent by the app' } })).statusCode).toBe(200);
    const checkId = `service:${name}-1`;
    expect(await checkOf(name, checkId)).toMatchObject({ Status: 'critical', Name: 'heartbeat', Notes: 'sent by the app', Type: 'ttl', ServiceID: `${name}-1` });
    expect(await healthOf(name, '?passing')).toEqual([]);

    await put(t, `/v1/agent/check/pass/${checkId}?note=all%20good`);
    expect(await checkOf(name, checkId)).toMatchObject({ Status: 'passing', Output: 'all good' });
    expect((await healthOf(name, '?passing')).map((e) => e.Service.ID)).toEqual([`${name}-1`]);

    await put(t, `/v1/agent/check/warn/${checkId}?note=slow`);
    expect(await checkOf(name, checkId)).toMatchObject({ Status: 'warning', Output: 'slow' });
    expect(await healthOf(name, '?passing=true')).toEqual([]);

    await put(t, `/v1/agent/check/fail/${checkId}`);
    expect(await checkOf(name, checkId)).toMatchObject({ Status: 'critical', Output: '' });

    await put(t, `/v1/agent/check/update/${checkId}`, t.adminToken, { Status: 'passing', Output: 'back' });
    expect(await checkOf(name, checkId)).toMatchObject({ Status: 'passing', Output: 'back' });

    // Consul keeps 4 KB of output.
    await put(t, `/v1/agent/check/update/${checkId}`, t.adminToken, { status: 'passing', output: 'x'.repeat(10_000) });
    expect((await checkOf(name, checkId))?.Output).toMatch(/^x{4096} \.\.\.\n\(Captured 4096 of 10000 bytes\)$/);
  });

  it('refuses results for unknown checks and for checks the control plane probes itself', async () => {
    const missing = await t.app.inject({ method: 'PUT', url: '/v1/agent/check/pass/no-such-check', headers: consulToken(t.adminToken) });
    expectConsulError(missing, 404, 'PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND', /^CheckID "no-such-check" does not have associated TTL/);

    const name = uniqueName();
    expect((await register(t, { Name: name, Address: '127.0.0.1', Port: 9, Check: { HTTP: 'http://127.0.0.1:9/health', Interval: '10s' } })).statusCode).toBe(200);
    const http = await t.app.inject({ method: 'PUT', url: `/v1/agent/check/pass/service:${name}`, headers: consulToken(t.adminToken) });
    expectConsulError(http, 400, 'PORTICO_ERR_REGISTRY_INVALID_CHECK', /does not have associated TTL: it is an http check/);
    expect((await checkOf(name, `service:${name}`))?.Status).toBe('critical');

    for (const payload of [{ Status: 'ok' }, { Output: 'no status' }, { Status: 'passing', Extra: 1 }]) {
      const res = await t.app.inject({ method: 'PUT', url: `/v1/agent/check/update/service:${name}`, headers: consulToken(t.adminToken), payload });
      expectConsulError(res, 400, 'PORTICO_ERR_REQUEST_INVALID', /body/);
    }
  });

  it('puts a service into maintenance with Consul\'s critical _service_maintenance check, and takes it out', async () => {
    const name = uniqueName();
    const id = `${name}-1`;
    expect((await register(t, { Name: name, ID: id, Port: 80, Check: { TTL: '30s' } })).statusCode).toBe(200);
    await put(t, `/v1/agent/check/pass/service:${id}`);
    expect(await healthOf(name, '?passing')).toHaveLength(1);

    await put(t, `/v1/agent/service/maintenance/${id}?enable=true&reason=kernel%20upgrade`);
    expect(await checkOf(name, `_service_maintenance:${id}`)).toMatchObject({
      Name: 'Service Maintenance Mode',
      Status: 'critical',
      Notes: 'kernel upgrade',
      ServiceID: id,
      Type: 'maintenance',
    });
    expect(await healthOf(name, '?passing')).toEqual([]);

    await put(t, `/v1/agent/service/maintenance/${id}?enable=false`);
    expect(await checkOf(name, `_service_maintenance:${id}`)).toBeUndefined();
    expect(await healthOf(name, '?passing')).toHaveLength(1);

    await put(t, `/v1/agent/service/maintenance/${id}?enable=1`);
    expect((await checkOf(name, `_service_maintenance:${id}`))?.Notes).toMatch(/no reason was provided/);

    const noEnable = await t.app.inject({ method: 'PUT', url: `/v1/agent/service/maintenance/${id}`, headers: consulToken(t.adminToken) });
    expectConsulError(noEnable, 400, 'PORTICO_ERR_REQUEST_INVALID', /Missing value for enable/);
    const badEnable = await t.app.inject({ method: 'PUT', url: `/v1/agent/service/maintenance/${id}?enable=maybe`, headers: consulToken(t.adminToken) });
    expectConsulError(badEnable, 400, 'PORTICO_ERR_REQUEST_INVALID', /Invalid value for \?enable/);
    const unknown = await t.app.inject({ method: 'PUT', url: '/v1/agent/service/maintenance/nope?enable=true', headers: consulToken(t.adminToken) });
    expectConsulError(unknown, 404, 'PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND', /^Unknown service ID "nope"/);
  });

  it('deregisters a service, and answers 404 Unknown service ID for it afterwards', async () => {
    const name = uniqueName();
    expect((await register(t, { Name: name, Port: 80 })).statusCode).toBe(200);
    const before = await t.counts();
    await put(t, `/v1/agent/service/deregister/${name}`);
    expect(await t.registry.instance(name)).toBeUndefined();
    expect((await read<Record<string, unknown>>(t, '/v1/agent/services')).body[name]).toBeUndefined();
    expect((await t.counts()).audit).toBe(before.audit + 1);

    const again = await t.app.inject({ method: 'PUT', url: `/v1/agent/service/deregister/${name}`, headers: consulToken(t.adminToken) });
    expectConsulError(again, 404, 'PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND', /^Unknown service ID "/);
  });

  it('lists checks by id on /v1/agent/checks', async () => {
    const name = uniqueName();
    expect((await register(t, { Name: name, Port: 80, Checks: [{ TTL: '30s' }, { TTL: '1m', CheckID: `${name}-second` }] })).statusCode).toBe(200);
    const checks = (await read<Record<string, { CheckID: string; ServiceName: string }>>(t, '/v1/agent/checks')).body;
    expect(checks[`service:${name}:1`]).toMatchObject({ CheckID: `service:${name}:1`, ServiceName: name });
    expect(checks[`${name}-second`]).toMatchObject({ ServiceName: name });
  });

  describe('tokens', () => {
    it('refuses writes without a token, or with an unknown one, with 403 ACL not found, storing nothing', async () => {
      const name = uniqueName();
      const before = await t.counts();
      const none = await t.app.inject({ method: 'PUT', url: '/v1/agent/service/register', payload: { Name: name, Port: 80 } });
      expectConsulError(none, 403, 'PORTICO_ERR_AUTH_MISSING_TOKEN', /^ACL not found \(/);
      const unknown = await register(t, { Name: name, Port: 80 }, { secret: 'ptc_not-a-real-token' });
      expectConsulError(unknown, 403, 'PORTICO_ERR_AUTH_INVALID_TOKEN', /^ACL not found \(/);
      const reads = await t.app.inject({ method: 'GET', url: '/v1/agent/services' });
      expectConsulError(reads, 403, 'PORTICO_ERR_AUTH_MISSING_TOKEN', /^ACL not found/);
      expect(await t.registry.instance(name)).toBeUndefined();
      expect(await t.counts()).toEqual(before);
    });

    it('refuses a viewer writing with 403 Permission denied, but lets it read', async () => {
      const viewer = await t.tokenFor('viewer');
      const name = uniqueName();
      const res = await register(t, { Name: name, Port: 80 }, { secret: viewer });
      expectConsulError(res, 403, 'PORTICO_ERR_AUTH_FORBIDDEN', /^Permission denied \(PORTICO_ERR_AUTH_FORBIDDEN\): .*registry:write/);
      expect(await t.registry.instance(name)).toBeUndefined();
      expect((await read(t, '/v1/agent/services', viewer)).status).toBe(200);
    });

    it('lets an agent token change its own service only', async () => {
      const mine = uniqueName('mine');
      const theirs = uniqueName('theirs');
      const agent = await t.tokenFor('agent', [mine]);
      expect((await register(t, { Name: mine, Port: 80, Check: { TTL: '30s' } }, { secret: agent })).statusCode).toBe(200);
      await put(t, `/v1/agent/check/pass/service:${mine}`, agent);

      const before = await t.counts();
      const denied = await register(t, { Name: theirs, Port: 80 }, { secret: agent });
      expectConsulError(denied, 403, 'PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN', /^Permission denied \(PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN\): .*"theirs-/);
      expect(await t.registry.instance(theirs)).toBeUndefined();

      expect((await register(t, { Name: theirs, Port: 80, Check: { TTL: '30s' } })).statusCode).toBe(200);
      const after = await t.counts();
      for (const url of [`/v1/agent/service/deregister/${theirs}`, `/v1/agent/check/pass/service:${theirs}`, `/v1/agent/service/maintenance/${theirs}?enable=true`]) {
        const res = await t.app.inject({ method: 'PUT', url, headers: consulToken(agent) });
        expectConsulError(res, 403, 'PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN', /^Permission denied/);
      }
      // An agent may not move an instance of another service into its own.
      const hijack = await register(t, { Name: mine, ID: theirs, Port: 80 }, { secret: agent });
      expectConsulError(hijack, 403, 'PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN');
      expect(await t.registry.instance(theirs)).toMatchObject({ service: theirs, maintenance: null });
      expect((await t.counts()).audit).toBe(after.audit);
      expect(after.audit).toBe(before.audit + 1);
    });

    it('takes the token from X-Consul-Token, Authorization: Bearer or ?token=, and never logs it', async () => {
      const operator = await t.tokenFor('operator');
      for (const [i, request] of [
        { headers: consulToken(operator), query: '' },
        { headers: bearer(operator), query: '' },
        { headers: {}, query: `?token=${operator}` },
      ].entries()) {
        const name = uniqueName(`tok${i}`);
        const res = await t.app.inject({ method: 'PUT', url: `/v1/agent/service/register${request.query}`, headers: request.headers, payload: { Name: name, Port: 80 } });
        expect(res.statusCode, res.body).toBe(200);
        expect(await t.registry.instance(name)).toBeDefined();
      }
      await t.app.inject({ method: 'GET', url: `/v1/agent/services?token=${operator}` });
      await t.app.inject({ method: 'GET', url: `/v1/agent/services?token=${operator}x` });
      expect(t.logLines.join('')).toContain('/v1/agent/services?token=redacted');
      expect(t.logLines.join('')).not.toContain(operator);
    });
  });

  describe('bad registrations: 400 naming the field, nothing stored', () => {
    const good = { Port: 8080, Address: '10.0.0.5' };
    const cases: Array<{ what: string; body: (name: string) => unknown; raw?: string; code?: string; text: RegExp }> = [
      { what: 'a name with a space', body: (name) => ({ ...good, Name: `${name} x` }), text: /body\/Name/ },
      { what: 'a name that is too long', body: () => ({ ...good, Name: `s${'x'.repeat(63)}` }), text: /body\/Name/ },
      { what: 'an empty name', body: () => ({ ...good, Name: '' }), text: /body\/Name/ },
      { what: 'no name', body: () => ({ ...good }), text: /missing required field "Name"/ },
      { what: 'port 0', body: (name) => ({ ...good, Name: name, Port: 0 }), text: /body\/Port/ },
      { what: 'port 65536', body: (name) => ({ ...good, Name: name, Port: 65536 }), text: /body\/Port/ },
      { what: 'a port as a string', body: (name) => ({ ...good, Name: name, Port: '8080' }), text: /body\/Port must be of type integer/ },
      { what: 'no port', body: (name) => ({ Name: name }), text: /missing required field "Port"/ },
      { what: 'an address that is not one', body: (name) => ({ ...good, Name: name, Address: 'not an address!' }), text: /body\/Address "not an address!" is neither/ },
      { what: 'the any address', body: (name) => ({ ...good, Name: name, Address: '0.0.0.0' }), text: /body\/Address "0.0.0.0" is not a service address/ },
      { what: 'an unknown field', body: (name) => ({ ...good, Name: name, Prot: 80 }), text: /unknown field "Prot"/ },
      { what: 'a Connect block', body: (name) => ({ ...good, Name: name, Connect: { Native: true } }), text: /unknown field "Connect"/ },
      { what: 'an unknown check field', body: (name) => ({ ...good, Name: name, Check: { TTL: '10s', Tll: '5s' } }), text: /body\/Check unknown field "Tll"/ },
      {
        what: 'an interval below 100ms',
        body: (name) => ({ ...good, Name: name, Check: { HTTP: 'http://10.0.0.5:8080/health', Interval: '50ms' } }),
        code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK',
        text: /^Invalid check \(PORTICO_ERR_REGISTRY_INVALID_CHECK\): body\/Check\/Interval must be at least 100ms/,
      },
      { what: 'a TTL below 100ms', body: (name) => ({ ...good, Name: name, Checks: [{ TTL: '10s' }, { TTL: '99ms' }] }), code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', text: /body\/Checks\/1\/TTL must be at least 100ms/ },
      { what: 'a duration Go would not read', body: (name) => ({ ...good, Name: name, Check: { TTL: '10' } }), code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', text: /body\/Check\/TTL "10" is not a duration/ },
      { what: 'an HTTP check without an interval', body: (name) => ({ ...good, Name: name, Check: { HTTP: 'http://10.0.0.5:8080/' } }), code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', text: /body\/Check\/Interval an HTTP check needs an Interval/ },
      { what: 'a check of two kinds', body: (name) => ({ ...good, Name: name, Check: { TTL: '10s', TCP: '10.0.0.5:8080', Interval: '10s' } }), code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', text: /TCP and TTL/ },
      { what: 'a script check', body: (name) => ({ ...good, Name: name, Check: { Args: ['/bin/true'], Interval: '10s' } }), code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', text: /Args checks are not supported/ },
      { what: 'a check probing another host', body: (name) => ({ ...good, Name: name, Check: { HTTP: 'http://169.254.169.254/latest', Interval: '10s' } }), code: 'PORTICO_ERR_REGISTRY_INVALID_CHECK', text: /own address/ },
      { what: 'a field sent twice', body: (name) => ({ ...good, Name: name, port: 81 }), text: /both "Port" and "port"/ },
      { what: 'malformed JSON', body: () => undefined, raw: '{"Name": "x", "Port": ', code: 'PORTICO_ERR_REQUEST_MALFORMED_JSON', text: /^Request decode failed \(PORTICO_ERR_REQUEST_MALFORMED_JSON\)/ },
      { what: 'an array', body: () => undefined, raw: '[]', text: /body must be of type object/ },
      { what: 'no body', body: () => undefined, raw: '', text: /body must be of type object/ },
    ];

    for (const c of cases) {
      it(c.what, async () => {
        const name = uniqueName('bad');
        const before = await t.counts();
        const services = Object.keys((await read<Record<string, unknown>>(t, '/v1/agent/services')).body).length;
        const res = await register(t, c.body(name), c.raw === undefined ? {} : { raw: c.raw });
        expectConsulError(res, 400, c.code ?? 'PORTICO_ERR_REQUEST_INVALID', c.text);
        expect(await t.registry.instance(name)).toBeUndefined();
        expect(Object.keys((await read<Record<string, unknown>>(t, '/v1/agent/services')).body)).toHaveLength(services);
        expect(await t.counts()).toEqual(before);
      });
    }

    it('refuses a body over the limit with 413, in plain text', async () => {
      const res = await register(t, { Name: uniqueName(), Port: 80, Meta: { pad: 'x'.repeat(2 * 1024 * 1024) } });
      expectConsulError(res, 413, 'PORTICO_ERR_REQUEST_TOO_LARGE', /larger than the limit of 1048576 bytes/);
    });
  });

  it('answers a wrong method with 405 and an unknown endpoint with 404, in plain text', async () => {
    const wrong = await t.app.inject({ method: 'DELETE', url: '/v1/agent/service/register', headers: consulToken(t.adminToken) });
    expectConsulError(wrong, 405, 'PORTICO_ERR_REQUEST_METHOD_NOT_ALLOWED', /method DELETE not allowed/);
    expect(wrong.headers.allow).toBe('PUT');
    const kv = await t.app.inject({ method: 'GET', url: '/v1/kv/some/key', headers: consulToken(t.adminToken) });
    expectConsulError(kv, 404, 'PORTICO_ERR_REQUEST_NOT_FOUND', /has no GET \/v1\/kv\/some\/key/);
  });
});
