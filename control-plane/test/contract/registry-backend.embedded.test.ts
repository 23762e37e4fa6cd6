import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EmbeddedRegistryBackend } from '../../src/registry/backends/embedded-registry-backend.js';
import { instanceHealth } from '../../src/registry/registry.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { describeRegistryBackendContract } from './registry-backend.contract.js';

async function open(dir: string) {
  const store = new SqliteStore({ filename: join(dir, 'portico.db') });
  await store.start();
  const backend = new EmbeddedRegistryBackend({ store, reapIntervalMs: 50 });
  await backend.start();
  return { store, backend, close: async () => (await backend.close(), await store.close()) };
}

describeRegistryBackendContract('EmbeddedRegistryBackend', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portico-registry-'));
  const { backend, close } = await open(dir);
  return { backend, cleanup: async () => (await close(), await rm(dir, { recursive: true, force: true })) };
});

describe('EmbeddedRegistryBackend', () => {
  it('keeps instances, check states and the index across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portico-registry-'));
    try {
      const first = await open(dir);
      await first.backend.register({ id: 'web-1', service: 'web', address: '127.0.0.1', port: 80, checks: [{ id: 'web-1-ttl', kind: 'ttl', ttlMs: 60_000 }] }, 'token-1');
      await first.backend.updateCheck('web-1-ttl', 'passing', 'ok');
      await first.backend.register({ id: 'web-2', service: 'web', address: '127.0.0.1', port: 81 }, null);
      await first.backend.deregister('web-2');
      const index = (await first.backend.services()).index;
      await first.close();

      const second = await open(dir);
      try {
        const instance = await second.backend.instance('web-1');
        expect(instance).toMatchObject({ service: 'web', registeredBy: 'token-1', checks: [{ id: 'web-1-ttl', status: 'passing' }] });
        expect(instance?.registeredAt).toBeInstanceOf(Date);
        expect(instanceHealth(instance!)).toBe('passing');
        expect(await second.backend.instance('web-2')).toBeUndefined();
        expect((await second.backend.services()).index).toBe(index);
        await second.backend.register({ id: 'web-3', service: 'web', address: '127.0.0.1', port: 82 }, null);
        expect((await second.backend.services()).index).toBe(index + 1);
        // Events from before the restart are gone: a client resuming from an older index must re-read.
        expect(second.backend.eventsSince(index - 1)).toBeUndefined();
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('schedules HTTP and TCP checks, and stops probing one that leaves or becomes a TTL check', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portico-registry-'));
    const store = new SqliteStore({ filename: join(dir, 'portico.db') });
    await store.start();
    const scheduled = new Map<string, string>();
    const backend = new EmbeddedRegistryBackend({
      store,
      createScheduler: () => ({
        schedule: (check) => void scheduled.set(check.id, check.http ?? check.tcp ?? ''),
        unschedule: (id) => void scheduled.delete(id),
        close: () => Promise.resolve(),
      }),
    });
    await backend.start();
    try {
      const base = { id: 'p-1', service: 'p', address: '127.0.0.1', port: 8080 };
      await backend.register({ ...base, checks: [{ id: 'p-http', kind: 'http', http: 'http://127.0.0.1:8080/health', intervalMs: 1000 }, { id: 'p-tcp', kind: 'tcp', tcp: '127.0.0.1:8080', intervalMs: 1000 }] }, null);
      expect([...scheduled.keys()].sort()).toEqual(['p-http', 'p-tcp']);
      await backend.register({ ...base, checks: [{ id: 'p-http', kind: 'ttl', ttlMs: 1000 }] }, null);
      expect([...scheduled.keys()]).toEqual([]);
      await backend.register({ ...base, checks: [{ id: 'p-http', kind: 'http', http: 'http://localhost:9090/ready', intervalMs: 1000 }] }, null);
      expect(scheduled.get('p-http')).toBe('http://localhost:9090/ready');
      await backend.deregister('p-1');
      expect(scheduled.size).toBe(0);
    } finally {
      await backend.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('changes nothing when the store refuses the write', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portico-registry-'));
    try {
      const { store, backend, close } = await open(dir);
      await backend.register({ id: 'a-1', service: 'a', address: '127.0.0.1', port: 1 }, null);
      const index = (await backend.services()).index;
      await store.close();
      await expect(backend.register({ id: 'a-2', service: 'a', address: '127.0.0.1', port: 2 }, null)).rejects.toMatchObject({ code: 'PORTICO_ERR_STORE_UNAVAILABLE' });
      expect(await backend.instance('a-2')).toBeUndefined();
      expect((await backend.services()).index).toBe(index);
      await close().catch(() => undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
