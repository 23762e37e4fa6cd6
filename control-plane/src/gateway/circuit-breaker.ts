export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** The rolling window failures are counted over (default 10 s, in 10 buckets). */
  windowMs?: number;
  /** No opening on fewer requests than this in the window (default 20). */
  minimumRequests?: number;
  /** Open when at least this share of the window's requests failed (default 0.5). */
  failureRatio?: number;
  /** How long the circuit stays open before letting a probe through (default 5 s). */
  openMs?: number;
  /** Told of every change of state. */
  onStateChange?: (state: CircuitState) => void;
  now?: () => number;
}

const BUCKETS = 10;

/**
 * A circuit breaker for one service: when most of its recent requests fail (5xx, timeouts, connection
 * errors), the gateway answers 503 at once for a while instead of piling load on a service that cannot
 * serve it; then one probe request is let through (half-open), and its outcome closes the circuit or
 * opens it again.
 */
export class CircuitBreaker {
  readonly #windowMs: number;
  readonly #minimum: number;
  readonly #ratio: number;
  readonly #openMs: number;
  readonly #onStateChange: CircuitBreakerOptions['onStateChange'];
  readonly #now: () => number;
  readonly #requests = new Array<number>(BUCKETS).fill(0);
  readonly #failures = new Array<number>(BUCKETS).fill(0);
  #bucket = 0;
  #bucketStarted: number;
  #state: CircuitState = 'closed';
  #openedAt = 0;
  #probing = false;

  constructor(options: CircuitBreakerOptions = {}) {
    this.#windowMs = options.windowMs ?? 10_000;
    this.#minimum = options.minimumRequests ?? 20;
    this.#ratio = options.failureRatio ?? 0.5;
    this.#openMs = options.openMs ?? 5_000;
    this.#onStateChange = options.onStateChange;
    this.#now = options.now ?? (() => performance.now());
    this.#bucketStarted = this.#now();
  }

  get state(): CircuitState {
    return this.#state;
  }

  /** Milliseconds until an open circuit lets a probe through (for `Retry-After`). */
  get retryAfterMs(): number {
    return this.#state === 'open' ? Math.max(0, this.#openedAt + this.#openMs - this.#now()) : 0;
  }

  /** May a request go through now? In half-open state, only one probe at a time. */
  allow(): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open') {
      if (this.#now() - this.#openedAt < this.#openMs) return false;
      this.#set('half_open');
    }
    if (this.#probing) return false;
    this.#probing = true;
    return true;
  }

  /** A request `allow` let through ended without an outcome (the client went away): it counts for nothing. */
  cancel(): void {
    if (this.#state === 'half_open') this.#probing = false;
  }

  /** The outcome of a request `allow` let through. */
  record(success: boolean): void {
    if (this.#state === 'half_open') {
      this.#probing = false;
      if (success) {
        this.#requests.fill(0);
        this.#failures.fill(0);
        this.#set('closed');
      } else {
        this.#open();
      }
      return;
    }
    if (this.#state === 'open') return;
    this.#rotate();
    this.#requests[this.#bucket] = (this.#requests[this.#bucket] as number) + 1;
    if (success) return;
    this.#failures[this.#bucket] = (this.#failures[this.#bucket] as number) + 1;
    let requests = 0;
    let failures = 0;
    for (let i = 0; i < BUCKETS; i++) {
      requests += this.#requests[i] as number;
      failures += this.#failures[i] as number;
    }
    if (requests >= this.#minimum && failures / requests >= this.#ratio) this.#open();
  }

  #open(): void {
    this.#openedAt = this.#now();
    this.#set('open');
  }

  #set(state: CircuitState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#onStateChange?.(state);
  }

  /** Move the window on to the bucket for now, emptying the buckets that fell out of it. */
  #rotate(): void {
    const bucketMs = this.#windowMs / BUCKETS;
    const now = this.#now();
    const steps = Math.floor((now - this.#bucketStarted) / bucketMs);
    if (steps <= 0) return;
    for (let i = 0; i < Math.min(steps, BUCKETS); i++) {
      this.#bucket = (this.#bucket + 1) % BUCKETS;
      this.#requests[this.#bucket] = 0;
      this.#failures[this.#bucket] = 0;
    }
    this.#bucketStarted += steps * bucketMs;
  }
}
