/**
 * `npm run bench:api`: what authentication costs on the admin API. Starts the real control plane
 * (SQLite, a Redis of its own), then loads it from this process with autocannon:
 *   baseline  GET /healthz        (no auth, no store)
 *   measured  GET /api/v1/me      (bearer token: SHA-256 + indexed SQLite lookup + role check)
 *   measured  GET /api/v1/audit   (auth + a page of 100 audit rows)
 * Figures are printed next to the baseline from the same run, since this machine is shared and noisy.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { freePort, runControlPlane, waitForHttp } from '../test/support/control-plane-process.js';
import { startRedisServer } from '../test/support/redis-server.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const CONNECTIONS = 10;

interface Figures {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(name: string, url: string, headers: Record<string, string> = {}): Promise<Figures> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: DURATION_S, headers });
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
  };
}

const redis = await startRedisServer();
const dataDir = await mkdtemp(join(tmpdir(), 'portico-bench-'));
const port = await freePort();
const admin = `bench-${randomBytes(24).toString('hex')}`;
const server = runControlPlane({ PORTICO_PORT: String(port), PORTICO_DATA_DIR: dataDir, PORTICO_REDIS_URL: redis.url, PORTICO_ADMIN_TOKEN: admin, PORTICO_LOG_LEVEL: 'warn' });
try {
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/healthz`);
  const auth = { authorization: `Bearer ${admin}` };
  for (let i = 0; i < 100; i++) {
    await fetch(`${base}/api/v1/tokens`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: `bench-${i}`, role: 'viewer' }) });
  }
  await load('warm-up', `${base}/healthz`);

  const rows = [
    await load('GET /healthz (baseline)', `${base}/healthz`),
    await load('GET /api/v1/me', `${base}/api/v1/me`, auth),
    await load('GET /api/v1/audit?limit=100', `${base}/api/v1/audit?limit=100`, auth),
  ];
  const baseline = rows[0]!;
  console.log(`\nadmin API, ${CONNECTIONS} connections, ${DURATION_S} s each, SQLite store`);
  console.log('route'.padEnd(32), 'req/s'.padStart(9), 'p50 ms'.padStart(8), 'p99 ms'.padStart(8), 'vs baseline'.padStart(12), 'errors'.padStart(7));
  for (const row of rows) {
    const ratio = row === baseline ? '1.00x' : `${(row.rps / baseline.rps).toFixed(2)}x`;
    console.log(row.name.padEnd(32), row.rps.toFixed(0).padStart(9), String(row.p50).padStart(8), String(row.p99).padStart(8), ratio.padStart(12), String(row.errors + row.non2xx).padStart(7));
  }
  if (rows.some((row) => row.errors + row.non2xx > 0)) process.exitCode = 1;
} finally {
  await server.stop('SIGTERM');
  await redis.stop();
  await rm(dataDir, { recursive: true, force: true });
}
