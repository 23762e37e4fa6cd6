import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The control plane's Prometheus registry. One per process (or per test app), never prom-client's
 * global registry, so several apps in one test process do not collide.
 */
export class Metrics {
  readonly registry = new Registry();

  /** Requests served by the control plane's own HTTP API, by route template (never the raw URL). */
  readonly httpRequests = new Counter({
    name: 'portico_http_requests_total',
    help: 'HTTP requests served by the control-plane API.',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [this.registry],
  });

  readonly httpRequestDuration = new Histogram({
    name: 'portico_http_request_duration_seconds',
    help: 'Time to serve a control-plane API request, in seconds.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The exposition in Prometheus text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
