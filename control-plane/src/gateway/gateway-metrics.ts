import { Counter, Gauge, Histogram, type MetricObjectWithValues, type MetricValue, type MetricValueWithName, type Registry } from 'prom-client';

type RequestLabels = 'service' | 'route' | 'method' | 'code';

const REQUESTS = { name: 'portico_gateway_requests_total', help: 'Requests the gateway answered, by service, route, method and status code.' } as const;
const DURATION = { name: 'portico_gateway_request_duration_seconds', help: 'Time from a request reaching the gateway to its response ending, in seconds.' } as const;
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** One `{service, route, method, code}` series of the request metrics, counted with plain arithmetic. */
interface RequestSeries {
  readonly method: string;
  readonly code: number;
  readonly labels: Readonly<Record<RequestLabels, string>>;
  count: number;
  sum: number;
  /** Observations per bucket (not cumulative), by `DURATION_BUCKETS` index; the last counts those above every bound. */
  readonly buckets: Float64Array;
}

/**
 * The request series, found by service, then route, then a scan of the route's few method and code
 * pairs. The names come from the route table and the method table, the same strings every time, so
 * their hashes are cached and no key string is built per request.
 */
class RequestSeriesTable {
  readonly #byService = new Map<string, Map<string, RequestSeries[]>>();
  readonly #all: RequestSeries[] = [];

  get(service: string, route: string, method: string, code: number): RequestSeries {
    let routes = this.#byService.get(service);
    if (routes === undefined) this.#byService.set(service, (routes = new Map<string, RequestSeries[]>()));
    let list = routes.get(route);
    if (list === undefined) routes.set(route, (list = []));
    for (let i = 0; i < list.length; i++) {
      const series = list[i] as RequestSeries;
      if (series.code === code && series.method === method) return series;
    }
    const series: RequestSeries = { method, code, labels: { service, route, method, code: String(code) }, count: 0, sum: 0, buckets: new Float64Array(DURATION_BUCKETS.length + 1) };
    list.push(series);
    this.#all.push(series);
    return series;
  }

  values(): readonly RequestSeries[] {
    return this.#all;
  }

  clear(): void {
    this.#byService.clear();
    this.#all.length = 0;
  }
}

/**
 * What the registry reads from a metric's `get()`, as prom-client's own metrics return it: `type` is
 * the exposition's word (`counter`, `histogram`) and there is no `collect`, whatever its typings say
 * (a numeric enum, and a `collect`).
 */
function scraped<T extends string>(metric: {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: MetricValueWithName<string>[];
}): MetricObjectWithValues<MetricValueWithName<T>> {
  return metric as unknown as MetricObjectWithValues<MetricValueWithName<T>>;
}

/**
 * prom-client validates and hashes the labels on every `inc` and `observe`, even through a child
 * from `labels()`: about a microsecond each, paid on every request. The request metrics are counted
 * in `RequestSeries` instead, and these two read them when scraped.
 */
class RequestCounter extends Counter<RequestLabels> {
  constructor(
    private readonly series: RequestSeriesTable,
    registry: Registry,
  ) {
    super({ ...REQUESTS, labelNames: ['service', 'route', 'method', 'code'], registers: [registry] });
  }

  override async get(): Promise<MetricObjectWithValues<MetricValue<RequestLabels>>> {
    const values: MetricValue<RequestLabels>[] = [];
    for (const series of this.series.values()) values.push({ labels: { ...series.labels }, value: series.count });
    return scraped({ ...REQUESTS, type: 'counter', aggregator: 'sum', values });
  }

  override reset(): void {
    super.reset();
    // prom-client's constructor calls reset() before this class has its fields.
    (this.series as RequestSeriesTable | undefined)?.clear();
  }
}

class RequestDurationHistogram extends Histogram<RequestLabels> {
  constructor(
    private readonly series: RequestSeriesTable,
    registry: Registry,
  ) {
    super({
      ...DURATION,
      labelNames: ['service', 'route', 'method', 'code'],
      buckets: [...DURATION_BUCKETS],
      registers: [registry],
    });
  }

  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<RequestLabels>>> {
    const values: MetricValueWithName<RequestLabels | 'le'>[] = [];
    for (const series of this.series.values()) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((bound, i) => {
        cumulative += series.buckets[i] as number;
        values.push({ metricName: `${DURATION.name}_bucket`, labels: { le: bound, ...series.labels }, value: cumulative });
      });
      values.push({ metricName: `${DURATION.name}_bucket`, labels: { le: '+Inf', ...series.labels }, value: series.count });
      values.push({ metricName: `${DURATION.name}_sum`, labels: { ...series.labels }, value: series.sum });
      values.push({ metricName: `${DURATION.name}_count`, labels: { ...series.labels }, value: series.count });
    }
    return scraped({ ...DURATION, type: 'histogram', aggregator: 'sum', values });
  }

  override reset(): void {
    super.reset();
    // prom-client's constructor calls reset() before this class has its fields.
    (this.series as RequestSeriesTable | undefined)?.clear();
  }

  /** What the registry renders a histogram from (its `le` labels apart, in prom-client's own); here the same as `get`. */
  getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<RequestLabels>>> {
    return this.get();
  }
}

/**
 * The gateway's Prometheus metrics. The ones counted per request (requests, durations, requests in
 * flight) are kept in plain numbers found with one map lookup, and read when scraped.
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
  readonly #series = new RequestSeriesTable();
  /** Requests in flight by service: a counter object each, so the request path updates a field. */
  readonly #inflight = new Map<string, { value: number }>();

  constructor(registry: Registry) {
    this.requests = new RequestCounter(this.#series, registry);
    this.duration = new RequestDurationHistogram(this.#series, registry);
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
    const inflight = this.#inflight;
    this.inflight = new Gauge({
      name: 'portico_gateway_inflight_requests',
      help: 'Requests the gateway is forwarding now, by service.',
      labelNames: ['service'],
      registers: [registry],
      collect() {
        for (const [service, count] of inflight) this.set({ service }, count.value);
      },
    });
  }

  /** Count a finished request and observe its duration. */
  observe(service: string, route: string, method: string, code: number, seconds: number): void {
    const series = this.#series.get(service, route, method, code);
    series.count += 1;
    series.sum += seconds;
    let bucket = 0;
    while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] as number)) bucket += 1;
    (series.buckets[bucket] as number) += 1;
  }

  /** The service's count of requests in flight: `value` is read when the metrics are scraped. */
  inflightOf(service: string): { value: number } {
    let count = this.#inflight.get(service);
    if (count === undefined) {
      count = { value: 0 };
      this.#inflight.set(service, count);
    }
    return count;
  }
}
