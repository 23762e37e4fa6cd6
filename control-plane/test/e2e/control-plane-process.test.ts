import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestSchema } from '../support/postgres.js';
import { cleanEnv, freePort, REPO_ROOT, run, runControlPlane, type RunningProcess, waitForHttp } from '../support/control-plane-process.js';
import { startRedisServer } from '../support/redis-server.js';

const TOKEN = /ptc_[A-Za-z0-9_-]{43}/g;

describe('the control-plane process', () => {
  let redis: Awaited<ReturnType<typeof startRedisServer>>;
  const dirs: string[] = [];
  const running: RunningProcess[] = [];

  const dataDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portico-e2e-'));
    dirs.push(dir);
    return dir;
  };
  const track = (p: RunningProcess) => {
    running.push(p);
    return p;
  };

  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((p) => p.stop('SIGKILL')));
  });
  afterAll(async () => {
    await redis.stop();
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('starts with `npm start`, serves /healthz within 20 s and prints the first admin token once', async () => {
    const port = await freePort();
    const dir = await dataDir();
    const env = { PORTICO_PORT: String(port), PORTICO_DATA_DIR: dir, PORTICO_REDIS_URL: redis.url };
    const first = track(run('npm', ['start', '--silent'], { cwd: REPO_ROOT, env: cleanEnv(env) }));
    const elapsed = await waitForHttp(`http://127.0.0.1:${port}/healthz`, 20_000);
    expect(elapsed).toBeLessThan(20_000);

    const tokens = first.output().match(TOKEN) ?? [];
    expect(tokens).toHaveLength(1);
    const secret = tokens[0]!;
    const me = await fetch(`http://127.0.0.1:${port}/api/v1/me`, { headers: { authorization: `Bearer ${secret}` } });
    expect(await me.json()).toMatchObject({ name: 'admin', role: 'admin' });
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);

    // npm relays the signal to the control plane, which shuts down cleanly.
    await first.stop('SIGTERM');
    await first.waitForOutput('"msg":"stopped"', 10_000);
    expect(first.output().match(TOKEN)).toHaveLength(1);

    // A second start on the same data directory prints nothing and keeps the token.
    const second = track(runControlPlane(env));
    await waitForHttp(`http://127.0.0.1:${port}/healthz`);
    await second.waitForOutput('control plane listening');
    expect(second.output()).not.toMatch(TOKEN);
    const again = await fetch(`http://127.0.0.1:${port}/api/v1/me`, { headers: { authorization: `Bearer ${secret}` } });
    expect(again.status).toBe(200);
    expect(await second.stop('SIGTERM')).toBe(0);
  });

  it('takes the first admin token from PORTICO_ADMIN_TOKEN without printing it', async () => {
    const port = await freePort();
    const secret = `operator-chosen-${randomBytes(24).toString('hex')}`;
    const p = track(runControlPlane({ PORTICO_PORT: String(port), PORTICO_DATA_DIR: await dataDir(), PORTICO_REDIS_URL: redis.url, PORTICO_ADMIN_TOKEN: secret }));
    await p.waitForOutput('control plane listening');
    const me = await fetch(`http://127.0.0.1:${port}/api/v1/me`, { headers: { authorization: `Bearer ${secret}` } });
    expect(me.status).toBe(200);
    expect(p.output()).not.toContain(secret);
    expect(p.output()).not.toMatch(TOKEN);
  });

  it('finishes an in-flight request on SIGTERM, refuses new connections, and exits 0', async () => {
    const port = await freePort();
    const secret = `graceful-${randomBytes(24).toString('hex')}`;
    const p = track(runControlPlane({ PORTICO_PORT: String(port), PORTICO_DATA_DIR: await dataDir(), PORTICO_REDIS_URL: redis.url, PORTICO_ADMIN_TOKEN: secret }));
    await p.waitForOutput('control plane listening');

    // A request whose body is still arriving when the signal comes.
    const body = JSON.stringify({ name: 'made-during-shutdown', role: 'viewer' });
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, method: 'POST', path: '/api/v1/tokens', headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 10));
      setTimeout(() => {
        p.child.kill('SIGTERM');
        setTimeout(() => req.end(body.slice(10)), 500);
      }, 200);
    });
    const result = await response;
    expect(result.status).toBe(201);
    expect(JSON.parse(result.body)).toMatchObject({ token: { name: 'made-during-shutdown' } });
    expect(await p.exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    expect(p.output()).toContain('shutting down');
  });

  it('reports every configuration problem at once, by name, and exits 78', async () => {
    const p = track(runControlPlane({ PORTICO_PORT: 'eighty', PORTICO_LOG_LEVEL: 'loud', PORTICO_DATABASE_URL: 'mysql://x', PORTICO_DATA_DIR: await dataDir() }));
    expect(await p.exited).toBe(78);
    for (const name of ['PORTICO_PORT', 'PORTICO_LOG_LEVEL', 'PORTICO_DATABASE_URL']) expect(p.output()).toContain(name);
  });

  it('exits with a clear message when the Redis it was told to use does not answer', async () => {
    const deadPort = await freePort();
    const p = track(runControlPlane({ PORTICO_PORT: String(await freePort()), PORTICO_DATA_DIR: await dataDir(), PORTICO_REDIS_URL: `redis://127.0.0.1:${deadPort}` }));
    expect(await p.exited).not.toBe(0);
    expect(p.output()).toContain(`127.0.0.1:${deadPort}`);
    expect(p.output()).toContain('PORTICO_ERR_BROKER_UNAVAILABLE');
  });

  it('names the variable to change when the gateway port is taken, and exits non-zero', async () => {
    const taken = createServer();
    const gatewayPort = await freePort();
    await new Promise<void>((resolve) => taken.listen(gatewayPort, '127.0.0.1', resolve));
    try {
      const p = track(
        runControlPlane({ PORTICO_PORT: String(await freePort()), PORTICO_GATEWAY_PORT: String(gatewayPort), PORTICO_DATA_DIR: await dataDir(), PORTICO_REDIS_URL: redis.url }),
      );
      expect(await p.exited).not.toBe(0);
      expect(p.output()).toContain(`127.0.0.1:${gatewayPort} is in use: choose another with PORTICO_GATEWAY_PORT`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('runs on PostgreSQL when PORTICO_DATABASE_URL is a postgres:// URL', async () => {
    const schema = await createTestSchema();
    try {
      const port = await freePort();
      const url = new URL(schema.connectionString);
      url.searchParams.set('options', `-c search_path=${schema.schema}`);
      const secret = `pg-${randomBytes(24).toString('hex')}`;
      const p = track(runControlPlane({ PORTICO_PORT: String(port), PORTICO_DATA_DIR: await dataDir(), PORTICO_REDIS_URL: redis.url, PORTICO_DATABASE_URL: url.toString(), PORTICO_ADMIN_TOKEN: secret }));
      await p.waitForOutput('control plane listening');
      expect(p.output()).toContain('"store":"postgres"');
      const created = await fetch(`http://127.0.0.1:${port}/api/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'in-postgres', role: 'viewer' }),
      });
      expect(created.status).toBe(201);
      const { secret: issued } = (await created.json()) as { secret: string };
      const client = new pg.Client({ connectionString: schema.connectionString });
      await client.connect();
      try {
        const rows = await client.query<{ name: string }>(`select name from "${schema.schema}".tokens order by name`);
        expect(rows.rows.map((r) => r.name)).toEqual(['admin', 'in-postgres']);
      } finally {
        await client.end();
      }
      expect(await p.stop('SIGTERM')).toBe(0);
      expect(p.output()).not.toContain(issued);
      expect(p.output()).not.toContain(secret);
    } finally {
      await schema.drop();
    }
  });
});
