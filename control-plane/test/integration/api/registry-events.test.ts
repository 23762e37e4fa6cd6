import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../../src/api/app.js';
import { installAuth } from '../../../src/api/auth.js';
import { installErrorHandling } from '../../../src/api/error-handler.js';
import { registryEventRoutes } from '../../../src/api/routes/registry-events.js';
import { registryRoutes } from '../../../src/api/routes/registry.js';
import { ErrorResponse } from '../../../src/api/schemas/common.js';
import { createValidatorCompiler } from '../../../src/api/validation.js';
import { SYSTEM_PRINCIPAL, TokenService } from '../../../src/auth/token-service.js';
import { EmbeddedRegistryBackend } from '../../../src/registry/backends/embedded-registry-backend.js';
import { type RegistryEvent } from '../../../src/registry/registry-backend.js';
import { RegistryService } from '../../../src/registry/registry-service.js';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import { createLogger } from '../../../src/telemetry/logger.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { openSse, type SseMessage, type SseStream } from '../../support/sse-client.js';
import { bearer, createTestApp, useListeningTestApp } from '../../support/test-app.js';

interface EventJson {
  index: number;
  at: string;
  service: string;
  instanceId: string;
  health?: string;
  previousHealth?: string;
  reason?: string;
  instance?: { id: string; port: number; health: string };
}

interface SnapshotJson {
  index: number;
  services: Array<{ name: string; instances: Array<{ id: string; port: number }> }>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves with `promise`, or rejects once `ms` have passed. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function data<T = EventJson>(message: SseMessage | undefined): T {
  expect(message?.data).toBeDefined();
  return JSON.parse(message!.data!) as T;
}

/** The events of one service from a stream, in order, until `count` have arrived. */
async function eventsOf(stream: SseStream, service: string, count: number): Promise<SseMessage[]> {
  const found: SseMessage[] = [];
  while (found.length < count) {
    const message = await stream.nextEvent(3_000);
    if (message === undefined) throw new Error(`the stream ended after ${found.length} of ${count} events`);
    if (message.event === 'reset' || data(message).service === service) found.push(message);
  }
  return found;
}

/** Counts the backend's live subscriptions, to see streams release theirs. */
function countSubscriptions(registry: EmbeddedRegistryBackend): { active: () => number; restore: () => void } {
  const original = registry.subscribe.bind(registry);
  let active = 0;
  const spy = vi.spyOn(registry, 'subscribe').mockImplementation((listener: (event: RegistryEvent) => void) => {
    active++;
    const unsubscribe = original(listener);
    let done = false;
    return () => {
      if (!done) active--;
      done = true;
      unsubscribe();
    };
  });
  return { active: () => active, restore: () => spy.mockRestore() };
}

describe('GET /api/v1/events (Server-Sent Events over a real socket)', () => {
  const { t, base: baseUrl } = useListeningTestApp();

  const auth = () => bearer(t.adminToken);
  const inject = (method: 'PUT' | 'DELETE', url: string, payload?: object) => t.app.inject({ method, url, headers: auth(), ...(payload === undefined ? {} : { payload }) });

  /** register, heartbeat (health change), re-register (update), deregister: four events for `service`. */
  async function lifecycle(service: string): Promise<void> {
    const id = `${service}-1`;
    expect((await inject('PUT', `/api/v1/instances/${id}`, { service, address: '127.0.0.1', port: 4001, checks: [{ kind: 'ttl', ttl: '1m' }] })).statusCode).toBe(201);
    expect((await inject('PUT', `/api/v1/instances/${id}/health`, { status: 'passing' })).statusCode).toBe(200);
    expect((await inject('PUT', `/api/v1/instances/${id}`, { service, address: '127.0.0.1', port: 4002, checks: [{ kind: 'ttl', ttl: '1m' }] })).statusCode).toBe(200);
    expect((await inject('DELETE', `/api/v1/instances/${id}`)).statusCode).toBe(204);
  }

  it('streams changes in order, each with its index as the id', async () => {
    const stream = await openSse(`${baseUrl()}/api/v1/events`, auth());
    try {
      expect(stream.response.status).toBe(200);
      expect(stream.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(stream.response.headers.get('cache-control')).toBe('no-cache');
      const service = `svc-${randomUUID()}`;
      await lifecycle(service);
      const events = await eventsOf(stream, service, 4);
      expect(events.map((e) => e.event)).toEqual(['instance.registered', 'instance.health_changed', 'instance.updated', 'instance.deregistered']);
      const ids = events.map((e) => Number(e.id));
      expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);
      events.forEach((e) => expect(data(e).index).toBe(Number(e.id)));
      const [registered, changed, updated, deregistered] = events.map((e) => data(e));
      expect(registered).toMatchObject({ service, instanceId: `${service}-1`, health: 'critical', instance: { id: `${service}-1`, port: 4001 } });
      expect(Date.parse(registered!.at)).not.toBeNaN();
      expect(changed).toMatchObject({ health: 'passing', previousHealth: 'critical', instance: { health: 'passing' } });
      expect(updated).toMatchObject({ health: 'passing', instance: { port: 4002 } });
      expect(deregistered).toEqual({ index: ids[3], at: expect.any(String), service, instanceId: `${service}-1`, reason: 'api' });
    } finally {
      stream.close();
    }
  });

  it('replays exactly the missed changes to a client that reconnects with Last-Event-ID, then goes live', async () => {
    const service = `svc-${randomUUID()}`;
    const first = await openSse(`${baseUrl()}/api/v1/events`, auth());
    await inject('PUT', `/api/v1/instances/${service}-a`, { service, address: '127.0.0.1', port: 4001 });
    const [seen] = await eventsOf(first, service, 1);
    first.close();

    await inject('PUT', `/api/v1/instances/${service}-b`, { service, address: '127.0.0.1', port: 4002 });
    await inject('PUT', `/api/v1/instances/${service}-a/maintenance`, { enabled: true, reason: 'x' });
    await inject('DELETE', `/api/v1/instances/${service}-b`);
    const missedIndexes = [...Array(3).keys()].map((i) => Number(seen!.id) + 1 + i);
    expect((await t.registry.services()).index).toBe(missedIndexes[2]);

    const again = await openSse(`${baseUrl()}/api/v1/events`, { ...auth(), 'last-event-id': seen!.id! });
    try {
      const replayed = [await again.nextEvent(), await again.nextEvent(), await again.nextEvent()];
      expect(replayed.map((e) => Number(e?.id))).toEqual(missedIndexes);
      expect(replayed.map((e) => e?.event)).toEqual(['instance.registered', 'instance.health_changed', 'instance.deregistered']);
      expect(replayed.map((e) => data(e).instanceId)).toEqual([`${service}-b`, `${service}-a`, `${service}-b`]);
      // Nothing else was replayed: the next event is a live one.
      await inject('DELETE', `/api/v1/instances/${service}-a`);
      const live = await again.nextEvent();
      expect(live).toMatchObject({ event: 'instance.deregistered', id: String(missedIndexes[2]! + 1) });
    } finally {
      again.close();
    }
  });

  it('resumes from ?since= too, with Last-Event-ID taking precedence', async () => {
    const service = `svc-${randomUUID()}`;
    const start = (await t.registry.services()).index;
    await inject('PUT', `/api/v1/instances/${service}-1`, { service, address: '127.0.0.1', port: 4001 });
    await inject('PUT', `/api/v1/instances/${service}-2`, { service, address: '127.0.0.1', port: 4002 });
    const since = await openSse(`${baseUrl()}/api/v1/events?since=${start}`, auth());
    const both = await openSse(`${baseUrl()}/api/v1/events?since=${start}`, { ...auth(), 'last-event-id': String(start + 1) });
    try {
      expect([await since.nextEvent(), await since.nextEvent()].map((e) => data(e).instanceId)).toEqual([`${service}-1`, `${service}-2`]);
      expect(data(await both.nextEvent()).instanceId).toBe(`${service}-2`);
    } finally {
      since.close();
      both.close();
    }
    for (const id of ['1', '2']) await inject('DELETE', `/api/v1/instances/${service}-${id}`);
  });

  it('sends one reset with the whole registry when the missed changes are no longer held, then live events', async () => {
    const service = `svc-${randomUUID()}`;
    await inject('PUT', `/api/v1/instances/${service}-1`, { service, address: '127.0.0.1', port: 4001 });
    // 0 is older than anything the control plane holds since it started; an id ahead of the registry's
    // index means the registry was reset. Either way the client must start over.
    for (const ahead of [false, true]) {
      const index = (await t.registry.services()).index;
      const lastEventId = ahead ? String(index + 1000) : '0';
      const stream = await openSse(`${baseUrl()}/api/v1/events`, { ...auth(), 'last-event-id': lastEventId });
      try {
        const reset = await stream.nextEvent();
        expect(reset?.event).toBe('reset');
        const snapshot = data<SnapshotJson>(reset);
        expect(reset?.id).toBe(String(snapshot.index));
        expect(snapshot.index).toBe(index);
        expect(snapshot.services.find((s) => s.name === service)).toEqual({ name: service, instances: [expect.objectContaining({ id: `${service}-1`, port: 4001 })] });
        await inject('DELETE', `/api/v1/instances/${service}-1`);
        const live = await stream.nextEvent();
        expect(live).toMatchObject({ event: 'instance.deregistered', id: String(index + 1) });
        await inject('PUT', `/api/v1/instances/${service}-1`, { service, address: '127.0.0.1', port: 4001 });
        expect((await stream.nextEvent())?.event).toBe('instance.registered');
      } finally {
        stream.close();
      }
    }
  });

  it('sends a change made while the replay or snapshot is read once, not twice', async () => {
    const service = `svc-${randomUUID()}`;
    const original = t.registry.services.bind(t.registry);
    // The change lands between the subscription and the read of what was missed: it reaches the stream
    // both as a live event and in the replay (or the snapshot).
    const changeDuringRead = (n: number) =>
      vi.spyOn(t.registry, 'services').mockImplementationOnce(async () => {
        await t.registry.register({ id: `${service}-${n}`, service, address: '127.0.0.1', port: 4000 + n }, null);
        return original();
      });

    const since = (await t.registry.services()).index;
    const spy = changeDuringRead(1);
    const replaying = await openSse(`${baseUrl()}/api/v1/events?since=${since}`, auth());
    spy.mockRestore();
    try {
      expect(await replaying.nextEvent()).toMatchObject({ event: 'instance.registered', id: String(since + 1) });
      await inject('DELETE', `/api/v1/instances/${service}-1`);
      expect(await replaying.nextEvent()).toMatchObject({ event: 'instance.deregistered', id: String(since + 2) });
    } finally {
      replaying.close();
    }

    const again = changeDuringRead(2);
    const resetting = await openSse(`${baseUrl()}/api/v1/events?since=0`, auth());
    again.mockRestore();
    try {
      const reset = await resetting.nextEvent();
      expect(reset).toMatchObject({ event: 'reset', id: String(since + 3) });
      expect(data<SnapshotJson>(reset).services.find((s) => s.name === service)?.instances).toEqual([expect.objectContaining({ id: `${service}-2` })]);
      await inject('DELETE', `/api/v1/instances/${service}-2`);
      expect(await resetting.nextEvent()).toMatchObject({ event: 'instance.deregistered', id: String(since + 4) });
    } finally {
      resetting.close();
    }
  });

  it('refuses a client without a valid token, and a malformed Last-Event-ID', async () => {
    const none = await fetch(`${baseUrl()}/api/v1/events`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { code: string }).code).toBe('PORTICO_ERR_AUTH_MISSING_TOKEN');
    const wrong = await fetch(`${baseUrl()}/api/v1/events`, { headers: bearer('ptc_nope') });
    expect(wrong.status).toBe(401);
    await wrong.body?.cancel();
    const bad = await fetch(`${baseUrl()}/api/v1/events`, { headers: { ...auth(), 'last-event-id': 'abc' } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/headers\/last-event-id/);
    const viewer = await openSse(`${baseUrl()}/api/v1/events`, bearer(await t.tokenFor('viewer')));
    expect(viewer.response.status).toBe(200);
    viewer.close();
  });

  it('releases its subscription when the client disconnects', async () => {
    const subscriptions = countSubscriptions(t.registry);
    try {
      const streams = await Promise.all([openSse(`${baseUrl()}/api/v1/events`, auth()), openSse(`${baseUrl()}/api/v1/events?since=0`, auth())]);
      expect(subscriptions.active()).toBe(2);
      for (const stream of streams) stream.close();
      await until(() => subscriptions.active() === 0, 2_000, 'the subscriptions to be released');
    } finally {
      subscriptions.restore();
    }
  });

  it('does not hold up app.close(): open streams end and their subscriptions go', async () => {
    const own = await createTestApp({ redisUrl: t.redisUrl });
    const subscriptions = countSubscriptions(own.registry);
    const url = await own.app.listen({ port: 0, host: '127.0.0.1' });
    const stream = await openSse(`${url}/api/v1/events`, bearer(own.adminToken));
    expect(stream.response.status).toBe(200);
    expect((await stream.next())?.comments).toEqual(['connected']);
    const started = Date.now();
    await within(3_000, own.app.close(), 'app.close() with an SSE stream open');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await stream.next(2_000)).toBeUndefined();
    expect(subscriptions.active()).toBe(0);
    subscriptions.restore();
    await own.close();
  });
});

describe('the event stream across a control-plane restart, and its keep-alive', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-sse-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The real app over a store in `dir`, without Redis (readiness is not under test here). */
  async function start(store: SqliteStore) {
    const registry = new EmbeddedRegistryBackend({ store, reapIntervalMs: 50 });
    await registry.start();
    const app = await buildApp({ store, registry, broker: { ping: async () => {} }, metrics: new Metrics({ defaultMetrics: false }), logger: createLogger({ level: 'silent' }) });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { registry, app, url, close: async () => (await app.close(), await registry.close()) };
  }

  it('replays across a restart what the new process holds, and sends a reset when it missed more', async () => {
    const store = new SqliteStore({ filename: join(dir, 'restart.db') });
    await store.start();
    const secret = (await new TokenService(store).create(SYSTEM_PRINCIPAL, { name: 'admin-sse', role: 'admin' })).secret;
    const service = `svc-${randomUUID()}`;
    const put = (app: FastifyInstance, n: number) =>
      app.inject({ method: 'PUT', url: `/api/v1/instances/${service}-${n}`, headers: bearer(secret), payload: { service, address: `10.0.0.${n}`, port: 80 } });
    let upToDate: string;
    let behind: string;
    const before = await start(store);
    try {
      const stream = await openSse(`${before.url}/api/v1/events`, bearer(secret));
      await put(before.app, 1);
      behind = (await stream.nextEvent())!.id!;
      // One client stops here; the other sees one more change, the last before the restart.
      await put(before.app, 2);
      upToDate = (await stream.nextEvent())!.id!;
      stream.close();
    } finally {
      await before.close();
    }

    const after = await start(store);
    try {
      await put(after.app, 3);
      const current = await openSse(`${after.url}/api/v1/events`, { ...bearer(secret), 'last-event-id': upToDate });
      const stale = await openSse(`${after.url}/api/v1/events`, { ...bearer(secret), 'last-event-id': behind });
      try {
        // Nothing was lost for this one: the new process holds every change after its start.
        expect(await current.nextEvent()).toMatchObject({ event: 'instance.registered', id: String(Number(upToDate) + 1) });

        const reset = await stale.nextEvent();
        expect(reset?.event).toBe('reset');
        const snapshot = data<SnapshotJson>(reset);
        expect(reset?.id).toBe(String(snapshot.index));
        expect(snapshot.index).toBe(Number(upToDate) + 1);
        expect(snapshot.services).toEqual([
          { name: service, instances: [1, 2, 3].map((n): unknown => expect.objectContaining({ id: `${service}-${n}`, address: `10.0.0.${n}` })) },
        ]);
        // Then live events, and nothing twice.
        await after.app.inject({ method: 'DELETE', url: `/api/v1/instances/${service}-1`, headers: bearer(secret) });
        expect(await stale.nextEvent()).toMatchObject({ event: 'instance.deregistered', id: String(snapshot.index + 1) });
        expect(await current.nextEvent()).toMatchObject({ event: 'instance.deregistered', id: String(snapshot.index + 1) });
      } finally {
        current.close();
        stale.close();
      }
    } finally {
      await after.close();
      await store.close();
    }
  });

  it('sends a keep-alive comment on a quiet stream', async () => {
    const store = new SqliteStore({ filename: join(dir, 'keep-alive.db') });
    await store.start();
    const tokens = new TokenService(store);
    const secret = (await tokens.create(SYSTEM_PRINCIPAL, { name: 'viewer-sse', role: 'viewer' })).secret;
    const registry = new EmbeddedRegistryBackend({ store });
    await registry.start();
    // The routes alone, with a short keep-alive: the app's own is 15 s.
    const app: FastifyInstance = Fastify().withTypeProvider<TypeBoxTypeProvider>();
    app.setValidatorCompiler(createValidatorCompiler());
    installErrorHandling(app, { bodyLimit: 1024 });
    app.addSchema(ErrorResponse);
    await app.register(
      async (api) => {
        installAuth(api, tokens);
        await api.register(registryRoutes, { registry: new RegistryService(registry), keepAliveMs: 100 });
      },
      { prefix: '/api/v1' },
    );
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const stream = await openSse(`${url}/api/v1/events`, bearer(secret));
    try {
      expect((await stream.next())?.comments).toEqual(['connected']);
      const started = Date.now();
      const comments = [await stream.next(1_000), await stream.next(1_000)];
      expect(comments.map((m) => m?.comments)).toEqual([['heartbeat'], ['heartbeat']]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    } finally {
      stream.close();
      await app.close();
      await registry.close();
      await store.close();
    }
  });

  it('closes the stream of a client that stops reading, instead of queueing for it without bound', async () => {
    const store = new SqliteStore({ filename: join(dir, 'slow.db') });
    await store.start();
    const tokens = new TokenService(store);
    const secret = (await tokens.create(SYSTEM_PRINCIPAL, { name: 'viewer-slow', role: 'viewer' })).secret;
    const registry = new EmbeddedRegistryBackend({ store });
    await registry.start();
    const subscriptions = countSubscriptions(registry);
    const warnings: string[] = [];
    const logger: FastifyBaseLogger = createLogger({ level: 'warn', destination: { write: (line: string) => void warnings.push(line) } });
    const app: FastifyInstance = Fastify({ loggerInstance: logger }).withTypeProvider<TypeBoxTypeProvider>();
    app.setValidatorCompiler(createValidatorCompiler());
    installErrorHandling(app, { bodyLimit: 1024 });
    app.addSchema(ErrorResponse);
    await app.register(
      async (api) => {
        installAuth(api, tokens);
        await api.register(registryEventRoutes, { backend: registry, maxQueuedEvents: 5 });
      },
      { prefix: '/api/v1' },
    );
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    // A client that reads the headers and then nothing: once the socket's buffers are full, events queue.
    const stream = await openSse(`${url}/api/v1/events`, bearer(secret));
    try {
      expect(stream.response.status).toBe(200);
      const meta = Object.fromEntries([...Array(64).keys()].map((i) => [`k${i}`, 'x'.repeat(512)]));
      const service = `svc-${randomUUID()}`;
      for (let i = 0; i < 2_000 && subscriptions.active() > 0; i++) {
        await registry.register({ id: `${service}-${i}`, service, address: '127.0.0.1', port: 1, meta }, null);
      }
      expect(subscriptions.active()).toBe(0);
      expect(warnings.join('')).toMatch(/fell behind/);
    } finally {
      stream.close();
      subscriptions.restore();
      await app.close();
      await registry.close();
      await store.close();
    }
  });
});
