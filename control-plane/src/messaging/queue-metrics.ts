import { Counter, Gauge, type Registry } from 'prom-client';
import { JOB_LIST_STATES, type QueueJobCounts } from './queue-admin.js';

/** Where the gauge reads its figures when scraped; `QueueAdmin` fits. */
export interface QueueJobCountSource {
  jobCounts(): Promise<Array<{ queue: string; counts: QueueJobCounts }>>;
}

/**
 * `portico_queue_jobs{queue,state}`: the jobs of every service queue by state (`dead`: waiting in its
 * dead-letter queue), read from Redis when Prometheus scrapes. A scrape while Redis does not answer
 * still succeeds, without queue series, and counts `portico_queue_metrics_errors_total`.
 */
export function registerQueueMetrics(registry: Registry, source: QueueJobCountSource): void {
  const errors = new Counter({
    name: 'portico_queue_metrics_errors_total',
    help: 'Scrapes in which the queue gauges could not be read from Redis.',
    registers: [registry],
  });
  new Gauge({
    name: 'portico_queue_jobs',
    help: 'Jobs in each service queue by state (dead: waiting in its dead-letter queue).',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      let queues: Awaited<ReturnType<QueueJobCountSource['jobCounts']>>;
      try {
        queues = await source.jobCounts();
      } catch {
        errors.inc();
        return;
      }
      for (const { queue, counts } of queues) {
        for (const state of JOB_LIST_STATES) this.set({ queue, state }, counts[state]);
      }
    },
  });
}
