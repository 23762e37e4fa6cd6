import { afterEach, describe, expect, it } from 'vitest';
import { openSse } from '../../../../control-plane/test/support/sse-client.js';
import { defaultInstanceId } from '../../../sdk/src/index.js';
import { freePort, OBSERVATION_MS, type RunningProcess, sleep, uniqueService, usePortico, waitFor } from '../../../sdk/test/support/portico.js';
import { childServiceScript, logLines, startSidecar } from '../support/sidecar.js';

const INTERVAL_MS = 300;
const TIMEOUT_MS = 200;

describe('portico-agent, the sidecar, against a real control plane', () => {
  const portico = usePortico();
  const running: RunningProcess[] = [];

  const sidecar = (args: string[], token: string | undefined) => {
    // The common flags first: everything after `--` belongs to the supervised command.
    const started = startSidecar(['--control-plane', portico.controlPlane.url, '--interval', `${INTERVAL_MS}ms`, '--timeout', `${TIMEOUT_MS}ms`, ...args], token);
    running.push(started);
    return started;
  };

  afterEach(async () => {
    portico.service.healthy = true;
    await Promise.all(running.splice(0).map((started) => started.stop('SIGKILL')));
  });

  it('registers with a stable id, becomes passing, turns critical within interval + timeout when /health fails, recovers, and keeps its id across a restart', async () => {
    const name = uniqueService('sidecar');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const args = ['--service', name, '--port', String(portico.service.port), '--health-path', '/health', '--drain', '0s', '--tags', 'v1,blue', '--meta', 'zone=a'];
    const id = defaultInstanceId({ service: name, address: '127.0.0.1', port: portico.service.port });

    const first = sidecar(args, secret);
    const passing = await waitFor(() => portico.controlPlane.instance(name, id), (instance) => instance?.health === 'passing', 20_000);
    expect(passing.value).toMatchObject({ id, service: name, tags: ['v1', 'blue'], meta: { zone: 'a' } });
    expect(passing.value?.checks[0]).toMatchObject({ kind: 'ttl', ttl: `${2 * INTERVAL_MS + TIMEOUT_MS}ms`, deregisterCriticalAfter: '1m' });

    portico.service.healthy = false;
    const failedAt = Date.now();
    const critical = await waitFor(() => portico.controlPlane.instance(name, id), (instance) => instance?.health === 'critical');
    expect(critical.at - failedAt).toBeLessThan(INTERVAL_MS + TIMEOUT_MS + OBSERVATION_MS);
    expect(critical.value?.checks[0]?.output).toBe(`HTTP GET http://127.0.0.1:${portico.service.port}/health: 500 Internal Server Error Output: database unreachable`);

    portico.service.healthy = true;
    const recoveredAt = Date.now();
    const recovered = await waitFor(() => portico.controlPlane.instance(name, id), (instance) => instance?.health === 'passing');
    expect(recovered.at - recoveredAt).toBeLessThan(INTERVAL_MS + TIMEOUT_MS + OBSERVATION_MS);

    expect(await first.stop('SIGTERM')).toBe(0);
    expect(await portico.controlPlane.instances(name)).toEqual([]);
    const second = sidecar(args, secret);
    await waitFor(() => portico.controlPlane.instances(name), (instances) => instances.length === 1, 20_000);
    expect((await portico.controlPlane.instances(name)).map((instance) => instance.id)).toEqual([id]);
    await second.stop('SIGTERM');
  });

  it('reports a service that never becomes healthy as critical, with the check\'s output, and keeps trying', async () => {
    const name = uniqueService('sidecar-down');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const nothing = await freePort();
    const started = sidecar(['--service', name, '--port', String(nothing), '--id', `${name}-1`], secret);
    const { value } = await waitFor(() => portico.controlPlane.instance(name, `${name}-1`), (instance) => instance?.checks[0]?.lastResultAt != null, 20_000);
    expect(value?.health).toBe('critical');
    expect(value?.checks[0]?.output).toBe(`TCP connect 127.0.0.1:${nothing}: connection refused`);
    await sleep(3 * INTERVAL_MS);
    expect(started.child.exitCode).toBeNull();
    expect((await portico.controlPlane.instance(name, `${name}-1`))?.health).toBe('critical');
  });

  it('on SIGTERM leaves ?passing first, keeps serving through the drain, deregisters, then stops the service and exits with its code', async () => {
    const name = uniqueService('sidecar-drain');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const port = await freePort();
    const drainMs = 1_000;
    const started = sidecar(['--service', name, '--port', String(port), '--health-path', '/health', '--drain', `${drainMs}ms`, '--', ...childServiceScript(port, 7)], secret);
    await started.waitForOutput('child listening', 20_000);
    const id = defaultInstanceId({ service: name, address: '127.0.0.1', port });
    await waitFor(() => portico.controlPlane.passing(name), (ids) => ids.includes(id), 20_000);

    const events = await openSse(`${portico.controlPlane.url}/api/v1/events`, { authorization: `Bearer ${portico.controlPlane.adminToken}` });
    await events.next();
    started.child.kill('SIGTERM');
    const seen: Array<{ event: string; maintenance: boolean; at: number }> = [];
    while (seen.at(-1)?.event !== 'instance.deregistered') {
      const message = await events.nextEvent(5_000);
      const data = JSON.parse(message?.data ?? '{}');
      if (data.instanceId !== id) continue;
      seen.push({ event: message!.event!, maintenance: data.instance?.maintenance != null, at: Date.now() });
      if (seen.length === 1) {
        // Out of the passing set at once, while the service still answers: in-flight and late requests are served.
        expect(await portico.controlPlane.passing(name)).toEqual([]);
        expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
      }
    }
    events.close();

    expect(seen[0]).toMatchObject({ event: 'instance.health_changed', maintenance: true });
    expect(seen.at(-1)!.at - seen[0]!.at).toBeGreaterThanOrEqual(drainMs - 50);
    expect(await started.exited).toBe(7);
    const sigtermAt = Number(/child got SIGTERM at (\d+)/.exec(started.output())?.[1]);
    const deregisteredAt = logLines(started).find((line) => line.msg === 'deregistered')?.time ?? Number.NaN;
    expect(sigtermAt).toBeGreaterThanOrEqual(deregisteredAt);
    expect(await portico.controlPlane.instances(name)).toEqual([]);
  });

  it('deregisters at once and exits with the service\'s code when the service exits by itself', async () => {
    const name = uniqueService('sidecar-exit');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const port = await freePort();
    const script = `require('node:http').createServer((q, s) => s.end()).listen(${port}, '127.0.0.1', () => setTimeout(() => process.exit(3), 1500))`;
    const started = sidecar(['--service', name, '--port', String(port), '--drain', '10s', '--', process.execPath, '-e', script], secret);
    await waitFor(() => portico.controlPlane.instances(name), (instances) => instances.length === 1, 20_000);
    expect(await started.exited).toBe(3);
    expect(await portico.controlPlane.instances(name)).toEqual([]);
  });

  it('exits 77, naming the problem and its code, for a wrong token, and never starts the service', async () => {
    const name = uniqueService('sidecar-denied');
    const started = sidecar(['--service', name, '--port', String(portico.service.port), '--', process.execPath, '-e', "console.log('child started')"], 'ptc_not-a-token-anyone-issued');
    expect(await started.exited).toBe(77);
    const fatal = logLines(started).find((line) => line.level === 60);
    expect(fatal).toMatchObject({ code: 'PORTICO_ERR_AUTH_INVALID_TOKEN', statusCode: 401 });
    expect(fatal?.msg).toMatch(/the control plane answered 401 PORTICO_ERR_AUTH_INVALID_TOKEN: The bearer token is not valid.*Check --token \/ PORTICO_AGENT_TOKEN/);
    expect(started.output()).not.toContain('child started');
  });

  it('exits 77 for a token issued for another service', async () => {
    const { secret } = await portico.controlPlane.agentToken([uniqueService('other')]);
    const started = sidecar(['--service', uniqueService('sidecar-forbidden'), '--port', String(portico.service.port)], secret);
    expect(await started.exited).toBe(77);
    expect(logLines(started).find((line) => line.level === 60)?.msg).toMatch(/403 PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN.*Issue an agent token that names this service/);
  });

  it('exits 77 and stops the service when its token is revoked while it runs', async () => {
    const name = uniqueService('sidecar-revoked');
    const token = await portico.controlPlane.agentToken([name]);
    const port = await freePort();
    const started = sidecar(['--service', name, '--port', String(port), '--', ...childServiceScript(port, 0)], token.secret);
    await waitFor(() => portico.controlPlane.instances(name), (instances) => instances.length === 1, 20_000);
    expect((await portico.controlPlane.api(`tokens/${token.id}`, { method: 'DELETE' })).status).toBe(204);
    expect(await started.exited).toBe(77);
    expect(started.output()).toContain('child got SIGTERM');
    expect(logLines(started).find((line) => line.level === 60)?.code).toBe('PORTICO_ERR_AUTH_INVALID_TOKEN');
  });

  it('when killed, leaves the registry to mark the instance critical after its TTL and remove it after --deregister-after', async () => {
    const name = uniqueService('sidecar-killed');
    const { secret } = await portico.controlPlane.agentToken([name]);
    const started = startSidecar(
      ['--service', name, '--port', String(portico.service.port), '--id', `${name}-1`, '--control-plane', portico.controlPlane.url, '--interval', '200ms', '--timeout', '100ms', '--deregister-after', '1s'],
      secret,
    );
    running.push(started);
    await waitFor(() => portico.controlPlane.instance(name, `${name}-1`), (instance) => instance?.health === 'passing', 20_000);
    await started.stop('SIGKILL');
    const killedAt = Date.now();
    const ttlMs = 2 * 200 + 100;
    const critical = await waitFor(() => portico.controlPlane.instance(name, `${name}-1`), (instance) => instance?.health === 'critical');
    expect(critical.value?.checks[0]?.output).toMatch(/TTL expired/);
    // The control plane reaps every 250 ms.
    expect(critical.at - killedAt).toBeLessThan(ttlMs + 250 + OBSERVATION_MS);
    const gone = await waitFor(() => portico.controlPlane.instances(name), (instances) => instances.length === 0);
    expect(gone.at - killedAt).toBeLessThan(ttlMs + 1_000 + 2 * 250 + OBSERVATION_MS);
  });
});
