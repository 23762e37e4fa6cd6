import { type FlowProducer, type JobsOptions } from 'bullmq';
import { type Envelope } from './envelope.js';
import { BACKOFF_TYPE, MAX_DELIVERY_ATTEMPTS } from './queues.js';

/** One message bound for one queue. */
export interface Delivery {
  queue: string;
  envelope: Envelope;
}

/** Completed message jobs are kept this long, so a re-send of the same message id within it is deduplicated by BullMQ itself. */
export const KEEP_COMPLETED_S = 3600;

/** The options every message job is added with: its id is the message id; the consumer governs retries. */
export function messageJobOptions(envelope: Envelope, jobId: string = envelope.id): JobsOptions {
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
 * Add every delivery in one atomic step: BullMQ's `FlowProducer.addBulk` sends all the jobs in one Redis
 * transaction, so either every queue gets its job or none does (a failure before EXEC). A job id that
 * already exists in its queue is left alone (BullMQ's deduplication by id), so adding the same
 * deliveries again after a failure that hid the outcome is safe.
 */
export async function addDeliveries(flow: FlowProducer, deliveries: readonly Delivery[]): Promise<void> {
  if (deliveries.length === 0) return;
  await flow.addBulk(
    deliveries.map(({ queue, envelope }) => ({
      name: envelope.type,
      queueName: queue,
      data: envelope,
      opts: messageJobOptions(envelope),
    })),
  );
}
