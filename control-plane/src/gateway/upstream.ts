import { Pool } from 'undici';

/**
 * One instance the gateway can send requests to: its address, weight, and the live counts the
 * balancers and the drain rely on. The connection pool belongs to the `UpstreamPools` that made it and
 * outlives route-table snapshots, so a rebuild never drops warm keep-alive connections.
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

  constructor(
    readonly instanceId: string,
    readonly origin: string,
    /** `address:port` (an IPv6 address in brackets), the `Host` an upstream request carries. */
    readonly host: string,
    readonly weight: number,
    readonly pool: Pool,
    readonly address = '',
    readonly port = 0,
  ) {}
}

export interface UpstreamPoolOptions {
  connectTimeoutMs: number;
  /** Idle keep-alive connections are closed after this long. */
  keepAliveTimeoutMs: number;
  /** At most this many connections per instance. */
  connections: number;
}

/**
 * Keep-alive connection pools by origin (`http://address:port`), shared by every snapshot that routes to
 * that origin. A pool no snapshot uses any more is closed gracefully: its in-flight requests finish,
 * no new one starts.
 */
export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();
  readonly #options: UpstreamPoolOptions;

  constructor(options: UpstreamPoolOptions) {
    this.#options = options;
  }

  get(origin: string): Pool {
    let pool = this.#pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.#options.connections,
        pipelining: 1,
        connectTimeout: this.#options.connectTimeoutMs,
        keepAliveTimeout: this.#options.keepAliveTimeoutMs,
        keepAliveMaxTimeout: this.#options.keepAliveTimeoutMs,
      });
      this.#pools.set(origin, pool);
    }
    return pool;
  }

  /** Close the pools of origins not in `inUse`, letting their in-flight requests finish; returns those origins. */
  retain(inUse: ReadonlySet<string>): string[] {
    const retired: string[] = [];
    for (const [origin, pool] of this.#pools) {
      if (inUse.has(origin)) continue;
      this.#pools.delete(origin);
      retired.push(origin);
      void pool.close().catch(() => undefined);
    }
    return retired;
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((pool) => pool.close().catch(() => undefined)));
  }
}
