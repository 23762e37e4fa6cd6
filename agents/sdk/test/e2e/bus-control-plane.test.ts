import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ControlPlaneTopology, type Envelope, MessageBus, serviceQueue } from '../../src/bus/index.js';
import { useTestResources, waitUntil } from '../support/bus.js';
import { ControlPlane } from '../support/portico.js';

/** The parts of the admin API's answers this test reads. */
interface TopologyBody {
  services: { service: string; queue: string; consumes: string[] }[];
  types: Record<string, string[] | undefined>;
}
interface DeadJob {
  id: string;
  name: string;
  state: string;
  data: { reason: string; attempts: number; queue: string; history: { attempt: number }[]; envelope: Envelope };
}
interface QueueView {
  name: string;
  service: string;
  deadLetters: number;
  consumers: number;
}

const resources = useTestResources();

describe('MessageBus with a control plane', () => {
  it('declares what it consumes, follows the topology live, dead-letters a poison event, and handles it once an operator replays it', { timeout: 90_000 }, async () => {
    const redis = await resources.redis();
    const controlPlane = await ControlPlane.start({ redisUrl: redis.url });
    resources.add(() => controlPlane.close());
    const suffix = randomUUID().slice(0, 8);
    const [inventory, catalog] = [`inventory-${suffix}`, `catalog-${suffix}`];
    const type = 'product.availability_changed';
    const token = await controlPlane.agentToken([inventory, catalog]);
    const topology = () => {
      const created = new ControlPlaneTopology({ controlPlane: controlPlane.url, token: token.secret });
      resources.add(() => created.close());
      return created;
    };

    // The publisher starts first: it learns of catalog's subscription from the topology's event stream.
    const publisher = new MessageBus({ service: inventory, redis: redis.url, topology: topology() });
    resources.add(() => publisher.close());
    await publisher.start();

    let healed = false;
    const handled: Envelope[] = [];
    const consumer = new MessageBus({ service: catalog, redis: redis.url, topology: topology() });
    consumer.on(
      type,
      (message: Envelope<{ sku: string }>) => {
        if (!healed) throw new Error(`catalog cannot take ${message.payload.sku} yet`);
        handled.push(message);
      },
      { attempts: 2, delayMs: 50, maxDelayMs: 100 },
    );
    resources.add(() => consumer.close());
    await consumer.start();

    const topologyRead = await waitFor(async () => (await controlPlane.api('topology')).body as TopologyBody, (body) => body.types[type]?.includes(catalog) === true);
    expect(topologyRead.services).toContainEqual(expect.objectContaining({ service: catalog, queue: serviceQueue(catalog), consumes: [type] }));
    // The publisher's stream has it too once an event it publishes reaches catalog's queue.
    let event: Envelope | undefined;
    const queueName = serviceQueue(catalog);
    const deadJobs = async () => ((await controlPlane.api(`queues/${queueName}/jobs?state=dead`)).body as { jobs: DeadJob[] }).jobs;
    const queues = async () => ((await controlPlane.api('queues')).body as { queues: QueueView[] }).queues;
    await waitUntil('the event to reach catalog (the publisher following the topology)', async () => {
      event ??= await publisher.publish(type, { sku: 'sku-1', available: false });
      if ((await deadJobs()).length === 1) return true;
      // Published before the publisher knew of catalog: it reached no queue; publish again.
      if ((await queues()).every((queue) => queue.name !== queueName)) event = undefined;
      return false;
    });

    const dead = (await deadJobs())[0] as DeadJob;
    expect(dead).toMatchObject({ id: event?.id, name: type, state: 'dead', data: { reason: 'failed', attempts: 2, queue: queueName, envelope: { id: event?.id, type, source: inventory } } });
    expect(dead.data.history.map((attempt) => attempt.attempt)).toEqual([1, 2]);
    const summary = (await queues()).find((queue) => queue.name === queueName);
    expect(summary).toMatchObject({ service: catalog, deadLetters: 1, consumers: 1 });
    expect(handled).toEqual([]);

    healed = true;
    const replay = await controlPlane.api(`queues/${queueName}/dlq/replay`, { method: 'POST', body: {} });
    expect([replay.status, replay.body.replayed, replay.body.remaining]).toEqual([200, 1, 0]);
    await waitUntil('the replayed event to be handled', () => handled.length === 1);
    expect(handled[0]).toMatchObject({ id: event?.id, type, payload: { sku: 'sku-1', available: false } });
    expect(await deadJobs()).toEqual([]);
    const audit = await controlPlane.api('audit?action=queue.dlq.replay');
    expect(audit.body.entries).toEqual(expect.arrayContaining([expect.objectContaining({ action: 'queue.dlq.replay', target: `queue:${queueName}` })]));
  });
});

async function waitFor<T>(read: () => Promise<T>, until: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (until(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out; last value: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
