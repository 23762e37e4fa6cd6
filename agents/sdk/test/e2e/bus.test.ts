import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type DeadLetter, deadLetterQueue, type Envelope, ensureBusTables, type MessageBus, serviceQueue, StaticTopology, type TopologySource } from '../../src/bus/index.js';
import { cuttingProxy, queueHandle, useTestResources, waitUntil } from '../support/bus.js';

/** Each test's own Redis, buses and databases, closed after it. */
const resources = useTestResources();
const { redis, database, bus } = resources;

/** The seeds' three services under names of this test's own, and the event they all consume. */
function seedNames() {
  const suffix = randomUUID().slice(0, 8);
  return {
    inventory: `inventory-${suffix}`,
    catalog: `catalog-${suffix}`,
    user: `user-${suffix}`,
    availabilityChanged: 'product.availability_changed',
  };
}

describe('MessageBus: choreography and orchestration', () => {
  for (const dialect of [undefined, 'sqlite', 'postgres'] as const) {
    it(`delivers an event to every subscriber (the publisher too) and a command to one service ${dialect === undefined ? 'straight to Redis' : `through the outbox and the inbox on ${dialect}`}`, async () => {
      const server = await redis();
      const names = seedNames();
      const topology = new StaticTopology();
      const received: Record<string, Envelope[]> = { [names.inventory]: [], [names.catalog]: [], [names.user]: [] };
      const buses: Record<string, MessageBus> = {};
      for (const service of [names.inventory, names.catalog, names.user]) {
        const own = dialect === undefined ? undefined : (await database(service, undefined, dialect)).db;
        const b = bus({ service, redis: server.url, topology, ...(own === undefined ? {} : { database: own }) });
        b.on(names.availabilityChanged, (message) => void received[service]?.push(message));
        if (service === names.catalog) b.on('sku_set_availability', (message) => void received[service]?.push(message));
        if (service === names.user) b.on('sku_update_wishlist', (message) => void received[service]?.push(message));
        await b.start();
        buses[service] = b;
      }
      const inventory = buses[names.inventory] as MessageBus;

      const event = await inventory.publish(names.availabilityChanged, { sku: 'sku-1', available: true });
      const setAvailability = await inventory.send(names.catalog, 'sku_set_availability', { sku: 'sku-1', available: true });
      const updateWishlist = await inventory.send(names.user, 'sku_update_wishlist', { sku: 'sku-1' });

      await waitUntil('every delivery', () => Object.values(received).reduce((n, list) => n + list.length, 0) === 5);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const ids = (service: string) => (received[service] ?? []).map((message) => message.id).sort();
      expect(ids(names.inventory)).toEqual([event.id]);
      expect(ids(names.catalog)).toEqual([event.id, setAvailability.id].sort());
      expect(ids(names.user)).toEqual([event.id, updateWishlist.id].sort());
      const delivered = received[names.catalog]?.find((message) => message.id === event.id);
      expect(delivered).toMatchObject({ kind: 'event', type: names.availabilityChanged, source: names.inventory, schemaVersion: 1, payload: { sku: 'sku-1', available: true } });
      expect(received[names.user]?.find((message) => message.id === updateWishlist.id)).toMatchObject({ kind: 'command', type: 'sku_update_wishlist', source: names.inventory });

      // The job id is the message id: sending the same envelope again adds nothing.
      const queue = queueHandle(serviceQueue(names.catalog), server.url);
      resources.add(() => queue.close());
      const job = await queue.getJob(event.id);
      expect(job?.name).toBe(names.availabilityChanged);
      expect(job?.data).toEqual(event);
    });
  }

  it('adds an event to every subscriber queue or to none: a connection cut after two of its three adds leaves it in no queue', async () => {
    const server = await redis();
    const proxy = await cuttingProxy(server.port);
    resources.add(() => proxy.close());
    const names = seedNames();
    // Three subscribers without a bus of their own here, so what is added stays waiting.
    const subscribers = [names.catalog, names.user, `search-${names.user}`];
    const topology = new StaticTopology({ [names.availabilityChanged]: subscribers });
    const inventory = bus({ service: names.inventory, redis: proxy.url, topology });
    await inventory.start();
    await inventory.publish(names.availabilityChanged, { sku: 'sku-1' });
    const before = proxy.sent;
    await inventory.publish(names.availabilityChanged, { sku: 'sku-2' });
    // One publish is MULTI, three adds of about the same size, EXEC: 85 % of it is inside the third add.
    proxy.cutAfter(Math.floor((proxy.sent - before) * 0.85));
    await expect(inventory.publish(names.availabilityChanged, { sku: 'sku-3' })).rejects.toMatchObject({ code: 'PORTICO_ERR_BUS_UNAVAILABLE' });
    for (const service of subscribers) {
      const queue = queueHandle(serviceQueue(service), server.url);
      resources.add(() => queue.close());
      const jobs = await queue.getJobs(['waiting']);
      expect(jobs.map((job) => (job.data as Envelope<{ sku: string }>).payload.sku).sort(), service).toEqual(['sku-1', 'sku-2']);
    }
  });

  it('shares one PostgreSQL outbox between the relays of two replicas: each message is sent once', async () => {
    const server = await redis();
    const names = seedNames();
    const topology = new StaticTopology({ [names.availabilityChanged]: [names.catalog] });
    const own = await database(names.inventory, undefined, 'postgres');
    await ensureBusTables(own.db);
    const replicas = [new Registry(), new Registry()].map((metrics) => ({ metrics, bus: bus({ service: names.inventory, redis: server.url, topology, database: own.db, metrics, relay: { batchSize: 100 } }) }));
    // Written before either relay runs, so both find the same rows at once.
    for (let i = 0; i < 1_000; i++) await replicas[0]?.bus.publish(names.availabilityChanged, { sku: `sku-${i}` });
    await Promise.all(replicas.map(({ bus: replica }) => replica.start()));
    const queue = queueHandle(serviceQueue(names.catalog), server.url);
    resources.add(() => queue.close());
    await waitUntil('every message in the queue', async () => (await queue.getJobCountByTypes('waiting')) === 1_000);
    // Each relay counts a batch once it has deleted the rows: both must have finished theirs.
    await Promise.all(replicas.map(({ bus: replica }) => replica.flushed()));
    const sent = async (metrics: Registry) => ((await metrics.getSingleMetric('portico_messages_published_total')?.get())?.values ?? []).reduce((sum, value) => sum + value.value, 0);
    const counts = await Promise.all(replicas.map(({ metrics }) => sent(metrics)));
    expect(counts[0]! + counts[1]!, `sent by each relay: ${counts.join(' and ')}`).toBe(1_000);
  });

  it('locks no PostgreSQL outbox row while it waits for the topology (the control plane may be away)', async () => {
    const server = await redis();
    const names = seedNames();
    let release!: () => void;
    const known = new Promise<void>((resolve) => (release = resolve));
    const base = new StaticTopology({ [names.availabilityChanged]: [names.catalog] });
    const topology: TopologySource = {
      declare: (service, types) => base.declare(service, types),
      ready: () => known,
      subscribers: (type) => base.subscribers(type),
      close: () => base.close(),
    };
    const own = await database(names.inventory, undefined, 'postgres');
    const publisher = bus({ service: names.inventory, redis: server.url, topology, database: own.db });
    await publisher.start();
    const event = await publisher.publish(names.availabilityChanged, { sku: 'sku-1' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Another replica's relay could take the row now: nothing holds it.
    const free = await sql<{ id: string }>`select id from portico_outbox for update skip locked`.execute(own.db);
    expect(free.rows.map((row) => row.id)).toEqual([event.id]);
    release();
    await publisher.flushed();
    const queue = queueHandle(serviceQueue(names.catalog), server.url);
    resources.add(() => queue.close());
    expect((await queue.getJob(event.id))?.data).toEqual(event);
  });

  it('fails at once, and adds to no queue, when Redis is away and there is no outbox', async () => {
    const server = await redis();
    const names = seedNames();
    const topology = new StaticTopology({ [names.availabilityChanged]: [names.inventory, names.catalog, names.user] });
    const inventory = bus({ service: names.inventory, redis: server.url, topology });
    await inventory.start();
    await inventory.publish(names.availabilityChanged, { sku: 'warm-up' });
    const port = server.port;
    server.kill();
    const started = Date.now();
    await expect(inventory.publish(names.availabilityChanged, { sku: 'lost' })).rejects.toMatchObject({ code: 'PORTICO_ERR_BUS_UNAVAILABLE', kind: 'unavailable' });
    expect(Date.now() - started).toBeLessThan(3_000);
    const again = await redis({ port });
    for (const service of [names.inventory, names.catalog, names.user]) {
      const queue = queueHandle(serviceQueue(service), again.url);
      resources.add(() => queue.close());
      expect(await queue.getJobCountByTypes('waiting', 'active', 'delayed', 'completed', 'failed')).toBe(0);
    }
  });
});

describe('MessageBus: retries and dead letters', () => {
  it('retries a failing message with backoff, dead-letters it after its last attempt with every attempt, and keeps handling others', async () => {
    const server = await redis();
    const names = seedNames();
    const topology = new StaticTopology();
    const metrics = new Registry();
    const catalog = bus({ service: names.catalog, redis: server.url, topology, metrics });
    const attempts: number[] = [];
    const handled: string[] = [];
    catalog.on(
      'sku_set_availability',
      (message: Envelope<{ sku: string }>, context) => {
        if (message.payload.sku === 'poison') {
          attempts.push(context.attempt);
          throw new Error(`cannot apply ${message.payload.sku}`);
        }
        handled.push(message.payload.sku);
      },
      { attempts: 3, delayMs: 50, maxDelayMs: 200 },
    );
    await catalog.start();
    const sender = bus({ service: names.inventory, redis: server.url, topology, metrics });
    await sender.start();

    const poison = await sender.send(names.catalog, 'sku_set_availability', { sku: 'poison' });
    await sender.send(names.catalog, 'sku_set_availability', { sku: 'fine-1' });
    const dlq = queueHandle(deadLetterQueue(serviceQueue(names.catalog)), server.url);
    resources.add(() => dlq.close());
    await waitUntil('the dead letter', async () => (await dlq.getJob(poison.id)) !== undefined);
    await sender.send(names.catalog, 'sku_set_availability', { sku: 'fine-2' });
    await waitUntil('the messages after it', () => handled.length === 2);

    expect(attempts).toEqual([1, 2, 3]);
    expect(handled.sort()).toEqual(['fine-1', 'fine-2']);
    const letter = (await dlq.getJob(poison.id))?.data as DeadLetter;
    expect(letter).toMatchObject({ reason: 'failed', queue: serviceQueue(names.catalog), jobId: poison.id, envelope: poison, attempts: 3, error: { message: 'cannot apply poison' } });
    expect(letter.history.map((entry) => [entry.attempt, entry.error])).toEqual([
      [1, 'cannot apply poison'],
      [2, 'cannot apply poison'],
      [3, 'cannot apply poison'],
    ]);
    // The original job is done with (completed), not left failing in the queue.
    const queue = queueHandle(serviceQueue(names.catalog), server.url);
    resources.add(() => queue.close());
    expect(await queue.getJobState(poison.id)).toBe('completed');

    const values = async (name: string) => (await metrics.getSingleMetric(name)?.get())?.values ?? [];
    const outcomes = Object.fromEntries((await values('portico_messages_processed_total')).map((v) => [v.labels.outcome, v.value]));
    expect(outcomes).toEqual({ retried: 2, dead_lettered: 1, processed: 2 });
    expect((await values('portico_messages_published_total')).map((v) => [v.labels.type, v.value])).toEqual([['sku_set_availability', 3]]);
    const count = (await values('portico_message_processing_seconds')).find((v) => (v as { metricName?: string }).metricName === 'portico_message_processing_seconds_count');
    expect(count?.value).toBe(5);
  });

  it('sends a malformed message straight to the dead-letter queue, and one of a type it has no handler for', async () => {
    const server = await redis();
    const names = seedNames();
    const catalog = bus({ service: names.catalog, redis: server.url, topology: new StaticTopology() });
    const handled: string[] = [];
    catalog.on('sku_set_availability', (message: Envelope<{ sku: string }>) => void handled.push(message.payload.sku));
    await catalog.start();
    const queue = queueHandle(serviceQueue(names.catalog), server.url);
    resources.add(() => queue.close());
    await queue.add('sku_set_availability', { hello: 'not an envelope' }, { jobId: 'garbage-1', attempts: 5 });
    const sender = bus({ service: names.inventory, redis: server.url, topology: new StaticTopology() });
    await sender.start();
    const unknown = await sender.send(names.catalog, 'sku_delete_everything', { sku: 'x' });
    await sender.send(names.catalog, 'sku_set_availability', { sku: 'after' });

    const dlq = queueHandle(deadLetterQueue(serviceQueue(names.catalog)), server.url);
    resources.add(() => dlq.close());
    await waitUntil('both dead letters and the good message', async () => handled.length === 1 && (await dlq.getJobCounts('waiting')).waiting === 2);
    const malformed = (await dlq.getJob('garbage-1'))?.data as DeadLetter;
    expect(malformed).toMatchObject({ reason: 'malformed', attempts: 1, raw: { hello: 'not an envelope' } });
    expect(malformed.error.message).toMatch(/not a Portico message: "id" is not a UUID/);
    expect(malformed.envelope).toBeUndefined();
    const unhandled = (await dlq.getJob(unknown.id))?.data as DeadLetter;
    expect(unhandled).toMatchObject({ reason: 'unhandled', envelope: unknown, attempts: 1 });
    expect(handled).toEqual(['after']);
  });
});
