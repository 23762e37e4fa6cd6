import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Agent, type AgentError, createAgent, createDiscovery, type Discovery, type RegistrationReason } from '../../src/index.js';
import { ControlPlane, HealthService, sleep, uniqueService, waitFor } from '../support/portico.js';

const INTERVAL_MS = 400;
/**
 * Time for a control plane that has just started to answer the re-registration and the heartbeat
 * after it (its first requests compile their code paths): the agent sends them within one interval.
 */
const COLD_ANSWER_MS = 300;
/**
 * The SDK's outage. The 30 s is run by the sidecar's test (control-plane-outage.test.ts),
 * through this same Agent class; here 5 s covers the in-process wiring and keeps the suite short.
 * Either way the backoff reaches its cap (the interval) within a few attempts.
 */
const OUTAGE_MS = 5_000;

describe('the SDK agent when the control plane goes away', () => {
  let controlPlane: ControlPlane;
  let service: HealthService;
  const agents: Agent[] = [];
  const discoveries: Discovery[] = [];

  const agent = (name: string, token: string, port = service.port) => {
    const made = createAgent({ service: name, port, health: { path: '/health' }, interval: `${INTERVAL_MS}ms`, drain: 0, controlPlane: controlPlane.url, token });
    agents.push(made);
    return made;
  };

  beforeAll(async () => {
    [controlPlane, service] = await Promise.all([ControlPlane.start({ logLevel: 'info' }), HealthService.start()]);
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((made) => made.stop({ drain: false })));
    await Promise.all(discoveries.splice(0).map((made) => made.close()));
  });
  afterAll(async () => {
    await Promise.all([controlPlane?.close(), service?.close()]);
  });

  it('has the instance back, with the same id, within one heartbeat interval of a restart with a wiped data directory; discovery follows', async () => {
    const name = uniqueService('sdk-wiped');
    // The admin token from PORTICO_ADMIN_TOKEN is made again on the empty store; an agent token, kept
    // in the wiped store, would be gone (the agent would then stop with 401, as it should).
    const made = agent(name, controlPlane.adminToken);
    const reasons: RegistrationReason[] = [];
    made.on('registered', ({ reason }) => reasons.push(reason));
    await made.start();
    await waitFor(() => controlPlane.instance(name, made.id), (instance) => instance?.health === 'passing');
    const discovery = createDiscovery({ controlPlane: controlPlane.url, token: controlPlane.adminToken });
    discoveries.push(discovery);
    expect((await discovery.resolve(name)).map((instance) => instance.id)).toEqual([made.id]);

    await controlPlane.stop({ wipe: true });
    const listeningAt = await controlPlane.restart();
    const back = await waitFor(() => controlPlane.instance(name, made.id), (instance) => instance !== undefined, 10_000, 10);
    expect(back.at - listeningAt).toBeLessThan(INTERVAL_MS + COLD_ANSWER_MS);
    await waitFor(() => controlPlane.instance(name, made.id), (instance) => instance?.health === 'passing', 2 * INTERVAL_MS);
    expect(reasons.at(-1)).toMatch(/^(lost|reconnect)$/);

    // The event stream resumed with a Last-Event-ID the new registry never issued: it was sent a
    // reset, and the cache holds the new registry's instance.
    const resolved = await waitFor(() => discovery.resolve(name), (healthy) => healthy.length === 1, 5_000, 10);
    expect(resolved.value[0]?.id).toBe(made.id);
  });

  it('reconnects by itself after an outage, keeps checking locally meanwhile, and registers its full state again', async () => {
    const name = uniqueService('sdk-outage');
    const { secret } = await controlPlane.agentToken([name]);
    const made = agent(name, secret);
    const disconnections: AgentError[] = [];
    const reasons: RegistrationReason[] = [];
    made.on('disconnected', (error) => disconnections.push(error));
    made.on('registered', ({ reason }) => reasons.push(reason));
    await made.start();
    await waitFor(() => controlPlane.instance(name, made.id), (instance) => instance?.health === 'passing');

    await controlPlane.stop();
    const probes = service.probes;
    await sleep(OUTAGE_MS);
    expect(service.probes - probes).toBeGreaterThanOrEqual(Math.floor((OUTAGE_MS / INTERVAL_MS) * 0.8));
    expect(disconnections).toHaveLength(1);
    expect(disconnections[0]?.code).toBe('PORTICO_ERR_AGENT_UNREACHABLE');
    expect(made.connected).toBe(false);

    const listeningAt = await controlPlane.restart();
    // The store kept the instance; what shows the agent is back is a heartbeat after the restart.
    const back = await waitFor(
      () => controlPlane.instance(name, made.id),
      (instance) => instance?.health === 'passing' && Date.parse(instance.checks[0]?.lastResultAt ?? '') > listeningAt,
      10_000,
      10,
    );
    expect(back.at - listeningAt).toBeLessThan(INTERVAL_MS + COLD_ANSWER_MS);
    expect(reasons).toEqual(['start', 'reconnect']);
    expect(made.connected).toBe(true);
  });

  it('start() resolves while the control plane is down, and the agent registers once it is up', async () => {
    const name = uniqueService('sdk-early');
    const made = agent(name, controlPlane.adminToken);
    await controlPlane.stop();
    const registered = new Promise<RegistrationReason>((resolve) => made.once('registered', ({ reason }) => resolve(reason)));
    await made.start();
    expect(made.connected).toBe(false);
    await sleep(2 * INTERVAL_MS);
    const listeningAt = await controlPlane.restart();
    expect(await registered).toBe('start');
    const { at } = await waitFor(() => controlPlane.instance(name, made.id), (instance) => instance?.health === 'passing', 5_000, 10);
    expect(at - listeningAt).toBeLessThan(INTERVAL_MS + COLD_ANSWER_MS);
  });
});
