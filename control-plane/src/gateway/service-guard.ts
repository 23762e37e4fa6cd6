import { CircuitBreaker, type CircuitBreakerOptions, type CircuitState } from './circuit-breaker.js';

export interface ServiceGuardOptions {
  /** The bulkhead: at most this many requests in flight to one service (default 1,000). */
  maxConcurrent?: number;
  breaker?: Omit<CircuitBreakerOptions, 'onStateChange'>;
  onStateChange?: (labels: GuardLabels, state: CircuitState) => void;
}

/** Whose guard it is: a service's (`route` empty), or one route's own. */
export interface GuardLabels {
  service: string;
  route: string;
}

/** Why a request was turned away before it reached any instance. */
export type Refusal = { reason: 'circuit_open'; retryAfterMs: number } | { reason: 'overloaded' };

/**
 * What protects one service, whatever route reaches it (or one route with guard settings of its own):
 * its circuit breaker and its bulkhead (a cap on requests in flight). It outlives route-table rebuilds.
 */
export class ServiceGuard {
  readonly breaker: CircuitBreaker;
  readonly #maxConcurrent: number;
  inflight = 0;

  constructor(
    readonly labels: GuardLabels,
    options: ServiceGuardOptions,
  ) {
    this.#maxConcurrent = options.maxConcurrent ?? 1_000;
    this.breaker = new CircuitBreaker({ ...options.breaker, onStateChange: (state) => options.onStateChange?.(labels, state) });
  }

  /** Let a request in (it must then `leave`), or say why not. */
  enter(): Refusal | undefined {
    if (this.inflight >= this.#maxConcurrent) return { reason: 'overloaded' };
    if (!this.breaker.allow()) return { reason: 'circuit_open', retryAfterMs: this.breaker.retryAfterMs };
    this.inflight += 1;
    return undefined;
  }

  /** The request is over: `true` it succeeded, `false` it failed, `undefined` it had no outcome (the client left). */
  leave(outcome: boolean | undefined): void {
    this.inflight -= 1;
    if (outcome === undefined) this.breaker.cancel();
    else this.breaker.record(outcome);
  }
}
