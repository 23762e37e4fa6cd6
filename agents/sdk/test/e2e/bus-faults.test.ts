import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createEnvelope, MessageBus, serviceQueue, StaticTopology } from '../../src/bus/index.js';
import { queueHandle, type ServiceDatabase, startRedisServer, useTestResources, waitUntil } from '../support/bus.js';
import { run, type RunningProcess } from '../support/portico.js';

const resources = useTestResources();
const { redis, database, tempDir, bus } = resources;

const countEffects = async (db: ServiceDatabase['db'], messageId?: string) => {
  let query = db.selectFrom('effects').select((eb) => eb.fn.countAll<number>().as('n'));
  if (messageId !== undefined) query = query.where('message_id', '=', messageId);
  return Number((await query.executeTakeFirstOrThrow()).n);
};

describe('MessageBus under faults', () => {
  it('applies every one of 10,000 events exactly once in each subscriber while Redis is killed for 10 s mid-way', { timeout: 180_000 }, async () => {
    const dir = await tempDir();
    const server = await redis({ dir, appendOnly: true });
    const suffix = randomUUID().slice(0, 8);
    const [inventory, catalog, user] = [`inventory-${suffix}`, `catalog-${suffix}`, `user-${suffix}`];
    const type = 'product.availability_changed';
    const topology = new StaticTopology();
    const databases: Record<string, ServiceDatabase> = {};
    const buses: MessageBus[] = [];
    for (const service of [inventory, catalog, user]) {
      databases[service] = await database(service);
      const bus = new MessageBus({ service, redis: server.url, topology, database: databases[service].db, lockDurationMs: 2_000, stalledIntervalMs: 1_000, concurrency: 20 });
      bus.on(type, async (message, { trx }) => {
        await trx?.insertInto('effects').values({ message_id: message.id, service, type: message.type, applied_at: new Date().toISOString() }).execute();
      });
      await bus.start();
      resources.add(() => bus.close());
      buses.push(bus);
    }
    const publisher = buses[0] as MessageBus;
    const publisherDb = (databases[inventory] as ServiceDatabase).db;

    // 10,000 events, each published in the transaction that records the product's new state, at a
    // steady pace; Redis is killed after the first 2,000 and comes back (same data directory) 10 s later.
    const ids: string[] = [];
    let killedAt = 0;
    let restartedAt = 0;
    let publishedWhileDown = 0;
    const outage = (async () => {
      await waitUntil('2,000 events published', () => ids.length >= 2_000, 60_000);
      server.kill();
      killedAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      const again = await startRedisServer({ port: server.port, dir, appendOnly: true });
      // Stopped after the buses.
      resources.add(() => again.stop(), { last: true });
      restartedAt = Date.now();
    })();
    for (let i = 0; i < 10_000; i++) {
      await publisherDb.transaction().execute(async (trx) => {
        await trx
          .insertInto('products')
          .values({ sku: `sku-${i}`, available: 1 })
          .execute();
        const event = await publisher.publish(type, { sku: `sku-${i}`, available: true }, { trx });
        ids.push(event.id);
      });
      if (killedAt !== 0 && restartedAt === 0) publishedWhileDown += 1;
      if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 150));
    }
    await outage;
    expect(publishedWhileDown).toBeGreaterThan(1_000);

    for (const service of [inventory, catalog, user]) {
      await waitUntil(`${service} applying all 10,000`, async () => (await countEffects((databases[service] as ServiceDatabase).db)) >= 10_000, 120_000);
    }
    // Let any redelivery still on its way arrive before counting.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const expected = [...ids].sort();
    for (const service of [inventory, catalog, user]) {
      const rows = await (databases[service] as ServiceDatabase).db.selectFrom('effects').select('message_id').orderBy('message_id').execute();
      expect(rows.length, `${service} applied each event once`).toBe(10_000);
      expect(rows.map((row) => row.message_id)).toEqual(expected);
    }
    const unsent = await publisherDb
      .selectFrom('portico_outbox' as never)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(unsent.n)).toBe(0);
  });

  it('sends what waited in the outbox as soon as Redis is back, not when its backoff runs out', async () => {
    const server = await redis();
    const suffix = randomUUID().slice(0, 8);
    const subscriber = `catalog-${suffix}`;
    const type = 'product.availability_changed';
    // A backoff of 4-8 s after the first failed attempt: far longer than Redis stays away here.
    const publisher = bus({
      service: `inventory-${suffix}`,
      redis: server.url,
      topology: new StaticTopology({ [type]: [subscriber] }),
      database: (await database(`inventory-${suffix}`)).db,
      relay: { retry: { initialMs: 8_000, maxMs: 8_000 } },
    });
    await publisher.start();
    await publisher.publish(type, { sku: 'sku-0', available: true });
    await publisher.flushed();
    const port = server.port;
    server.kill();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const event = await publisher.publish(type, { sku: 'sku-1', available: false });
    // The relay tries, fails, and backs off.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const again = await redis({ port });
    const restartedAt = Date.now();
    const queue = queueHandle(serviceQueue(subscriber), again.url);
    resources.add(() => queue.close());
    await waitUntil('the event in its queue', async () => (await queue.getJob(event.id)) !== undefined, 10_000);
    expect(Date.now() - restartedAt).toBeLessThan(3_000);
  });

  it('delivers a message again after the stall window when its worker is killed -9 mid-message, and applies it once', { timeout: 60_000 }, async () => {
    const server = await redis();
    const dir = await tempDir();
    const service = `catalog-${randomUUID().slice(0, 8)}`;
    const start = (mode: 'slow' | 'fast'): RunningProcess => {
      const child = run('node', ['--import', 'tsx', join(import.meta.dirname, '../fixtures/bus-consumer.ts')], {
        cwd: join(import.meta.dirname, '..', '..'),
        env: { ...process.env, REDIS_URL: server.url, SERVICE: service, DB_DIR: dir, MODE: mode, LOCK_MS: '1000' },
      });
      resources.add(() => child.stop('SIGKILL'));
      return child;
    };
    const first = start('slow');
    await first.waitForOutput(/ready/, 20_000);
    const sender = bus({ service: `inventory-${randomUUID().slice(0, 8)}`, redis: server.url, topology: new StaticTopology() });
    await sender.start();
    const message = await sender.send(service, 'sku_set_availability', { sku: 'sku-1', available: false });
    await first.waitForOutput(new RegExp(`handling ${message.id} 1`), 20_000);
    await first.stop('SIGKILL');
    const killedAt = Date.now();

    const second = start('fast');
    await second.waitForOutput(new RegExp(`handling ${message.id}`), 20_000);
    const redeliveredAfter = Date.now() - killedAt;
    const queue = queueHandle(serviceQueue(service), server.url);
    resources.add(() => queue.close());
    await waitUntil('the job to complete', async () => (await queue.getJobState(message.id)) === 'completed');
    await second.stop('SIGTERM');

    const db = await database(service, dir);
    expect(await countEffects(db.db, message.id)).toBe(1);
    // Not before the dead worker's lock (1 s) ran out.
    expect(redeliveredAfter).toBeGreaterThanOrEqual(500);
  });

  it('applies a message delivered twice (a replay under a new job id) once, through the inbox', async () => {
    const server = await redis();
    const service = `catalog-${randomUUID().slice(0, 8)}`;
    const own = await database(service);
    const handled: number[] = [];
    const bus = new MessageBus({ service, redis: server.url, topology: new StaticTopology(), database: own.db });
    bus.on('sku_set_availability', async (message, { trx, attempt }) => {
      handled.push(attempt);
      await trx?.insertInto('effects').values({ message_id: message.id, service, type: message.type, applied_at: new Date().toISOString() }).execute();
    });
    await bus.start();
    resources.add(() => bus.close());
    const envelope = createEnvelope({ kind: 'command', type: 'sku_set_availability', source: 'inventory', payload: { sku: 'sku-1' } });
    const queue = queueHandle(serviceQueue(service), server.url);
    resources.add(() => queue.close());
    await queue.add(envelope.type, envelope, { jobId: envelope.id });
    await waitUntil('the first delivery', async () => (await queue.getJobState(envelope.id)) === 'completed');
    await queue.add(envelope.type, envelope, { jobId: `${envelope.id}-replay-1` });
    await waitUntil('the second delivery', async () => (await queue.getJobState(`${envelope.id}-replay-1`)) === 'completed');
    expect(handled).toEqual([1]);
    expect(await countEffects(own.db, envelope.id)).toBe(1);
  });
});
