import { type ServiceRoute } from './route-table.js';
import { type Upstream } from './upstream.js';

export interface OutlierDetectorOptions {
  /** Failures in a row (connection errors, 5xx answers) that eject an instance (default 3). */
  consecutiveFailures?: number;
  /** The first ejection lasts this long, the n-th n times as long (default 5 s). */
  baseEjectionMs?: number;
  /** No ejection lasts longer than this (default 5 min). */
  maxEjectionMs?: number;
  /** Never more than this share of a service's instances is ejected at once (default 0.5). */
  maxEjectedShare?: number;
  onEject?: (service: string, upstream: Upstream, forMs: number) => void;
}

/**
 * Passive outlier detection (as Envoy's): an instance that fails several requests in a row is taken out
 * of balancing for a while, longer each time it happens again, so a crashed or sick instance stops
 * costing retries well before its health checks notice. At most a set share of a service's instances
 * is ever out, so a service-wide failure never empties the route.
 */
export class OutlierDetector {
  readonly #threshold: number;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #maxShare: number;
  readonly #onEject: OutlierDetectorOptions['onEject'];

  constructor(options: OutlierDetectorOptions = {}) {
    this.#threshold = options.consecutiveFailures ?? 3;
    this.#baseMs = options.baseEjectionMs ?? 5_000;
    this.#maxMs = options.maxEjectionMs ?? 300_000;
    this.#maxShare = options.maxEjectedShare ?? 0.5;
    this.#onEject = options.onEject;
  }

  success(upstream: Upstream): void {
    upstream.consecutiveFailures = 0;
  }

  failure(route: ServiceRoute, upstream: Upstream): void {
    upstream.consecutiveFailures += 1;
    if (upstream.ejected || upstream.consecutiveFailures < this.#threshold) return;
    let ejected = 1;
    for (const other of route.upstreams) if (other.ejected) ejected += 1;
    if (ejected / route.upstreams.length > this.#maxShare) return;
    upstream.ejected = true;
    upstream.ejections += 1;
    upstream.consecutiveFailures = 0;
    const forMs = Math.min(this.#maxMs, this.#baseMs * upstream.ejections);
    setTimeout(() => {
      upstream.ejected = false;
    }, forMs).unref();
    this.#onEject?.(route.service, upstream, forMs);
  }
}
