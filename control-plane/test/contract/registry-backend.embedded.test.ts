import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EmbeddedRegistryBackend } from '../../src/registry/backends/embedded-registry-backend.js';
import { instanceHealth } from '../../src/registry/registry.js';
import { type ChangeOptions, type RegistryEvent } from '../../src/registry/registry-backend.js';
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

  it('writes a burst of changes in a few transactions, each with its audit entry, in index order', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portico-registry-'));
    try {
      const { store, backend, close } = await open(dir);
      let transactions = 0;
      const transaction = store.transaction.bind(store);
      store.transaction = (work) => ((transactions += 1), transaction(work));
      const events: RegistryEvent[] = [];
      backend.subscribe((event) => events.push(event));
      const audit: ChangeOptions['audit'] = ({ previous, instance }) => ({
        actorId: null,
        actorName: 'test',
        action: previous === undefined ? 'instance.register' : 'instance.update',
        target: `instance:${instance.id}`,
      });

      const burst = await Promise.all(
        Array.from({ length: 200 }, (_, i) => backend.register({ id: `b-${i}`, service: `s-${i % 7}`, address: '127.0.0.1', port: 1000 + i }, null, { audit })),
      );

      expect(transactions).toBeGreaterThan(0);
      expect(transactions).toBeLessThan(20);
      const indexes = burst.map((instance) => instance.modifyIndex);
      expect(new Set(indexes).size).toBe(200);
      expect(events.map((event) => event.index)).toEqual([...indexes].sort((a, b) => a - b));
      expect(events.map((event) => event.type)).toEqual(Array(200).fill('instance.registered'));
      const entries = await store.audit.list({ limit: 500, action: 'instance.register' });
      expect(entries.map((entry) => entry.target).sort()).toEqual(burst.map((instance) => `instance:${instance.id}`).sort());
      await close();

      const reopened = await open(dir);
      const loaded = await Promise.all(Array.from({ length: 7 }, (_, i) => reopened.backend.instances({ service: `s-${i}` })));
      expect(loaded.flatMap((read) => read.value.map((instance) => instance.id)).sort()).toEqual(burst.map((instance) => instance.id).sort());
      expect((await reopened.backend.services()).index).toBe(Math.max(...indexes));
      await reopened.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('plans each change of a group against the ones before it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portico-registry-'));
    try {
      const { backend, close } = await open(dir);
      const events: RegistryEvent[] = [];
      backend.subscribe((event) => events.push(event));
      const check = { id: 'shared-check', kind: 'ttl' as const, ttlMs: 60_000 };
      // Asked in one turn of the event loop, so written as one group.
      const [first, taken, gone, again] = await Promise.allSettled([
        backend.register({ id: 'g-1', service: 'g', address: '127.0.0.1', port: 1, checks: [check] }, null),
        backend.register({ id: 'g-2', service: 'g', address: '127.0.0.1', port: 2, checks: [check] }, null),
        backend.deregister('g-1'),
        backend.register({ id: 'g-3', service: 'g', address: '127.0.0.1', port: 3, checks: [check] }, null),
      ]);
      expect(first.status).toBe('fulfilled');
      expect(taken).toMatchObject({ status: 'rejected', reason: { code: 'PORTICO_ERR_REGISTRY_CHECK_ID_TAKEN' } });
      expect(gone.status).toBe('fulfilled');
      // Once g-1 has left, its check id is free again within the same group.
      expect(again.status).toBe('fulfilled');
      expect(events.map((event) => [event.type, event.instanceId])).toEqual([
        ['instance.registered', 'g-1'],
        ['instance.deregistered', 'g-1'],
        ['instance.registered', 'g-3'],
      ]);
      expect((await backend.instances({ service: 'g' })).value.map((instance) => instance.id)).toEqual(['g-3']);
      expect((await backend.instanceOfCheck('shared-check'))?.id).toBe('g-3');
      await close();

      const reopened = await open(dir);
      expect((await reopened.backend.instances({ service: 'g' })).value.map((instance) => instance.id)).toEqual(['g-3']);
      await reopened.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails every change of a group the store refuses, writing none of their audit entries, and goes on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portico-registry-'));
    try {
      const { store, backend, close } = await open(dir);
      await backend.register({ id: 'f-1', service: 'f', address: '127.0.0.1', port: 1 }, null);
      const index = (await backend.services()).index;
      const transaction = store.transaction.bind(store);
      store.transaction = (work) =>
        transaction(async (session) => {
          await work(session);
          throw new Error('disk full');
        });
      const events: RegistryEvent[] = [];
      backend.subscribe((event) => events.push(event));
      const audit: ChangeOptions['audit'] = ({ instance }) => ({ actorId: null, actorName: 'test', action: 'test.refused', target: `instance:${instance.id}` });
      const refused = await Promise.allSettled([
        backend.register({ id: 'f-2', service: 'f', address: '127.0.0.1', port: 2 }, null, { audit }),
        backend.setMaintenance('f-1', true, 'drain', { audit }),
      ]);
      expect(refused.map((result) => result.status)).toEqual(['rejected', 'rejected']);
      expect(await backend.instance('f-2')).toBeUndefined();
      expect((await backend.instance('f-1'))?.maintenance).toBeNull();
      expect((await backend.services()).index).toBe(index);
      expect(events).toEqual([]);
      expect(await store.audit.list({ limit: 10, action: 'test.refused' })).toEqual([]);

      store.transaction = transaction;
      const after = await backend.register({ id: 'f-2', service: 'f', address: '127.0.0.1', port: 2 }, null, { audit });
      expect(after.modifyIndex).toBe(index + 1);
      expect(await store.audit.list({ limit: 10, action: 'test.refused' })).toHaveLength(1);
      await close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
