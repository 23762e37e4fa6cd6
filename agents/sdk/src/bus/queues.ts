/**
 * The names the bus uses in Redis, shared by the SDK and the control plane (the seeds' names: one
 * queue per service, `<service>_service_queue`).
 */

/** The queue a service consumes. */
export function serviceQueue(service: string): string {
  return `${service}_service_queue`;
}

/** The service a queue belongs to, or undefined for a queue that is not a service queue. */
export function queueService(queue: string): string | undefined {
  return queue.endsWith('_service_queue') ? queue.slice(0, -'_service_queue'.length) : undefined;
}

/**
 * The dead-letter queue of a queue. BullMQ keeps failed jobs but has no dead-letter queue: this one is
 * an ordinary BullMQ queue no worker consumes, so its jobs wait there for an operator.
 */
export function deadLetterQueue(queue: string): string {
  return `${queue}.dlq`;
}

/** BullMQ's key prefix (its default). */
export const QUEUE_PREFIX = 'bull';

/**
 * Attempts BullMQ is asked for on every message job. The consumer decides when to stop (its own
 * per-type `attempts`) and moves the message to the dead-letter queue itself, so this is only a bound.
 */
export const MAX_DELIVERY_ATTEMPTS = 100;

/** The backoff type every message job names; the consumer's worker computes it (exponential, jittered, per type). */
export const BACKOFF_TYPE = 'portico';
