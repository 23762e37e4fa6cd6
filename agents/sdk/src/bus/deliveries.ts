import { Job, type JobJson, type JobsOptions, type Queue } from 'bullmq';
import { type Envelope } from './envelope.js';
import { BACKOFF_TYPE, MAX_DELIVERY_ATTEMPTS } from './queues.js';

/**
 * One message bound for one queue: the message's id (the job's id) and type (the job's name), and its
 * envelope written as JSON (the job's data, as the outbox keeps it).
 */
export interface Delivery {
  queue: string;
  id: string;
  type: string;
  data: string;
}

/** The deliveries of `envelope` to each of `queues`, the envelope written as JSON once for all of them. */
export function deliveriesOf(envelope: Envelope, queues: readonly string[], data: string = JSON.stringify(envelope)): Delivery[] {
  return queues.map((queue) => ({ queue, id: envelope.id, type: envelope.type, data }));
}

/**
 * The BullMQ queue of each name, all over one Redis connection (the caller keeps one object per name).
 * The deliveries of one call are added through the first one's connection.
 */
export type QueueFor = (name: string) => Queue;

/** Completed message jobs are kept this long, so a re-send of the same message id within it is deduplicated by BullMQ itself. */
export const KEEP_COMPLETED_S = 3600;

/** The options every message job is added with: its id is the message id (`jobId`); the consumer governs retries. */
export function messageJobOptions(jobId: string): JobsOptions {
  return {
    jobId,
    attempts: MAX_DELIVERY_ATTEMPTS,
    backoff: { type: BACKOFF_TYPE },
    removeOnComplete: { age: KEEP_COMPLETED_S },
    // The consumer dead-letters a message itself; a job failed for good here is one it could not (Redis
    // went away mid-way): keep it for an operator.
    removeOnFail: false,
  };
}

/**
 * Messages per Redis transaction. Redis runs a transaction whole, serving no other client meanwhile, so
 * a bounded one keeps every other client's wait short (about 15 ms here for 100 messages to three
 * queues); and while Redis runs one, the next is being built.
 */
export const MESSAGES_PER_TRANSACTION = 100;

/**
 * A message's job, its data already JSON: BullMQ writes that text as it is rather than writing the
 * envelope again for every queue (and the relay need not read the outbox's JSON back first).
 */
class MessageJob extends Job {
  readonly #data: string;

  constructor(queue: Queue, delivery: Delivery) {
    super(queue, delivery.type, undefined, messageJobOptions(delivery.id), delivery.id);
    this.#data = delivery.data;
  }

  override asJSON(): JobJson {
    const json = super.asJSON();
    json.data = this.#data;
    return json;
  }
}

/**
 * Add every delivery, each message atomically: all of one message's deliveries (an event's to every
 * subscriber's queue) are in one Redis transaction (`MULTI` … `EXEC`), so either every queue gets it or
 * none does (a lone delivery, a command, needs none: its add is atomic by itself). Each job is added
 * by BullMQ itself (`Job.addJob`, what `FlowProducer.addBulk` does for jobs without parents, without
 * the flow bookkeeping it does for every job, which made it cost twice as much as `Queue.addBulk` per
 * job). The messages go in transactions of up to `MESSAGES_PER_TRANSACTION`, sent one after another on
 * one connection, so Redis applies them in order. A message's deliveries must be next to each other in
 * `deliveries` (a transaction ends only between two messages). A job id that already exists in its
 * queue is left alone (BullMQ's deduplication by id), so adding the same deliveries again after a
 * failure that hid the outcome is safe.
 *
 * @throws the driver's error when Redis cannot be reached or refuses a transaction (the transactions
 *   before it may have been applied).
 */
export async function addDeliveries(queueFor: QueueFor, deliveries: readonly Delivery[]): Promise<void> {
  const first = deliveries[0];
  if (first === undefined) return;
  const queues = new Map<string, Queue>();
  for (const { queue } of deliveries) if (!queues.has(queue)) queues.set(queue, queueFor(queue));
  // Ready queues have BullMQ's scripts loaded on the connection they share.
  await Promise.all([...queues.values()].map((queue) => queue.waitUntilReady()));
  const client = await (queues.get(first.queue) as Queue).getBackend().client;
  // Nothing is built for a connection that is down: each of a batch's commands would fail alone.
  if (client.status !== 'ready') throw new Error(`Redis is not connected (the connection is ${client.status})`);
  if (deliveries.length === 1) {
    // One job: BullMQ's add is one script, atomic by itself, and needs no transaction (building one
    // costs more than the add: ioredis copies every loaded script onto it).
    await new MessageJob(queues.get(first.queue) as Queue, first).addJob(client);
    return;
  }
  const sent: Promise<[Error | null, unknown][] | null>[] = [];
  const queued: Promise<unknown>[] = [];
  let failure: Error | undefined;
  try {
    let transaction = client.multi();
    let messages = 0;
    let last: string | undefined;
    for (const delivery of deliveries) {
      if (delivery.id !== last) {
        // A message's deliveries are never split: a new transaction starts only at a new message.
        if (messages === MESSAGES_PER_TRANSACTION) {
          sent.push(transaction.exec());
          transaction = client.multi();
          messages = 0;
        }
        messages += 1;
        last = delivery.id;
      }
      // Queued on the transaction at once (a job BullMQ cannot encode throws here, before its
      // transaction is sent); the promise settles with nothing of use.
      queued.push(new MessageJob(queues.get(delivery.queue) as Queue, delivery).addJob(transaction));
    }
    sent.push(transaction.exec());
  } catch (error) {
    failure = asError(error);
  }
  // Every transaction sent is waited for, whatever happened, so none fails unobserved.
  const [transactions, adds] = await Promise.all([Promise.allSettled(sent), Promise.allSettled(queued)]);
  if (failure !== undefined) throw failure;
  for (const outcome of [...transactions, ...adds]) if (outcome.status === 'rejected') throw asError(outcome.reason);
  for (const outcome of transactions) {
    const results = (outcome as PromiseFulfilledResult<[Error | null, unknown][] | null>).value;
    if (results === null) throw new Error('Redis discarded a transaction adding messages');
    for (const [error] of results) if (error) throw error;
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
