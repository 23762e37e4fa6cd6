import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import getPort from 'get-port';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer } from '../../support/redis-server.js';
import { bearer, createTestApp, type TestApp } from '../../support/test-app.js';

const PROMETHEUS = 'prometheus';
const installed = spawnSync(PROMETHEUS, ['--version'], { stdio: 'ignore' }).status === 0;
// CI installs the Debian package; there, a missing binary is a failure rather than a skip.
const runIt = installed || process.env.CI !== undefined;

interface Target {
  discoveredLabels: Record<string, string>;
  labels: Record<string, string>;
  scrapePool: string;
  scrapeUrl: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Stops the Prometheus this test started: SIGTERM, then SIGKILL if it lingers. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

describe.runIf(runIt)('Prometheus discovers instances through /api/v1/sd/prometheus', () => {
  let redis: Awaited<ReturnType<typeof startRedisServer>>;
  let t: TestApp;
  let dir: string;
  let prometheus: ChildProcess | undefined;
  let prometheusLog = '';

  beforeAll(async () => {
    redis = await startRedisServer();
    t = await createTestApp({ redisUrl: redis.url });
    dir = await mkdtemp(join(tmpdir(), 'portico-prometheus-'));
  });
  afterAll(async () => {
    if (prometheus !== undefined) await stop(prometheus);
    await t.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Polls Prometheus' active targets of the `portico` job until `done` holds for them, or `ms` pass. */
  async function poll(port: number, ms: number, done: (targets: Target[]) => boolean): Promise<Target[]> {
    const deadline = Date.now() + ms;
    let targets: Target[] = [];
    while (Date.now() < deadline) {
      if (prometheus?.exitCode !== null) throw new Error(`prometheus exited (${String(prometheus?.exitCode)}): ${prometheusLog}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/targets?state=active`);
        if (res.ok) {
          const body = (await res.json()) as { data: { activeTargets: Target[] } };
          targets = body.data.activeTargets.filter((target) => target.scrapePool === 'portico');
          if (done(targets)) return targets;
        }
      } catch {
        // Not listening yet.
      }
      await sleep(200);
    }
    return targets;
  }

  it('finds both registered instances as targets, with the __meta_portico_ labels and relabelled ones', async () => {
    const base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const service = `svc-${randomUUID()}`;
    // Ports nobody listens on: the targets are discovered (and scraped, unsuccessfully), which is all this is about.
    const ports = [await getPort(), await getPort()];
    const token = await t.tokenFor('viewer');
    for (const [i, port] of ports.entries()) {
      const res = await t.app.inject({
        method: 'PUT',
        url: `/api/v1/instances/${service}-${i}`,
        headers: bearer(t.adminToken),
        payload: { service, address: '127.0.0.1', port, tags: ['v2', `zone-${i}`], meta: { 'git-sha': `abc${i}` } },
      });
      expect(res.statusCode, res.body).toBe(201);
    }

    const promPort = await getPort();
    await writeFile(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1m',
        'scrape_configs:',
        '  - job_name: portico',
        '    http_sd_configs:',
        `      - url: ${base}/api/v1/sd/prometheus?service=${service}`,
        '        refresh_interval: 1s',
        '        authorization:',
        '          type: Bearer',
        `          credentials: ${token}`,
        '    relabel_configs:',
        '      - source_labels: [__meta_portico_service]',
        '        target_label: service',
        '      - source_labels: [__meta_portico_instance_id]',
        '        target_label: portico_instance',
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      PROMETHEUS,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus.stderr?.on('data', (chunk: Buffer) => (prometheusLog += chunk.toString()));

    // Prometheus hands discovered targets to its scrape manager at most every 5 s.
    let targets = await poll(promPort, 15_000, (found) => found.length === 2);
    expect(targets, `Prometheus log:\n${prometheusLog}`).toHaveLength(2);

    targets.sort((a, b) => a.labels.portico_instance!.localeCompare(b.labels.portico_instance!));
    for (const [i, target] of targets.entries()) {
      expect(target.discoveredLabels).toMatchObject({
        __address__: `127.0.0.1:${ports[i]}`,
        __meta_portico_service: service,
        __meta_portico_instance_id: `${service}-${i}`,
        __meta_portico_tags: `,v2,zone-${i},`,
        __meta_portico_health: 'passing',
        __meta_portico_meta_git_sha: `abc${i}`,
        job: 'portico',
      });
      expect(target.labels).toEqual({ instance: `127.0.0.1:${ports[i]}`, job: 'portico', service, portico_instance: `${service}-${i}` });
      expect(target.scrapeUrl).toBe(`http://127.0.0.1:${ports[i]}/metrics`);
    }

    // It follows changes: maintenance shows in the next refresh.
    const maintenance = await t.app.inject({ method: 'PUT', url: `/api/v1/instances/${service}-0/maintenance`, headers: bearer(t.adminToken), payload: { enabled: true } });
    expect(maintenance.statusCode).toBe(200);
    targets = await poll(promPort, 10_000, (found) => found.some((target) => target.discoveredLabels.__meta_portico_health === 'critical'));
    expect(targets.find((target) => target.labels.portico_instance === `${service}-0`)?.discoveredLabels).toMatchObject({
      __meta_portico_health: 'critical',
      __meta_portico_maintenance: 'true',
    });
  });
});
