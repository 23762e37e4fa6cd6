/**
 * `npm run bench:messaging`: Portico's message bus against raw BullMQ, against one Redis (a private
 * `redis-server` of the run's own), in one run.
 *
 *   raw BullMQ  `Queue.addBulk` (1,000 jobs a call) into three queues, a `Worker` per queue with
 *               concurrency 100 and a no-op processor
 *   portico     one service publishing events (each in its own SQLite transaction, through the outbox)
 *               to three subscribing services, each consuming its queue through the inbox (a SQLite
 *               transaction per message) with concurrency 100 and a no-op handler
 *
 * Both deliver the same number of messages (3 × EVENTS); the figure is delivered messages per second,
 * from the first add (or publish) to the last message handled. Target: ratio portico/raw ≥ 0.7.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { MessageBus, StaticTopology } from '../src/bus/index.js';
import { serviceDatabase, startRedisServer } from '../test/support/bus.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const CONCURRENCY = 100;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const server = await startRedisServer();
const dir = await mkdtemp(join(tmpdir(), 'portico-bench-messaging-'));

async function raw(round: number): Promise<number> {
  const connection = new Redis(server.url, { maxRetriesPerRequest: null });
  const names = [0, 1, 2].map((i) => `raw-${round}-${i}`);
  const queues = names.map((name) => new Queue(name, { connection }));
  let handled = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const workerConnections = names.map(() => new Redis(server.url, { maxRetriesPerRequest: null }));
  const workers = names.map(
    (name, i) =>
      new Worker(
        name,
        async () => {
          handled += 1;
          if (handled === 3 * EVENTS) finish();
        },
        { connection: workerConnections[i] as Redis, concurrency: CONCURRENCY },
      ),
  );
  const payload = { sku: 'sku-1', available: true };
  const started = performance.now();
  for (let from = 0; from < EVENTS; from += 1_000) {
    const count = Math.min(1_000, EVENTS - from);
    await Promise.all(queues.map((queue) => queue.addBulk(Array.from({ length: count }, (_, i) => ({ name: 'product.availability_changed', data: { ...payload, n: from + i } })))));
  }
  await finished;
  const elapsed = performance.now() - started;
  await Promise.all(workers.map((worker) => worker.close()));
  await Promise.all(queues.map((queue) => queue.close()));
  for (const worker of workerConnections) worker.disconnect();
  connection.disconnect();
  return (3 * EVENTS) / (elapsed / 1_000);
}

async function portico(round: number): Promise<number> {
  const type = 'product.availability_changed';
  const services = ['inventory', 'catalog', 'user'].map((name) => `${name}-${round}`);
  const topology = new StaticTopology();
  let handled = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const buses: MessageBus[] = [];
  const databases = [];
  for (const service of services) {
    const own = await serviceDatabase(service, dir);
    databases.push(own);
    const bus = new MessageBus({ service, redis: server.url, topology, database: own.db, concurrency: CONCURRENCY });
    bus.on(type, () => {
      handled += 1;
      if (handled === 3 * EVENTS) finish();
    });
    await bus.start();
    buses.push(bus);
  }
  const publisher = buses[0] as MessageBus;
  const started = performance.now();
  for (let i = 0; i < EVENTS; i++) await publisher.publish(type, { sku: 'sku-1', available: true, n: i });
  await finished;
  const elapsed = performance.now() - started;
  await Promise.all(buses.map((bus) => bus.close()));
  for (const own of databases) await own.close();
  return (3 * EVENTS) / (elapsed / 1_000);
}

try {
  const figures: { raw: number[]; portico: number[] } = { raw: [], portico: [] };
  for (let round = 0; round < ROUNDS; round++) {
    figures.raw.push(await raw(round));
    figures.portico.push(await portico(round));
  }
  const best = (values: number[]) => Math.max(...values);
  const f = (n: number) => n.toFixed(0).padStart(12);
  console.log(`\nmessaging: ${EVENTS} events × 3 subscriber queues, ${ROUNDS} alternating rounds (best of each), one Redis`);
  console.log(`${'target'.padEnd(14)}${'delivered/s'.padStart(12)}   every round`);
  console.log(`${'raw BullMQ'.padEnd(14)}${f(best(figures.raw))}   ${figures.raw.map((n) => n.toFixed(0)).join(' / ')}`);
  console.log(`${'portico'.padEnd(14)}${f(best(figures.portico))}   ${figures.portico.map((n) => n.toFixed(0)).join(' / ')}`);
  console.log(`ratio ${(best(figures.portico) / best(figures.raw)).toFixed(2)}   target ≥ 0.70`);
} finally {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}
