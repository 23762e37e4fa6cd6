import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PorticoError } from '../../src/errors.js';
import { type RegistryBackend, type RegistryEvent } from '../../src/registry/registry-backend.js';
import { type InstanceRegistration, instanceHealth } from '../../src/registry/registry.js';

export interface RegistryBackendFixture {
  backend: RegistryBackend;
  cleanup(): Promise<void>;
}

export interface RegistryContractOptions {
  /**
   * Shortest `deregisterCriticalAfterMs` the backend honours and how long its reaper may lag: real
   * Consul allows no less than a minute and reaps every 30 s.
   */
  deregisterAfterMs?: number;
  reapLagMs?: number;
}

async function eventually<T>(read: () => Promise<T>, accept: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return error instanceof PorticoError ? error.code : String(error);
  }
}

/**
 * What every `RegistryBackend` must do, whatever holds the state. Each test uses its own service
 * names, so backends may share state between tests.
 */
export function describeRegistryBackendContract(name: string, make: () => Promise<RegistryBackendFixture>, options: RegistryContractOptions = {}): void {
  const deregisterAfterMs = options.deregisterAfterMs ?? 300;
  const reapLagMs = options.reapLagMs ?? 1000;

  describe(`${name} (RegistryBackend contract)`, () => {
    let fixture: RegistryBackendFixture;
    let backend: RegistryBackend;
    let service: string;

    const registration = (overrides: Partial<InstanceRegistration> = {}): InstanceRegistration => ({
      id: `${service}-${randomUUID().slice(0, 8)}`,
      service,
      address: '127.0.0.1',
      port: 4000,
      ...overrides,
    });

    beforeEach(async () => {
      fixture = await make();
      backend = fixture.backend;
      service = `svc-${randomUUID().slice(0, 12)}`;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    it('registers an instance and lists it under its service and among the services', async () => {
      const before = (await backend.services()).index;
      const reg = registration({ tags: ['v1', 'blue'], meta: { version: '1.2.3' } });
      const instance = await backend.register(reg, null);
      expect(instance).toMatchObject({ id: reg.id, service, address: '127.0.0.1', port: 4000, tags: ['v1', 'blue'], meta: { version: '1.2.3' } });

      const listed = await backend.instances({ service });
      expect(listed.value.map((i) => i.id)).toEqual([reg.id]);
      const services = await backend.services();
      expect(services.index).toBeGreaterThan(before);
      expect(services.value.find((s) => s.name === service)).toEqual({ name: service, tags: ['blue', 'v1'], instances: { passing: 1, warning: 0, critical: 0 } });
      expect((await backend.instance(reg.id))?.id).toBe(reg.id);
    });

    it('re-registering the same id updates the instance, never duplicates it', async () => {
      const reg = registration();
      const first = await backend.register(reg, null);
      const second = await backend.register({ ...reg, port: 4001, tags: ['v2'] }, null);
      expect(second.createIndex).toBe(first.createIndex);
      expect(second.modifyIndex).toBeGreaterThan(first.modifyIndex);
      const listed = await backend.instances({ service });
      expect(listed.value).toHaveLength(1);
      expect(listed.value[0]).toMatchObject({ port: 4001, tags: ['v2'] });
    });

    it('starts an instance with a check critical, unless registered with an initial status', async () => {
      const critical = await backend.register(registration({ checks: [{ kind: 'ttl', ttlMs: 60_000 }] }), null);
      expect(instanceHealth(critical)).toBe('critical');
      const passing = await backend.register(registration({ checks: [{ kind: 'ttl', ttlMs: 60_000, status: 'passing' }] }), null);
      expect(instanceHealth(passing)).toBe('passing');
      const unchecked = await backend.register(registration(), null);
      expect(instanceHealth(unchecked)).toBe('passing');
    });

    it('lists all instances or only passing ones, and filters by tag', async () => {
      const healthy = await backend.register(registration({ tags: ['a'], checks: [{ kind: 'ttl', ttlMs: 60_000, status: 'passing' }] }), null);
      const sick = await backend.register(registration({ tags: ['b'], checks: [{ kind: 'ttl', ttlMs: 60_000 }] }), null);
      expect((await backend.instances({ service })).value.map((i) => i.id).sort()).toEqual([healthy.id, sick.id].sort());
      expect((await backend.instances({ service, passingOnly: true })).value.map((i) => i.id)).toEqual([healthy.id]);
      expect((await backend.instances({ service, tag: 'b' })).value.map((i) => i.id)).toEqual([sick.id]);
      expect((await backend.instances({ service: `${service}-none` })).value).toEqual([]);
    });

    it('updates health through check results, and says which check is unknown', async () => {
      const instance = await backend.register(registration({ checks: [{ id: `${service}-ttl`, kind: 'ttl', ttlMs: 60_000 }] }), null);
      const passing = await backend.updateCheck(`${service}-ttl`, 'passing', 'all good');
      expect(instanceHealth(passing)).toBe('passing');
      expect(passing.checks[0]).toMatchObject({ status: 'passing', output: 'all good' });
      expect(instanceHealth(await backend.updateCheck(`${service}-ttl`, 'warning', 'slow'))).toBe('warning');
      expect(instanceHealth(await backend.updateCheck(`${service}-ttl`, 'critical', 'down'))).toBe('critical');
      expect((await backend.instances({ service, passingOnly: true })).value).toEqual([]);
      expect(await codeOf(backend.updateCheck(`${service}-nope`, 'passing'))).toBe('PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND');
      expect((await backend.instance(instance.id))?.checks[0]?.output).toBe('down');
    });

    it('gives a check the default id service:<instance id>', async () => {
      const reg = registration({ checks: [{ kind: 'ttl', ttlMs: 60_000 }] });
      await backend.register(reg, null);
      expect(instanceHealth(await backend.updateCheck(`service:${reg.id}`, 'passing'))).toBe('passing');
    });

    it('keeps earned health when an instance re-registers the same check', async () => {
      const reg = registration({ checks: [{ id: `${service}-keep`, kind: 'ttl', ttlMs: 60_000 }] });
      await backend.register(reg, null);
      await backend.updateCheck(`${service}-keep`, 'passing');
      const again = await backend.register({ ...reg, tags: ['re'] }, null);
      expect(instanceHealth(again)).toBe('passing');
    });

    it('turns a TTL check critical when heartbeats stop', async () => {
      const reg = registration({ checks: [{ id: `${service}-beat`, kind: 'ttl', ttlMs: 300, status: 'passing' }] });
      await backend.register(reg, null);
      await backend.updateCheck(`${service}-beat`, 'passing', 'beat');
      const started = Date.now();
      const after = await eventually(() => backend.instance(reg.id), (i) => i !== undefined && instanceHealth(i) === 'critical', 300 + reapLagMs + 1000);
      expect(after !== undefined && instanceHealth(after)).toBe('critical');
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    });

    it('deregisters an instance critical for longer than deregisterCriticalAfter', async () => {
      const reg = registration({ checks: [{ kind: 'ttl', ttlMs: 60_000, deregisterCriticalAfterMs: deregisterAfterMs }] });
      await backend.register(reg, null);
      const gone = await eventually(() => backend.instance(reg.id), (i) => i === undefined, deregisterAfterMs + reapLagMs + 2000);
      expect(gone).toBeUndefined();
    });

    it('deregisters, and says so for an unknown instance', async () => {
      const reg = registration();
      await backend.register(reg, null);
      const removed = await backend.deregister(reg.id);
      expect(removed.id).toBe(reg.id);
      expect(await backend.instance(reg.id)).toBeUndefined();
      expect((await backend.instances({ service })).value).toEqual([]);
      expect((await backend.services()).value.find((s) => s.name === service)).toBeUndefined();
      expect(await codeOf(backend.deregister(reg.id))).toBe('PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND');
    });

    it('takes an instance out of passing reads while in maintenance', async () => {
      const reg = registration();
      await backend.register(reg, null);
      const inMaintenance = await backend.setMaintenance(reg.id, true, 'draining');
      expect(instanceHealth(inMaintenance)).toBe('critical');
      expect(inMaintenance.maintenance?.reason).toBe('draining');
      expect((await backend.instances({ service, passingOnly: true })).value).toEqual([]);
      const back = await backend.setMaintenance(reg.id, false);
      expect(instanceHealth(back)).toBe('passing');
      expect(await codeOf(backend.setMaintenance(`${service}-nope`, true))).toBe('PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND');
    });

    it('moves the index on every change, and never backwards', async () => {
      const reg = registration({ checks: [{ id: `${service}-idx`, kind: 'ttl', ttlMs: 60_000 }] });
      const indexes = [(await backend.instances({ service })).index];
      await backend.register(reg, null);
      indexes.push((await backend.instances({ service })).index);
      await backend.updateCheck(`${service}-idx`, 'passing');
      indexes.push((await backend.instances({ service })).index);
      await backend.setMaintenance(reg.id, true);
      indexes.push((await backend.instances({ service })).index);
      await backend.deregister(reg.id);
      indexes.push((await backend.instances({ service })).index);
      for (let i = 1; i < indexes.length; i++) expect(indexes[i]).toBeGreaterThan(indexes[i - 1]!);
      expect(indexes[0]).toBeGreaterThanOrEqual(1);
    });

    it('watch: returns at the timeout with the same index when nothing changes', async () => {
      await backend.register(registration(), null);
      const { index } = await backend.instances({ service });
      const started = Date.now();
      const after = await backend.waitForChange(index, { service, timeoutMs: 300 });
      expect(after).toBe(index);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    });

    it('watch: returns at once when the index has moved past the one given', async () => {
      await backend.register(registration(), null);
      const { index } = await backend.instances({ service });
      const started = Date.now();
      expect(await backend.waitForChange(index - 1, { service, timeoutMs: 5000 })).toBe(index);
      expect(Date.now() - started).toBeLessThan(1000);
    });

    it('watch: wakes on a change to the watched service, not on another', async () => {
      await backend.register(registration(), null);
      const { index } = await backend.instances({ service });
      const woke = backend.waitForChange(index, { service, timeoutMs: 5000 });
      const other = `${service}-other`;
      await backend.register({ id: `${other}-1`, service: other, address: '127.0.0.1', port: 1 }, null);
      const raced = await Promise.race([woke, new Promise((resolve) => setTimeout(() => resolve('still waiting'), 300))]);
      expect(raced).toBe('still waiting');
      const started = Date.now();
      await backend.register(registration(), null);
      expect(await woke).toBeGreaterThan(index);
      expect(Date.now() - started).toBeLessThan(1000);
    });

    it('tells subscribers of every change in index order, and replays recent changes', async () => {
      const seen: RegistryEvent[] = [];
      const unsubscribe = backend.subscribe((event) => {
        if (event.service === service) seen.push(event);
      });
      try {
        const reg = registration({ checks: [{ id: `${service}-ev`, kind: 'ttl', ttlMs: 60_000 }] });
        const start = (await backend.services()).index;
        await backend.register(reg, null);
        await backend.updateCheck(`${service}-ev`, 'passing');
        await backend.deregister(reg.id);
        const events = await eventually(() => Promise.resolve([...seen]), (list) => list.length >= 3, 2000);
        expect(events.map((e) => e.type)).toEqual(['instance.registered', 'instance.health_changed', 'instance.deregistered']);
        expect(events[1]).toMatchObject({ health: 'passing', previousHealth: 'critical' });
        for (let i = 1; i < events.length; i++) expect(events[i]!.index).toBeGreaterThan(events[i - 1]!.index);
        const replay = backend.eventsSince(start)?.filter((e) => e.service === service);
        expect(replay?.map((e) => e.type)).toEqual(['instance.registered', 'instance.health_changed', 'instance.deregistered']);
      } finally {
        unsubscribe();
      }
    });

    it('refuses checks that probe another host, too often, or without a target', async () => {
      const cases: Array<InstanceRegistration['checks']> = [
        [{ kind: 'http', http: 'http://169.254.169.254/latest/meta-data', intervalMs: 1000 }],
        [{ kind: 'tcp', tcp: '10.1.2.3:22', intervalMs: 1000 }],
        [{ kind: 'http', http: 'http://127.0.0.1:4000/health', intervalMs: 10 }],
        [{ kind: 'http', intervalMs: 1000 }],
        [{ kind: 'ttl' }],
      ];
      for (const checks of cases) {
        const reg = registration({ checks });
        expect(await codeOf(backend.register(reg, null)), JSON.stringify(checks)).toBe('PORTICO_ERR_REGISTRY_INVALID_CHECK');
        expect(await backend.instance(reg.id)).toBeUndefined();
      }
    });
  });
}
