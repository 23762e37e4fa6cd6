import { afterEach, describe, expect, it } from 'vitest';
import { openSse } from '../../../../control-plane/test/support/sse-client.js';
import { type Agent, AgentError, createAgent, createDiscovery, defaultInstanceId, type Discovery } from '../../src/index.js';
import { HealthService, OBSERVATION_MS, sleep, uniqueService, usePortico, waitFor } from '../support/portico.js';

const INTERVAL_MS = 300;
const TIMEOUT_MS = 200;

describe('the SDK agent against a real control plane', () => {
  const portico = usePortico();
  const agents: Agent[] = [];
  const discoveries: Discovery[] = [];

  const agent = (options: Partial<Parameters<typeof createAgent>[0]> & { service: string; token: string }) => {
    const made = createAgent({ port: portico.service.port, health: { path: '/health' }, interval: `${INTERVAL_MS}ms`, timeout: `${TIMEOUT_MS}ms`, drain: 0, controlPlane: portico.controlPlane.url, ...options });
    agents.push(made);
    return made;
  };

  afterEach(async () => {
    portico.service.healthy = true;
    await Promise.all(agents.splice(0).map((made) => made.stop({ drain: false })));
    await Promise.all(discoveries.splice(0).map((made) => made.close()));
  });

  it('registers with a stable id and a TTL of 2 × interval + timeout, becomes passing, turns critical within interval + timeout when its health fails, and recovers', async () => {
    const name = uniqueService('sdk');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const checks: string[] = [];
    const made = agent({ service: name, token: secret });
    made.on('check', (result) => checks.push(result.status));
    await made.start();

    expect(made.id).toBe(defaultInstanceId({ service: name, address: '127.0.0.1', port: portico.service.port }));
    const passing = await waitFor(() => portico.controlPlane.instance(name, made.id), (instance) => instance?.health === 'passing');
    expect(passing.value?.checks[0]).toMatchObject({ kind: 'ttl', ttl: `${2 * INTERVAL_MS + TIMEOUT_MS}ms`, deregisterCriticalAfter: '1m' });
    expect(passing.value?.checks[0]?.output).toMatch(/HTTP GET http:\/\/127\.0\.0\.1:\d+\/health: 200 OK/);

    portico.service.healthy = false;
    const failedAt = Date.now();
    const critical = await waitFor(() => portico.controlPlane.instance(name, made.id), (instance) => instance?.health === 'critical');
    expect(critical.at - failedAt).toBeLessThan(INTERVAL_MS + TIMEOUT_MS + OBSERVATION_MS);
    expect(critical.value?.checks[0]?.output).toMatch(/500 Internal Server Error Output: database unreachable/);

    portico.service.healthy = true;
    const recoveredAt = Date.now();
    const recovered = await waitFor(() => portico.controlPlane.instance(name, made.id), (instance) => instance?.health === 'passing');
    expect(recovered.at - recoveredAt).toBeLessThan(INTERVAL_MS + TIMEOUT_MS + OBSERVATION_MS);
    expect(checks).toEqual(['passing', 'critical', 'passing']);
  });

  it('reports a check that hangs as critical once the timeout passes, with the reason', async () => {
    const name = uniqueService('sdk-slow');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const made = agent({ service: name, token: secret, health: () => new Promise<boolean>(() => undefined) });
    await made.start();
    const { value } = await waitFor(() => portico.controlPlane.instance(name, made.id), (instance) => instance?.checks[0]?.output.includes('did not answer') === true);
    expect(value?.health).toBe('critical');
    expect(value?.checks[0]?.output).toBe(`the health function did not answer within ${TIMEOUT_MS} ms`);
  });

  it('on stop(), leaves ?passing first (maintenance), waits the drain, then deregisters', async () => {
    const name = uniqueService('sdk-drain');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const drainMs = 800;
    const made = agent({ service: name, token: secret, drain: `${drainMs}ms` });
    await made.start();
    await waitFor(() => portico.controlPlane.passing(name), (ids) => ids.includes(made.id));

    const events = await openSse(`${portico.controlPlane.url}/api/v1/events`, { authorization: `Bearer ${portico.controlPlane.adminToken}` });
    await events.next();
    const stopping = made.stop();
    const seen: Array<{ event: string; maintenance: boolean; at: number }> = [];
    while (seen.at(-1)?.event !== 'instance.deregistered') {
      const message = await events.nextEvent(5_000);
      const data = JSON.parse(message?.data ?? '{}');
      if (data.instanceId !== made.id) continue;
      seen.push({ event: message!.event!, maintenance: data.instance?.maintenance != null, at: Date.now() });
      if (seen.length === 1) expect(await portico.controlPlane.passing(name)).toEqual([]);
    }
    events.close();
    await stopping;

    expect(seen[0]).toMatchObject({ event: 'instance.health_changed', maintenance: true });
    const deregistered = seen.at(-1)!;
    expect(deregistered.at - seen[0]!.at).toBeGreaterThanOrEqual(drainMs - 50);
    expect(await portico.controlPlane.instances(name)).toEqual([]);
  });

  it('rejects start() with the control plane\'s code for a wrong token, and for a token issued for another service', async () => {
    const name = uniqueService('sdk-denied');
    const wrong = agent({ service: name, token: 'ptc_not-a-token-anyone-issued' });
    const refused = await wrong.start().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(AgentError);
    expect(refused).toMatchObject({ kind: 'unauthorized', code: 'PORTICO_ERR_AUTH_INVALID_TOKEN', statusCode: 401, fatal: true });
    expect((refused as Error).message).toMatch(/registering the instance: the control plane answered 401 PORTICO_ERR_AUTH_INVALID_TOKEN/);

    const { secret } = await portico.controlPlane.agentToken([uniqueService('other')]);
    await expect(agent({ service: name, token: secret }).start()).rejects.toMatchObject({ code: 'PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN', statusCode: 403 });
    expect(await portico.controlPlane.instances(name)).toEqual([]);
  });

  it('stops with a fatal event, not a retry loop, when its token is revoked while it runs', async () => {
    const name = uniqueService('sdk-revoked');
    const token = await portico.controlPlane.agentToken([name]);
    const made = agent({ service: name, token: token.secret });
    await made.start();
    const fatal = new Promise<AgentError>((resolve) => made.once('fatal', resolve));
    expect((await portico.controlPlane.api(`tokens/${token.id}`, { method: 'DELETE' })).status).toBe(204);

    const error = await fatal;
    expect(error).toMatchObject({ code: 'PORTICO_ERR_AUTH_INVALID_TOKEN', kind: 'unauthorized' });
    const served = await portico.controlPlane.requestsServed('PUT', '/api/v1/instances/:id/health');
    await sleep(3 * INTERVAL_MS);
    expect(await portico.controlPlane.requestsServed('PUT', '/api/v1/instances/:id/health')).toBe(served);
  });

  it('resolves healthy instances from a cache the event stream keeps current, round robin, reading each service once', async () => {
    const name = uniqueService('sdk-catalog');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const other = await HealthService.start();
    try {
      const first = agent({ service: name, token: secret });
      const second = agent({ service: name, token: secret, port: other.port });
      await Promise.all([first.start(), second.start()]);
      await waitFor(() => portico.controlPlane.passing(name), (ids) => ids.length === 2);

      const discovery = createDiscovery({ controlPlane: portico.controlPlane.url, token: portico.controlPlane.adminToken });
      discoveries.push(discovery);
      const reads = await portico.controlPlane.requestsServed('GET', '/api/v1/services/:name');
      expect((await discovery.resolve(name)).map((instance) => instance.id).sort()).toEqual([first.id, second.id].sort());
      const picks = await Promise.all([1, 2, 3, 4].map(() => discovery.pick(name)));
      expect(new Set(picks.map((instance) => instance?.id)).size).toBe(2);
      expect(picks[0]?.id).toBe(picks[2]?.id);
      expect(picks[1]?.id).toBe(picks[3]?.id);

      // The second instance fails its check: the cache drops it as soon as the event arrives.
      other.healthy = false;
      const failedAt = Date.now();
      const dropped = await waitFor(() => discovery.resolve(name), (healthy) => healthy.length === 1, 5_000, 10);
      expect(dropped.value[0]?.id).toBe(first.id);
      expect(dropped.at - failedAt).toBeLessThan(INTERVAL_MS + TIMEOUT_MS + OBSERVATION_MS);
      other.healthy = true;
      await waitFor(() => discovery.resolve(name), (healthy) => healthy.length === 2, 5_000, 10);
      // The agent deregistering is seen the same way.
      await second.stop({ drain: false });
      await waitFor(() => discovery.resolve(name), (healthy) => healthy.length === 1, 5_000, 10);

      // Hundreds of answers later, still the one read: the stream, not polling, kept the cache current.
      expect(await portico.controlPlane.requestsServed('GET', '/api/v1/services/:name')).toBe(reads + 1);
      // An agent resolves too, with its own token (agent tokens may read the registry).
      expect((await first.resolve(name)).map((instance) => instance.id)).toEqual([first.id]);
      expect(await first.pick(uniqueService('nobody'))).toBeUndefined();
    } finally {
      await other.close();
    }
  });
});
