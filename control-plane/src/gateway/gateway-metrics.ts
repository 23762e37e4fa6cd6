import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

type RequestLabels = 'service' | 'route' | 'method' | 'code';

/**
 * The gateway's Prometheus metrics. Looking a labelled child up costs a hash of its labels, so the
 * children the request path uses are kept by key and found with one map lookup.
 */
export class GatewayMetrics {
  readonly requests: Counter<RequestLabels>;
  readonly duration: Histogram<RequestLabels>;
  readonly upstreamErrors: Counter<'service' | 'kind'>;
  readonly retries: Counter<'service'>;
  readonly ejections: Counter<'service'>;
  readonly circuitState: Gauge<'service' | 'route'>;
  readonly rejected: Counter<'service' | 'route' | 'reason'>;
  readonly inflight: Gauge<'service'>;
  readonly #children = new Map<string, { requests: Counter.Internal; duration: Histogram.Internal<RequestLabels> }>();
  readonly #inflight = new Map<string, Gauge.Internal<'service'>>();

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'portico_gateway_requests_total',
      help: 'Requests the gateway answered, by service, route, method and status code.',
      labelNames: ['service', 'route', 'method', 'code'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'portico_gateway_request_duration_seconds',
      help: 'Time from a request reaching the gateway to its response ending, in seconds.',
      labelNames: ['service', 'route', 'method', 'code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.upstreamErrors = new Counter({
      name: 'portico_gateway_upstream_errors_total',
      help: 'Failed attempts to reach an instance, by kind (connect, timeout, reset).',
      labelNames: ['service', 'kind'],
      registers: [registry],
    });
    this.retries = new Counter({
      name: 'portico_gateway_retries_total',
      help: 'Requests sent again to another instance after a connection failure.',
      labelNames: ['service'],
      registers: [registry],
    });
    this.ejections = new Counter({
      name: 'portico_gateway_ejections_total',
      help: 'Instances taken out of balancing by outlier detection, by service.',
      labelNames: ['service'],
      registers: [registry],
    });
    this.circuitState = new Gauge({
      name: 'portico_gateway_circuit_state',
      help: 'Each circuit breaker: 0 closed, 1 half open, 2 open; by service, and by route for a route with its own.',
      labelNames: ['service', 'route'],
      registers: [registry],
    });
    this.rejected = new Counter({
      name: 'portico_gateway_rejected_total',
      help: 'Requests answered 503 at once, by reason: circuit_open or overloaded (the bulkhead); route set for a route guarded on its own.',
      labelNames: ['service', 'route', 'reason'],
      registers: [registry],
    });
    this.inflight = new Gauge({
      name: 'portico_gateway_inflight_requests',
      help: 'Requests the gateway is forwarding now, by service.',
      labelNames: ['service'],
      registers: [registry],
    });
  }

  /** Count a finished request and observe its duration. */
  observe(service: string, route: string, method: string, code: number, seconds: number): void {
    const key = `${service}\u0000${route}\u0000${method}\u0000${code}`;
    let children = this.#children.get(key);
    if (children === undefined) {
      const labels = { service, route, method, code: String(code) };
      children = { requests: this.requests.labels(labels), duration: this.duration.labels(labels) };
      this.#children.set(key, children);
    }
    children.requests.inc();
    children.duration.observe(seconds);
  }

  inflightOf(service: string): Gauge.Internal<'service'> {
    let gauge = this.#inflight.get(service);
    if (gauge === undefined) {
      gauge = this.inflight.labels({ service });
      this.#inflight.set(service, gauge);
    }
    return gauge;
  }
}
