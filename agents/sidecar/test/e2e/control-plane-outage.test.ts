import { afterEach, describe, expect, it } from 'vitest';
import { defaultInstanceId } from '../../../sdk/src/index.js';
import { COLD_ANSWER_MS, type RunningProcess, sleep, uniqueService, usePortico, waitFor } from '../../../sdk/test/support/portico.js';
import { logLines, startSidecar } from '../support/sidecar.js';

const INTERVAL_MS = 500;
/** The outage, kept at full length here (the SDK's test runs a shorter one through the same Agent). */
const OUTAGE_MS = 30_000;

describe('portico-agent when the control plane goes away', () => {
  const portico = usePortico({ logLevel: 'info' });
  const running: RunningProcess[] = [];

  const sidecar = (name: string, token: string) => {
    const started = startSidecar(['--service', name, '--port', String(portico.service.port), '--health-path', '/health', '--interval', `${INTERVAL_MS}ms`, '--control-plane', portico.controlPlane.url], token);
    running.push(started);
    return started;
  };

  afterEach(async () => {
    await Promise.all(running.splice(0).map((started) => started.stop('SIGKILL')));
  });

  it('has the instance back with the same id within one heartbeat interval after a restart with a wiped data directory', async () => {
    const name = uniqueService('sidecar-wiped');
    const id = defaultInstanceId({ service: name, address: '127.0.0.1', port: portico.service.port });
    // PORTICO_ADMIN_TOKEN is made again on the empty store; an agent token lived in the wiped store
    // and is gone with it (the agent would stop with 401, as it must for an unknown token).
    const started = sidecar(name, portico.controlPlane.adminToken);
    await waitFor(() => portico.controlPlane.instance(name, id), (instance) => instance?.health === 'passing', 20_000);

    await portico.controlPlane.stop({ wipe: true });
    const listeningAt = await portico.controlPlane.restart();
    const back = await waitFor(() => portico.controlPlane.instance(name, id), (instance) => instance !== undefined, 10_000, 10);
    expect(back.at - listeningAt).toBeLessThan(INTERVAL_MS + COLD_ANSWER_MS);
    await waitFor(() => portico.controlPlane.instance(name, id), (instance) => instance?.health === 'passing', 2 * INTERVAL_MS);
    expect(started.child.exitCode).toBeNull();
    await started.waitForOutput(/"msg":"registered again \((lost|reconnect)\)"/, 2_000);
  });

  it('reconnects by itself after the control plane is down for 30 s, having kept checking locally', async () => {
    const name = uniqueService('sidecar-outage');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const id = defaultInstanceId({ service: name, address: '127.0.0.1', port: portico.service.port });
    const started = sidecar(name, secret);
    await waitFor(() => portico.controlPlane.instance(name, id), (instance) => instance?.health === 'passing', 20_000);

    await portico.controlPlane.stop();
    const probes = portico.service.probes;
    await sleep(OUTAGE_MS);
    expect(started.child.exitCode).toBeNull();
    expect(portico.service.probes - probes).toBeGreaterThanOrEqual(Math.floor((OUTAGE_MS / INTERVAL_MS) * 0.8));
    // Said once, not once per retry.
    expect(logLines(started).filter((line) => line.msg.startsWith('control plane unreachable'))).toHaveLength(1);

    const listeningAt = await portico.controlPlane.restart();
    // The store kept the instance; a heartbeat after the restart is what shows the agent is back.
    const back = await waitFor(
      () => portico.controlPlane.instance(name, id),
      (instance) => instance?.health === 'passing' && Date.parse(instance.checks[0]?.lastResultAt ?? '') > listeningAt,
      10_000,
      10,
    );
    expect(back.at - listeningAt).toBeLessThan(INTERVAL_MS + COLD_ANSWER_MS);
    await started.waitForOutput('"msg":"registered again (reconnect)"', 2_000);
    const reconnected = logLines(started).find((line) => line.msg === 'registered again (reconnect)');
    expect(reconnected?.outageMs).toBeGreaterThanOrEqual(OUTAGE_MS);
    // Capped backoff: about one attempt per interval, not a tight loop.
    expect(reconnected?.attempts).toBeLessThanOrEqual(Math.ceil(OUTAGE_MS / (INTERVAL_MS / 2)) + 5);
  });
});
