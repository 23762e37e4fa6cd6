import { Http1Pool } from './http1/upstream-pool.js';

/**
 * One instance the gateway can send requests to: its address, weight, and the live counts the
 * balancers and the drain rely on. Its connection pool belongs to `UpstreamPools`, is made on the first
 * request (a fleet of instances nobody calls costs no pools) and outlives route-table snapshots, so a
 * rebuild never drops warm keep-alive connections.
 */
export class Upstream {
  /** Requests sent and not yet finished (least-request balancing, drain). */
  inflight = 0;
  /** Smooth weighted round robin's running weight (owned by the service's round-robin state). */
  currentWeight = 0;
  /** Passive outlier detection (`OutlierDetector`): failures in a row, times ejected, and whether it is out now. */
  consecutiveFailures = 0;
  ejections = 0;
  ejected = false;

  #pool: Http1Pool | undefined;

  constructor(
    readonly instanceId: string,
    readonly origin: string,
    /** `address:port` (an IPv6 address in brackets), the `Host` an upstream request carries. */
    readonly host: string,
    readonly weight: number,
    private readonly pools: UpstreamPools,
    readonly address = '',
    readonly port = 0,
  ) {}

  get pool(): Http1Pool {
    this.#pool ??= this.pools.get(this);
    return this.#pool;
  }
}

export interface UpstreamPoolOptions {
  connectTimeoutMs: number;
  /** Idle keep-alive connections are closed after this long. */
  keepAliveTimeoutMs: number;
  /** At most this many connections per instance. */
  connections: number;
}

/**
 * Keep-alive connection pools by origin (`http://address:port`), shared by every upstream with that
 * origin. Upstreams are counted in (`acquire`) and out (`release`); when an origin's last upstream
 * leaves, its pool is closed gracefully: in-flight requests finish, no new one starts.
 */
export class UpstreamPools {
  readonly #pools = new Map<string, Http1Pool>();
  readonly #users = new Map<string, number>();
  readonly #options: UpstreamPoolOptions;

  constructor(options: UpstreamPoolOptions) {
    this.#options = options;
  }

  /** The pool of `upstream`'s origin, made on first use. */
  get(upstream: Pick<Upstream, 'origin' | 'address' | 'port' | 'host'>): Http1Pool {
    let pool = this.#pools.get(upstream.origin);
    if (pool === undefined) {
      pool = new Http1Pool({ address: upstream.address, port: upstream.port, host: upstream.host }, this.#options);
      this.#pools.set(upstream.origin, pool);
    }
    return pool;
  }

  /** An upstream with this origin has joined a route table. */
  acquire(origin: string): void {
    this.#users.set(origin, (this.#users.get(origin) ?? 0) + 1);
  }

  /** An upstream with this origin has left every route table; returns true when it was the origin's last. */
  release(origin: string): boolean {
    const users = (this.#users.get(origin) ?? 1) - 1;
    if (users > 0) {
      this.#users.set(origin, users);
      return false;
    }
    this.#users.delete(origin);
    const pool = this.#pools.get(origin);
    this.#pools.delete(origin);
    void pool?.close().catch(() => undefined);
    return true;
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    this.#users.clear();
    await Promise.all(pools.map((pool) => pool.close().catch(() => undefined)));
  }
}
