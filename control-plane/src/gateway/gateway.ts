import { createSecureServer } from 'node:http2';
import { type AddressInfo } from 'node:net';
import { type Registry } from 'prom-client';
import { type RegistryBackend } from '../registry/registry-backend.js';
import { type BalancerKind } from './balancers/balancer.js';
import { type GatewayRoute } from './gateway-route.js';
import { type Middleware } from './middlewares/middleware.js';
import { type PartAnswer } from './middlewares/aggregate/aggregate.js';
import { compileMiddlewares } from './middlewares/pipeline.js';
import { MemoryBuckets, RedisBuckets } from './middlewares/rate-limit/rate-limit.js';
import { type Redis } from 'ioredis';
import { GatewayMetrics } from './gateway-metrics.js';
import { RegistryProvider, type TargetSnapshot } from './providers/registry-provider.js';
import { createHttp1Server, type Http1Server } from './http1/http1-server.js';
import { GatewayProxy } from './proxy.js';
import { RouteTable } from './route-table.js';
import { UpstreamPools } from './upstream.js';

export interface GatewayOptions {
  registry: Pick<RegistryBackend, 'services' | 'instances' | 'subscribe'>;
  /** The explicit routes, followed live (`RouteService`); without it, only the discovery rule routes. */
  routes?: { list(): Promise<GatewayRoute[]>; subscribe(listener: () => void): () => void };
  /** Where the gateway's metrics are registered (the control plane's registry when run in-process). */
  metricsRegistry: Registry;
  logger?: { info(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
  balancer?: BalancerKind;
  /** Per attempt: how long an instance may take to start answering (default 30 s). */
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Attempts per request, the first included (default 3). */
  maxAttempts?: number;
  /** The bulkhead: requests in flight to one service at most (default 1,000); more get 503. */
  maxConcurrentPerService?: number;
  /** Connections per instance (default 128). */
  connectionsPerInstance?: number;
  /** Redis, for rate limits shared by every gateway replica (`rateLimit.store: redis`). */
  redis?: Redis;
  /** Serve TLS (PEM certificate chain and key), offering HTTP/2 and HTTP/1.1 by ALPN. */
  tls?: { cert: Buffer | string; key: Buffer | string };
  /** Idle keep-alive connections to instances are closed after this long (default 30 s). */
  keepAliveTimeoutMs?: number;
}

/**
 * The data plane: `http://gateway/<service>/<path>` reaches a passing instance of `<service>` with
 * `<path>`. A `RegistryProvider` follows the registry's events and publishes target snapshots; each is
 * turned into a `RouteTable` off the request path and swapped in; `GatewayProxy` serves requests from
 * whatever table is current. It listens on its own port and serves nothing but proxied requests: the
 * admin API and the Consul-compatible API are never reachable through it.
 */
export class Gateway {
  readonly #options: GatewayOptions;
  readonly #pools: UpstreamPools;
  readonly #provider: RegistryProvider;
  /** Plain HTTP: the gateway's own HTTP/1.1 engine. TLS: node:http2, offering HTTP/2 and HTTP/1.1 by ALPN. */
  readonly #server: Http1Server | ReturnType<typeof createSecureServer>;
  readonly #proxy: GatewayProxy;
  #table = RouteTable.empty;
  #snapshot: TargetSnapshot = new Map();
  #routes: readonly GatewayRoute[] = [];
  /** Route reloads, one after another, so the last change always wins. */
  #reloading: Promise<void> = Promise.resolve();
  #unsubscribeRoutes: (() => void) | undefined;
  /** Each route's middlewares, kept while the route is unchanged so their state (rate-limit buckets) lasts. */
  #compiled = new Map<string, { updatedAt: number; middlewares: readonly Middleware[] }>();
  readonly #buckets: { memory: MemoryBuckets; redis?: RedisBuckets };

  constructor(options: GatewayOptions) {
    this.#options = options;
    this.#pools = new UpstreamPools({
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? 30_000,
      connections: options.connectionsPerInstance ?? 128,
    });
    this.#buckets = { memory: new MemoryBuckets(), ...(options.redis === undefined ? {} : { redis: new RedisBuckets(options.redis) }) };
    this.#provider = new RegistryProvider({ registry: options.registry, publish: (snapshot) => this.#swap(snapshot), logger: options.logger });
    const proxy = (this.#proxy = new GatewayProxy({
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      maxAttempts: options.maxAttempts ?? 3,
      retryBudgetRatio: 0.2,
      guard: { maxConcurrent: options.maxConcurrentPerService ?? 1_000 },
      metrics: new GatewayMetrics(options.metricsRegistry),
      routes: () => this.#table,
      tls: options.tls !== undefined,
    }));
    if (options.tls === undefined) {
      // The hot path: node:http's IncomingMessage/ServerResponse cost more than the whole proxying
      // does, so plain HTTP is served by an engine of the gateway's own on Node's llhttp parser.
      this.#server = createHttp1Server({ request: proxy.handle, upgrade: proxy.upgrade }, { keepAliveTimeoutMs: 65_000, headersTimeoutMs: 60_000 });
    } else {
      // HTTP/2's compatibility API has the members the proxy uses (method, url, headers, rawHeaders,
      // socket; writeHead with a raw header list, write, end, 'drain', 'close'), so one handler serves both.
      const handle = proxy.handle as unknown as Parameters<typeof createSecureServer>[1];
      const server = createSecureServer({ cert: options.tls.cert, key: options.tls.key, allowHTTP1: true }, handle);
      // Upgrades arrive on HTTP/1.1 connections.
      server.on('upgrade', proxy.upgrade);
      this.#server = server;
    }
  }

  /** The table requests are routed by now. */
  get routes(): RouteTable {
    return this.#table;
  }

  /** Follow the registry (the first full read included) and listen. */
  async listen(options: { host: string; port: number }): Promise<AddressInfo> {
    if (this.#options.routes !== undefined) {
      this.#unsubscribeRoutes = this.#options.routes.subscribe(() => {
        this.#reloading = this.#reloading.then(() => this.#reloadRoutes());
      });
      await this.#reloadRoutes();
    }
    await this.#provider.start();
    const server = this.#server as Pick<Http1Server, 'once' | 'off' | 'listen'>;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return this.#server.address() as AddressInfo;
  }

  /** Resolves once every registry change seen so far is in the route table. */
  async settled(): Promise<void> {
    await this.#reloading;
    await this.#provider.settled();
  }

  /** Stop accepting connections, let in-flight requests finish, then close the upstream pools. */
  async close(): Promise<void> {
    this.#provider.close();
    this.#unsubscribeRoutes?.();
    // Long-lived streams end cleanly first, or they would hold the server open until the timeout.
    this.#proxy.closeStreams();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    if ('closeIdleConnections' in this.#server) this.#server.closeIdleConnections();
    await closed;
    await this.#pools.close();
  }

  #middlewares(route: GatewayRoute): readonly Middleware[] {
    const known = this.#compiled.get(route.id);
    if (known !== undefined && known.updatedAt === route.updatedAt.getTime()) return known.middlewares;
    const middlewares = compileMiddlewares(route, {
      buckets: this.#buckets,
      call: (service, path, headers, timeoutMs) => this.#call(service, path, headers, timeoutMs),
      defaultTimeoutMs: this.#options.requestTimeoutMs ?? 30_000,
      onError: (error) => this.#options.logger?.error({ err: error, route: route.name }, 'a gateway middleware failed'),
    });
    this.#compiled.set(route.id, { updatedAt: route.updatedAt.getTime(), middlewares });
    return middlewares;
  }

  /** One GET to a service through its balancer and pool, for aggregation; never throws. */
  #call(service: string, path: string, headers: string[], timeoutMs: number): Promise<PartAnswer> {
    const route = this.#table.route(service);
    if (route === undefined) return Promise.resolve({ ok: false, code: 'PORTICO_ERR_GATEWAY_SERVICE_NOT_FOUND', message: `No service "${service}" is routed here.` });
    const upstream = route.balancer.pick(route.upstreams);
    if (upstream === undefined) {
      return Promise.resolve({ ok: false, code: 'PORTICO_ERR_GATEWAY_NO_HEALTHY_INSTANCE', message: `The service "${service}" has no instance passing its health checks.` });
    }
    const timedOut: PartAnswer = { ok: false, code: 'PORTICO_ERR_GATEWAY_UPSTREAM_TIMEOUT', message: `"${service}" did not answer within ${timeoutMs} ms.` };
    upstream.inflight += 1;
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let status = 0;
      let contentType = '';
      let abort: ((reason?: Error) => void) | undefined;
      let settled = false;
      const settle = (answer: PartAnswer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        upstream.inflight -= 1;
        resolve(answer);
      };
      // The whole answer, body included, within the part's time.
      const timer = setTimeout(() => {
        settle(timedOut);
        abort?.();
      }, timeoutMs);
      upstream.pool.dispatch(
        { method: 'GET', path, headers, body: null, headersTimeout: timeoutMs },
        {
          onConnect: (abortExchange) => (abort = abortExchange),
          onHeaders: (statusCode, rawHeaders) => {
            status = statusCode;
            for (let i = 0; i < rawHeaders.length; i += 2) if ((rawHeaders[i] as string).toLowerCase() === 'content-type') contentType = rawHeaders[i + 1] as string;
            return true;
          },
          // A chunk is a view into the socket's buffer: copied, since it is kept past the call.
          onData: (chunk) => chunks.push(Buffer.from(chunk)) > 0,
          onComplete: () => settle({ ok: true, status, contentType, body: Buffer.concat(chunks).toString('utf8') }),
          onError: (error) =>
            settle(error.code === 'ERR_UPSTREAM_HEADERS_TIMEOUT' ? timedOut : { ok: false, code: 'PORTICO_ERR_GATEWAY_UPSTREAM_UNREACHABLE', message: `No answer from "${service}" (${error.code ?? error.message}).` }),
        },
      );
    });
  }

  async #reloadRoutes(): Promise<void> {
    try {
      this.#routes = (await this.#options.routes?.list()) ?? [];
      const ids = new Set(this.#routes.map((route) => route.id));
      for (const id of this.#compiled.keys()) if (!ids.has(id)) this.#compiled.delete(id);
      this.#swap(this.#snapshot);
    } catch (error) {
      // Keep routing by the routes already loaded; the next change tries again.
      this.#options.logger?.error({ err: error }, 'loading the gateway routes failed');
    }
  }

  #swap(snapshot: TargetSnapshot): void {
    this.#snapshot = snapshot;
    this.#table = RouteTable.build(snapshot, this.#routes, this.#table, this.#pools, this.#options.balancer ?? 'round_robin', (route) => this.#middlewares(route));
    // Instances no route reaches any more: their pools finish in-flight requests and close, and their
    // long-lived streams end cleanly so clients reconnect elsewhere.
    if (this.#table.retired.length > 0) this.#proxy.closeStreams(this.#table.retired);
    this.#proxy.retainRouteGuards(this.#table.routeGuardKeys);
  }
}
