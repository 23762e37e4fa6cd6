import { Counter, Histogram, type Registry } from 'prom-client';

/** How a delivery ended, as `portico_messages_processed_total` counts it. */
export type ProcessOutcome =
  /** The handler ran and (with a database) committed. */
  | 'processed'
  /** The inbox already had it: a redelivery, skipped. */
  | 'duplicate'
  /** The handler failed; BullMQ delivers it again after a backoff. */
  | 'retried'
  /** Moved to the dead-letter queue (last attempt failed, malformed, or no handler). */
  | 'dead_lettered';

/**
 * The bus's Prometheus metrics, registered in the service's own registry (served on its `/metrics`):
 * `portico_messages_published_total{type}` (messages handed to Redis, once each however many queues
 * they reach), `portico_messages_processed_total{queue,outcome}` and `portico_message_processing_seconds{queue}`.
 * A registry that already has them (two buses in one process) shares them.
 */
export class BusMetrics {
  readonly published: Counter<'type'>;
  readonly processed: Counter<'queue' | 'outcome'>;
  readonly processing: Histogram<'queue'>;

  constructor(registry: Registry) {
    this.published = existing(registry, 'portico_messages_published_total') ?? new Counter({ name: 'portico_messages_published_total', help: 'Messages handed to Redis, by type (once per message, whatever the number of queues it reaches).', labelNames: ['type'], registers: [registry] });
    this.processed =
      existing(registry, 'portico_messages_processed_total') ??
      new Counter({ name: 'portico_messages_processed_total', help: 'Deliveries handled, by queue and outcome: processed, duplicate (skipped by the inbox), retried, dead_lettered.', labelNames: ['queue', 'outcome'], registers: [registry] });
    this.processing =
      existing(registry, 'portico_message_processing_seconds') ??
      new Histogram({ name: 'portico_message_processing_seconds', help: "Time to handle a delivery (the handler and its inbox transaction), in seconds.", labelNames: ['queue'], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] });
  }
}

function existing<T>(registry: Registry, name: string): T | undefined {
  return registry.getSingleMetric(name) as T | undefined;
}
