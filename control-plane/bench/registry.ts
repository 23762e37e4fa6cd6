/**
 * `npm run bench:registry`: the registry at fleet size, against the real control plane (SQLite store,
 * embedded registry) in its own process, run as `npm start` runs it (the bundle), driven over HTTP through the Consul-compatible API.
 *
 *   registration   10,000 instances across 500 services (each with a TTL check), 32 at a time;
 *                  baseline: as many authenticated reads of /v1/agent/self, same concurrency
 *   reads          GET /v1/health/service/:name?passing p50/p99; baseline: GET /healthz
 *   watch wake-up  1,000 changes, each waking a parked blocking query; baseline: the change's own round trip
 *   memory         control-plane RSS with the 10,000 instances; baseline: RSS just after start
 *
 * Targets (issue): registration < 5 s, read p99 < 5 ms, wake p99 < 50 ms, RSS < 200 MB.
 * Figures are printed next to a baseline from the same run: this machine is shared and noisy.
 */
import { randomBytes } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { buildControlPlane, freePort, runControlPlane, waitForHttp } from '../test/support/control-plane-process.js';

const SERVICES = Number(process.env.BENCH_SERVICES ?? 500);
const PER_SERVICE = Number(process.env.BENCH_PER_SERVICE ?? 20);
const CONCURRENCY = 32;
const READS = 2000;
const CHANGES = Number(process.env.BENCH_CHANGES ?? 1000);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** CPU seconds (user + system) the process has used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/** Run `count` jobs, `concurrency` at a time; returns each job's latency in ms and the total. */
async function runJobs(count: number, concurrency: number, job: (i: number) => Promise<void>): Promise<{ latencies: number[]; totalMs: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = performance.now();
        await job(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { latencies, totalMs: performance.now() - started };
}

const dataDir = await mkdtemp(join(tmpdir(), 'portico-bench-registry-'));
const port = await freePort();
const token = `bench-${randomBytes(24).toString('hex')}`;
// The bundle `npm start` runs, so the figures are the ones an operator gets.
await buildControlPlane();
const server = runControlPlane({ PORTICO_PORT: String(port), PORTICO_DATA_DIR: dataDir, PORTICO_ADMIN_TOKEN: token, PORTICO_LOG_LEVEL: 'warn' }, { built: true });
const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONCURRENCY + 4, pipelining: 1 });
const headers = { 'x-consul-token': token, 'content-type': 'application/json' };

async function call(method: 'GET' | 'PUT', path: string, body?: unknown): Promise<{ status: number; index: number; text: string }> {
  const res = await pool.request({ method, path, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.body.text();
  if (res.statusCode >= 400) throw new Error(`${method} ${path}: ${res.statusCode} ${text}`);
  return { status: res.statusCode, index: Number(res.headers['x-consul-index'] ?? 0), text };
}

try {
  await waitForHttp(`http://127.0.0.1:${port}/healthz`);
  const pid = server.child.pid as number;
  const rssBefore = await rssMb(pid);
  const total = SERVICES * PER_SERVICE;

  // Registration, with its baseline first; the server's own CPU time too, which the client's share of
  // the two cores does not blur.
  let cpu = await cpuSeconds(pid);
  const baselineWrites = await runJobs(total, CONCURRENCY, () => call('GET', '/v1/agent/self').then(() => undefined));
  const baselineCpu = (await cpuSeconds(pid)) - cpu;
  cpu = await cpuSeconds(pid);
  const registration = await runJobs(total, CONCURRENCY, async (i) => {
    const service = `svc-${i % SERVICES}`;
    const id = `${service}-${Math.floor(i / SERVICES)}`;
    await call('PUT', '/v1/agent/service/register', {
      Name: service,
      ID: id,
      Address: '10.0.0.1',
      Port: 10_000 + (i % 50_000),
      Tags: ['bench'],
      Check: { CheckID: `${id}-ttl`, TTL: '10m', Status: 'passing' },
    });
  });

  const registrationCpu = (await cpuSeconds(pid)) - cpu;

  // Reads.
  const readAt = (concurrency: number) => runJobs(READS, concurrency, (i) => call('GET', `/v1/health/service/svc-${i % SERVICES}?passing`).then(() => undefined));
  const healthzAt = (concurrency: number) => runJobs(READS, concurrency, () => call('GET', '/healthz').then(() => undefined));
  // One read of every service first, unmeasured: the figures are the steady state, not the first
  // render of each service's answer just after a storm of 10,000 registrations.
  await runJobs(SERVICES, 1, (i) => call('GET', `/v1/health/service/svc-${i}?passing`).then(() => undefined));
  await healthzAt(1);
  const baselineReads1 = await healthzAt(1);
  const reads1 = await readAt(1);
  const baselineReads = await healthzAt(8);
  const reads = await readAt(8);

  // Watch wake-up: a blocking query parked on a service, then a change to it.
  const wakes: number[] = [];
  const roundTrips: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const service = `svc-${i % SERVICES}`;
    const { index } = await call('GET', `/v1/health/service/${service}`);
    const watcher = call('GET', `/v1/health/service/${service}?index=${index}&wait=30s`);
    await new Promise((resolve) => setTimeout(resolve, 2)); // let the query park
    const t0 = performance.now();
    // Every check starts passing: its first change fails it, the next passes it again.
    const verb = Math.floor(i / total) % 2 === 0 ? 'fail' : 'pass';
    const change = call('PUT', `/v1/agent/check/${verb}/${service}-${Math.floor(i / SERVICES) % PER_SERVICE}-ttl`).then(() => roundTrips.push(performance.now() - t0));
    const woke = await watcher;
    wakes.push(performance.now() - t0);
    await change;
    if (woke.index <= index) throw new Error(`watcher on ${service} returned without a change`);
  }

  const rssAfter = await rssMb(pid);
  const f = (n: number) => n.toFixed(2).padStart(9);
  console.log(`\nregistry: ${total} instances across ${SERVICES} services, SQLite, embedded backend`);
  console.log(`${'figure'.padEnd(58)}${'measured'.padStart(12)}${'baseline'.padStart(12)}   target`);
  console.log(`${`register ${total} instances (s), ${CONCURRENCY} at a time`.padEnd(58)}${f(registration.totalMs / 1000)}   ${f(baselineWrites.totalMs / 1000)}   < 5 s   (baseline: ${total} authenticated GET /v1/agent/self)`);
  console.log(`${'server CPU per registration (ms)'.padEnd(58)}${f((registrationCpu * 1000) / total)}   ${f((baselineCpu * 1000) / total)}`);
  console.log(`${'register rate (instances/s)'.padEnd(58)}${f((total * 1000) / registration.totalMs)}   ${f((total * 1000) / baselineWrites.totalMs)}`);
  console.log(`${'GET /v1/health/service/:name?passing p50 (ms), 1 client'.padEnd(58)}${f(percentile(reads1.latencies, 50))}   ${f(percentile(baselineReads1.latencies, 50))}           (baseline: GET /healthz)`);
  console.log(`${'  … p99 (ms), 1 client'.padEnd(58)}${f(percentile(reads1.latencies, 99))}   ${f(percentile(baselineReads1.latencies, 99))}   < 5 ms`);
  console.log(`${'  … p50 (ms), 8 concurrent clients'.padEnd(58)}${f(percentile(reads.latencies, 50))}   ${f(percentile(baselineReads.latencies, 50))}`);
  console.log(`${'  … p99 (ms), 8 concurrent clients'.padEnd(58)}${f(percentile(reads.latencies, 99))}   ${f(percentile(baselineReads.latencies, 99))}   < 5 ms`);
  console.log(`${`blocking watcher wake-up p50 (ms), ${CHANGES} changes`.padEnd(58)}${f(percentile(wakes, 50))}   ${f(percentile(roundTrips, 50))}           (baseline: the change request's round trip)`);
  console.log(`${'blocking watcher wake-up p99 (ms)'.padEnd(58)}${f(percentile(wakes, 99))}   ${f(percentile(roundTrips, 99))}   < 50 ms`);
  console.log(`${'control-plane RSS (MB)'.padEnd(58)}${f(rssAfter)}   ${f(rssBefore)}   < 200 MB (baseline: just after start, empty)`);
} finally {
  await pool.close();
  await server.stop('SIGTERM');
  await rm(dataDir, { recursive: true, force: true });
}
