import { afterEach, describe, expect, it } from 'vitest';
import { type Agent, type AgentError, createAgent, createDiscovery, type Discovery, type RegistrationReason } from '../../src/index.js';
import { COLD_ANSWER_MS, sleep, uniqueService, usePortico, waitFor } from '../support/portico.js';

const INTERVAL_MS = 400;
/**
 * The SDK's outage. The 30 s is run by the sidecar's test (control-plane-outage.test.ts),
 * through this same Agent class; here 5 s covers the in-process wiring and keeps the suite short.
 * Either way the backoff reaches its cap (the interval) within a few attempts.
 */
const OUTAGE_MS = 5_000;

describe('the SDK agent when the control plane goes away', () => {
  const portico = usePortico({ logLevel: 'info' });
  const agents: Agent[] = [];
  const discoveries: Discovery[] = [];

  const agent = (name: string, token: string, port = portico.service.port) => {
    const made = createAgent({ service: name, port, health: { path: '/health' }, interval: `${INTERVAL_MS}ms`, drain: 0, controlPlane: portico.controlPlane.url, token });
    agents.push(made);
    return made;
  };

  afterEach(async () => {
    await Promise.all(agents.splice(0).map((made) => made.stop({ drain: false })));
    await Promise.all(discoveries.splice(0).map((made) => made.close()));
  });

  it('has the instance back, with the same id, within one heartbeat interval of a restart with a wiped data directory; discovery follows', async () => {
    const name = uniqueService('sdk-wiped');
    // The admin token from PORTICO_ADMIN_TOKEN is made again on the empty store; an agent token, kept
    // in the wiped store, would be gone (the agent would then stop with 401, as it should).
    const made = agent(name, portico.controlPlane.adminToken);
    await made.start();
    await waitFor(() => portico.controlPlane.instance(name, made.id), (instance) => instance?.health === 'passing');
    const discovery = createDiscovery({ controlPlane: portico.controlPlane.url, token: portico.controlPlane.adminToken });
    discoveries.push(discovery);
    expect((await discovery.resolve(name)).map((instance) => instance.id)).toEqual([made.id]);

    // The control plane shows the instance as soon as the registration lands; the agent says
    // "registered" once the heartbeat after it was answered too.
    const again = new Promise<RegistrationReason>((resolve) => made.on('registered', ({ reason }) => reason !== 'start' && resolve(reason)));
    await portico.controlPlane.stop({ wipe: true });
    const listeningAt = await portico.controlPlane.restart();
    const back = await waitFor(() => portico.controlPlane.instance(name, made.id), (instance) => instance !== undefined, 10_000, 10);
    expect(back.at - listeningAt).toBeLessThan(INTERVAL_MS + COLD_ANSWER_MS);
    await waitFor(() => portico.controlPlane.instance(name, made.id), (instance) => instance?.health === 'passing', 2 * INTERVAL_MS);
    expect(await again).toMatch(/^(lost|reconnect)$/);

    // The event stream resumed with a Last-Event-ID the new registry never issued: it was sent a
    // reset, and the cache holds the new registry's instance.
    const resolved = await waitFor(() => discovery.resolve(name), (healthy) => healthy.length === 1, 5_000, 10);
    expect(resolved.value[0]?.id).toBe(made.id);
  });

  it('reconnects by itself after an outage, keeps checking locally meanwhile, and registers its full state again', async () => {
    const name = uniqueService('sdk-outage');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const made = agent(name, secret);
    const disconnections: AgentError[] = [];
    const reasons: RegistrationReason[] = [];
    made.on('disconnected', (error) => disconnections.push(error));
    made.on('registered', ({ reason }) => reasons.push(reason));
    await made.start();
    await waitFor(() => portico.controlPlane.instance(name, made.id), (instance) => instance?.health === 'passing');

    const reconnected = new Promise<void>((resolve) => made.on('registered', ({ reason }) => reason === 'reconnect' && resolve()));
    await portico.controlPlane.stop();
    const probes = portico.service.probes;
    await sleep(OUTAGE_MS);
    expect(portico.service.probes - probes).toBeGreaterThanOrEqual(Math.floor((OUTAGE_MS / INTERVAL_MS) * 0.8));
    expect(disconnections).toHaveLength(1);
    expect(disconnections[0]?.code).toBe('PORTICO_ERR_AGENT_UNREACHABLE');
    expect(made.connected).toBe(false);

    const listeningAt = await portico.controlPlane.restart();
    // The store kept the instance; what shows the agent is back is a heartbeat after the restart.
    const back = await waitFor(
      () => portico.controlPlane.instance(name, made.id),
      (instance) => instance?.health === 'passing' && Date.parse(instance.checks[0]?.lastResultAt ?? '') > listeningAt,
      10_000,
      10,
    );
    expect(back.at - listeningAt).toBeLessThan(INTERVAL_MS + COLD_ANSWER_MS);
    await reconnected;
    expect(reasons).toEqual(['start', 'reconnect']);
    expect(made.connected).toBe(true);
  });

  it('start() resolves while the control plane is down, and the agent registers once it is up', async () => {
    const name = uniqueService('sdk-early');
    const made = agent(name, portico.controlPlane.adminToken);
    await portico.controlPlane.stop();
    const registered = new Promise<RegistrationReason>((resolve) => made.once('registered', ({ reason }) => resolve(reason)));
    await made.start();
    expect(made.connected).toBe(false);
    await sleep(2 * INTERVAL_MS);
    const listeningAt = await portico.controlPlane.restart();
    expect(await registered).toBe('start');
    const { at } = await waitFor(() => portico.controlPlane.instance(name, made.id), (instance) => instance?.health === 'passing', 5_000, 10);
    expect(at - listeningAt).toBeLessThan(INTERVAL_MS + COLD_ANSWER_MS);
  });
});
