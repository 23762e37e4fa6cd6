import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer } from '../../support/redis-server.js';
import { createTestApp, type TestApp } from '../../support/test-app.js';
import { uniqueName } from './consul-support.js';

// Debian's python3-consul is installed for the system interpreter only, not the `python3` on PATH.
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./python-consul-client.py', import.meta.url));

interface Summary {
  registered: boolean;
  agent_services: Record<string, unknown>;
  status_before_pass: string[];
  passing_before_pass: number;
  tokenless: { ttl_pass: string; services: string };
  ttl_pass: boolean;
  passing_after_pass: Array<{ node: string; id: string; address: string; port: number; tags: string[]; checks: Record<string, [string, string]> }>;
  catalog: Array<Record<string, unknown>>;
  catalog_by_tag: [number, number];
  catalog_services: string[];
  blocking: { index_before: number; index_after: number; seconds: number; status: string[] };
  maintenance: boolean;
  maintenance_checks: Array<[string, string, string]>;
  deregistered: boolean;
  after_deregister: number;
  datacenter: string;
  leader: string;
}

describe('a third-party Consul client (python-consul) against Portico', () => {
  let redis: Awaited<ReturnType<typeof startRedisServer>>;
  let t: TestApp;
  let port: number;

  beforeAll(async () => {
    await access(PYTHON);
    redis = await startRedisServer();
    t = await createTestApp({ redisUrl: redis.url });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await t.close();
    await redis.stop();
  });

  it('registers, heartbeats, discovers, blocks, and deregisters with an agent token', async () => {
    const name = uniqueName('py');
    const agent = await t.tokenFor('agent', [name]);
    // The client reads CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN; none may leak in from the environment.
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('CONSUL_')));
    const { stdout } = await promisify(execFile)(PYTHON, [SCRIPT, '127.0.0.1', String(port), agent, name], { env, timeout: 20_000 });
    const summary = JSON.parse(stdout) as Summary;
    const id = `${name}-1`;
    const checkId = `service:${id}`;
    const self = await t.app.inject({ method: 'GET', url: '/v1/agent/self', headers: { 'x-consul-token': agent } });
    const nodeName = self.json<{ Config: { NodeName: string } }>().Config.NodeName;

    expect(summary.registered).toBe(true);
    expect(summary.agent_services).toMatchObject({ ID: id, Service: name, Address: '127.0.0.1', Port: 8080, Tags: ['v1', 'python'] });
    expect(summary.status_before_pass).toEqual(['critical']);
    expect(summary.passing_before_pass).toBe(0);
    expect(summary.tokenless).toEqual({ ttl_pass: expect.stringMatching(/^refused: ACL not found/), services: expect.stringMatching(/^refused: ACL not found/) });
    expect(summary.ttl_pass).toBe(true);
    expect(summary.passing_after_pass).toEqual([
      {
        node: nodeName,
        id,
        address: '127.0.0.1',
        port: 8080,
        tags: ['v1', 'python'],
        checks: { [checkId]: ['passing', 'all good'], serfHealth: ['passing', 'Agent alive and reachable'] },
      },
    ]);
    expect(summary.catalog).toEqual([{ ServiceID: id, ServiceName: name, ServiceAddress: '127.0.0.1', ServicePort: 8080, ServiceTags: ['v1', 'python'] }]);
    expect(summary.catalog_by_tag).toEqual([1, 0]);
    expect(summary.catalog_services).toEqual(['python', 'v1']);

    expect(summary.blocking.index_after).toBeGreaterThan(summary.blocking.index_before);
    expect(summary.blocking.status).toEqual(['warning']);
    expect(summary.blocking.seconds).toBeGreaterThanOrEqual(0.25);
    expect(summary.blocking.seconds).toBeLessThan(3);

    expect(summary.maintenance).toBe(true);
    expect(summary.maintenance_checks).toEqual([[`_service_maintenance:${id}`, 'critical', 'python upgrade']]);
    expect(summary.deregistered).toBe(true);
    expect(summary.after_deregister).toBe(0);
    expect(await t.registry.instance(id)).toBeUndefined();
    expect(summary.datacenter).toBe('dc1');
    expect(summary.leader).toBe('127.0.0.1:8300');

    // The token travelled as ?token= on most calls; it must not be in the log.
    expect(t.logLines.join('')).not.toContain(agent);
  });
});
