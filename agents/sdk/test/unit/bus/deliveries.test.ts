import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { addDeliveries, deliveriesOf, MESSAGES_PER_TRANSACTION } from '../../../src/bus/deliveries.js';
import { createEnvelope } from '../../../src/bus/envelope.js';
import { queueHandle, useTestResources } from '../../support/bus.js';

const resources = useTestResources();

/** Queues over one connection to the test's own Redis, and a count of the transactions Redis has run (`INFO commandstats`). */
async function setup(): Promise<{ queueFor: (name: string) => Queue; transactions: () => Promise<number>; read: (name: string) => Queue }> {
  const server = await resources.redis();
  const queues = new Map<string, Queue>();
  const connection = new Redis(server.url, { maxRetriesPerRequest: null });
  resources.add(async () => {
    for (const queue of queues.values()) await queue.close();
    connection.disconnect();
  });
  const queueFor = (name: string) => {
    let queue = queues.get(name);
    if (queue === undefined) queues.set(name, (queue = new Queue(name, { connection })));
    return queue;
  };
  const admin = new Redis(server.url);
  resources.add(async () => admin.disconnect());
  const transactions = async () => Number(/cmdstat_exec:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
  const read = (name: string) => {
    const queue = queueHandle(name, server.url);
    resources.add(() => queue.close());
    return queue;
  };
  return { queueFor, transactions, read };
}

const event = (n: number) => createEnvelope({ kind: 'event', type: 'product.availability_changed', source: 'inventory', payload: { n } });

describe('addDeliveries (a real Redis)', () => {
  it('adds a lone delivery (a command) without a transaction', async () => {
    const { queueFor, transactions, read } = await setup();
    const envelope = createEnvelope({ kind: 'command', type: 'sku_set_availability', source: 'inventory', payload: { sku: 'a' } });
    await addDeliveries(queueFor, deliveriesOf(envelope, ['catalog_service_queue']));
    expect(await transactions()).toBe(0);
    const job = await read('catalog_service_queue').getJob(envelope.id);
    expect(job?.data).toEqual(envelope);
    expect(job?.name).toBe('sku_set_availability');
  });

  it("adds an event's deliveries to every queue in one transaction", async () => {
    const { queueFor, transactions, read } = await setup();
    const envelope = event(1);
    const queues = ['inventory_service_queue', 'catalog_service_queue', 'user_service_queue'];
    await addDeliveries(queueFor, deliveriesOf(envelope, queues));
    expect(await transactions()).toBe(1);
    for (const queue of queues) expect((await read(queue).getJob(envelope.id))?.data).toEqual(envelope);
  });

  it(`sends a batch as transactions of up to ${MESSAGES_PER_TRANSACTION} messages, never splitting one`, async () => {
    const { queueFor, transactions, read } = await setup();
    const messages = Array.from({ length: 2 * MESSAGES_PER_TRANSACTION + 50 }, (_, n) => event(n));
    await addDeliveries(
      queueFor,
      messages.flatMap((envelope) => deliveriesOf(envelope, ['catalog_service_queue', 'user_service_queue'])),
    );
    expect(await transactions()).toBe(3);
    expect(await read('catalog_service_queue').getWaitingCount()).toBe(messages.length);
    expect(await read('user_service_queue').getWaitingCount()).toBe(messages.length);
  });
});
