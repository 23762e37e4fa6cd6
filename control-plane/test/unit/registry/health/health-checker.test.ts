import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HealthChecker, type HealthCheckerOptions } from '../../../../src/registry/health/health-checker.js';
import { probeHttp } from '../../../../src/registry/health/probe-http.js';
import { type ProbeResult } from '../../../../src/registry/health/probe-result.js';
import { sleep, startBlackholePort, startHttpServer, waitFor, type LocalHttpServer } from './local-servers.js';

interface Received {
  checkId: string;
  result: ProbeResult;
}

describe('HealthChecker', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function server(handler: Parameters<typeof startHttpServer>[0]): Promise<LocalHttpServer> {
    const started = await startHttpServer(handler);
    cleanups.push(() => started.close());
    return started;
  }

  function checker(options: Partial<HealthCheckerOptions> = {}): { checker: HealthChecker; received: Received[] } {
    const received: Received[] = [];
    const created = new HealthChecker({
      onResult: (checkId, result) => {
        received.push({ checkId, result });
      },
      ...options,
    });
    cleanups.push(() => created.close());
    return { checker: created, received };
  }

  it('spreads the first probes of checks scheduled together over their interval', async () => {
    const firstSeen = new Map<string, number>();
    const target = await server((req, res) => {
      if (!firstSeen.has(req.url ?? '')) firstSeen.set(req.url ?? '', performance.now());
      res.end('ok');
    });
    // undici compiles its HTTP parser on first use; done inside the measured second, that would clump probes.
    await probeHttp({ url: `${target.origin}/warm-up`, timeoutMs: 1_000 });
    firstSeen.clear();
    const { checker: health } = checker();
    const count = 200;
    const intervalMs = 1_000;
    // A baseline timed the same way in the same run: events set evenly over the same second clump only
    // as much as this process stalls (a loaded machine), and the probes may clump little more.
    const baseline: number[] = [];
    for (let i = 0; i < count; i += 1) setTimeout(() => baseline.push(performance.now()), (i * intervalMs) / count);
    for (let i = 0; i < count; i += 1) {
      health.schedule({ id: `check-${i}`, kind: 'http', http: `${target.origin}/check-${i}`, intervalMs, timeoutMs: 1_000 });
    }
    expect(health.size).toBe(count);
    await waitFor(() => firstSeen.size === count && baseline.length === count, 10_000, 'every first probe');

    const probes = [...firstSeen.values()].sort((a, b) => a - b);
    // Evenly spread, a 50 ms window holds ~10 (the busiest ~20 with random times); all at once, 200.
    expect(busiestWindow(probes, 50)).toBeLessThanOrEqual(busiestWindow(baseline, 50) + count * 0.15);
    // The middle 80 % spans ~800 ms when spread over the interval.
    expect(middleSpan(probes)).toBeGreaterThan(middleSpan(baseline) * 0.6);
  });

  it('keeps at most `concurrency` probes in flight, across all checks', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let served = 0;
    const target = await server((_req, res) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight -= 1;
        served += 1;
        res.end('ok');
      }, 100);
    });
    const { checker: health, received } = checker({ concurrency: 4 });
    for (let i = 0; i < 20; i += 1) {
      health.schedule({ id: `slow-${i}`, kind: 'http', http: `${target.origin}/slow-${i}`, intervalMs: 100, timeoutMs: 5_000 });
    }
    await waitFor(() => served >= 24, 10_000, '24 probes served');
    expect(maxInFlight).toBeLessThanOrEqual(4);
    // The limit is reached, not merely respected: twenty checks were waiting.
    expect(maxInFlight).toBeGreaterThanOrEqual(3);
    expect(received.every((r) => r.result.status === 'passing')).toBe(true);
  });

  it('turns critical when the server fails and passing when it recovers', async () => {
    let healthy = true;
    const target = await server((_req, res) => {
      res.writeHead(healthy ? 200 : 503).end(healthy ? 'fine' : 'broken');
    });
    const { checker: health, received } = checker();
    health.schedule({ id: 'flappy', kind: 'http', http: `${target.origin}/health`, intervalMs: 100, timeoutMs: 1_000 });
    const last = (): ProbeResult | undefined => received.at(-1)?.result;

    await waitFor(() => last()?.status === 'passing', 3_000, 'passing');
    healthy = false;
    await waitFor(() => last()?.status === 'critical', 3_000, 'critical');
    expect(last()?.output).toContain('503 Service Unavailable Output: broken');
    healthy = true;
    await waitFor(() => last()?.status === 'passing', 3_000, 'passing again');
    expect(received.every((r) => r.checkId === 'flappy')).toBe(true);
  });

  it('runs TCP checks', async () => {
    const listener: Server = createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => listener.close(() => resolve())));
    const { port } = listener.address() as AddressInfo;
    const { checker: health, received } = checker();
    health.schedule({ id: 'tcp', kind: 'tcp', tcp: `127.0.0.1:${port}`, intervalMs: 100, timeoutMs: 1_000 });
    health.schedule({ id: 'bad-address', kind: 'tcp', tcp: 'nowhere', intervalMs: 100, timeoutMs: 1_000 });
    await waitFor(() => received.some((r) => r.checkId === 'tcp') && received.some((r) => r.checkId === 'bad-address'));
    expect(received.find((r) => r.checkId === 'tcp')?.result).toEqual({ status: 'passing', output: `TCP connect 127.0.0.1:${port}: Success` });
    expect(received.find((r) => r.checkId === 'bad-address')?.result.status).toBe('critical');
  });

  it('stops probing a check once it is unscheduled', async () => {
    let hits = 0;
    const target = await server((_req, res) => {
      hits += 1;
      res.end('ok');
    });
    const { checker: health, received } = checker();
    health.schedule({ id: 'gone', kind: 'http', http: `${target.origin}/health`, intervalMs: 100, timeoutMs: 1_000 });
    await waitFor(() => received.length >= 2, 3_000, 'two results');

    expect(health.unschedule('gone')).toBe(true);
    expect(health.unschedule('gone')).toBe(false);
    expect(health.size).toBe(0);
    const [hitsThen, resultsThen] = [hits, received.length];
    await sleep(500);
    // A request already on the wire may still land; nothing is scheduled after it, and no result is reported.
    expect(hits).toBeLessThanOrEqual(hitsThen + 1);
    expect(received.length).toBe(resultsThen);
  });

  it('probes the new target when a check is replaced under the same id, dropping the old one in flight', async () => {
    let oldRequests = 0;
    const target = await server((req, res) => {
      if (req.url === '/old') {
        oldRequests += 1;
        setTimeout(() => res.end('old'), 200);
        return;
      }
      res.end('new');
    });
    const { checker: health, received } = checker();
    health.schedule({ id: 'moving', kind: 'http', http: `${target.origin}/old`, intervalMs: 100, timeoutMs: 1_000 });
    await waitFor(() => oldRequests === 1, 3_000, 'a probe of /old in flight');
    health.schedule({ id: 'moving', kind: 'http', http: `${target.origin}/new`, intervalMs: 100, timeoutMs: 1_000 });
    expect(health.size).toBe(1);
    await waitFor(() => received.length >= 2, 3_000, 'two results');
    await sleep(300);
    expect(received.map((r) => r.result.output.slice(-3))).toEqual(received.map(() => 'new'));
  });

  it('close() stops every check, aborts probes in flight and reports nothing more', async () => {
    let hits = 0;
    const target = await server((req, res) => {
      hits += 1;
      if (req.url === '/hang') return;
      res.end('ok');
    });
    const { checker: health, received } = checker();
    for (let i = 0; i < 10; i += 1) {
      health.schedule({ id: `c-${i}`, kind: 'http', http: `${target.origin}/c-${i}`, intervalMs: 100, timeoutMs: 1_000 });
    }
    health.schedule({ id: 'hang', kind: 'http', http: `${target.origin}/hang`, intervalMs: 100, timeoutMs: 10_000 });
    const blackhole = await startBlackholePort();
    cleanups.push(() => blackhole.close());
    health.schedule({ id: 'hang-tcp', kind: 'tcp', tcp: `127.0.0.1:${blackhole.port}`, intervalMs: 100, timeoutMs: 10_000 });
    await waitFor(() => received.length >= 20, 3_000, '20 results');
    await sleep(150);

    const started = performance.now();
    await health.close();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(health.size).toBe(0);
    const [hitsThen, resultsThen] = [hits, received.length];
    health.schedule({ id: 'late', kind: 'http', http: `${target.origin}/late`, intervalMs: 100, timeoutMs: 1_000 });
    expect(health.size).toBe(0);
    await sleep(400);
    expect(hits).toBe(hitsThen);
    expect(received.length).toBe(resultsThen);
    expect(received.some((r) => r.checkId.startsWith('hang'))).toBe(false);
  });

  it('keeps reporting after onResult throws or rejects, and logs the failures', async () => {
    const target = await server((_req, res) => res.end('ok'));
    const warn = vi.fn();
    let calls = 0;
    const health = new HealthChecker({
      onResult: () => {
        calls += 1;
        if (calls % 2 === 1) throw new Error('sync failure');
        return Promise.reject(new Error('async failure'));
      },
      logger: { warn },
    });
    cleanups.push(() => health.close());
    health.schedule({ id: 'unlucky', kind: 'http', http: `${target.origin}/health`, intervalMs: 100, timeoutMs: 1_000 });
    await waitFor(() => calls >= 4, 3_000, 'four results');
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ checkId: 'unlucky', err: expect.any(Error) as unknown }), expect.any(String));
  });

  it('never keeps the process alive with its timers', () => {
    const { checker: health } = checker();
    const timeouts = (): number => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
    const before = timeouts();
    for (let i = 0; i < 10; i += 1) {
      health.schedule({ id: `idle-${i}`, kind: 'tcp', tcp: '127.0.0.1:9', intervalMs: 60_000, timeoutMs: 1_000 });
    }
    expect(health.size).toBe(10);
    expect(timeouts()).toBe(before);
  });
});

/** The most of these sorted times that fall within any window of `windowMs`. */
function busiestWindow(times: number[], windowMs: number): number {
  let busiest = 0;
  for (let start = 0, end = 0; start < times.length; start += 1) {
    while (end < times.length && times[end]! - times[start]! < windowMs) end += 1;
    busiest = Math.max(busiest, end - start);
  }
  return busiest;
}

/** The time between the 10th and the 90th percentile of these sorted times. */
function middleSpan(times: number[]): number {
  return times[Math.floor(times.length * 0.9)]! - times[Math.floor(times.length * 0.1)]!;
}
