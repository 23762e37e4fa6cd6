import { type Balancer, type BalancerKind } from './balancers/balancer.js';
import { type GatewayRoute, hasOwnGuard, type RouteResilience } from './gateway-route.js';
import { type Middleware } from './middlewares/middleware.js';
import { LeastRequestBalancer } from './balancers/least-request.js';
import { RoundRobinBalancer } from './balancers/round-robin.js';
import { type Target, type TargetSnapshot } from './providers/registry-provider.js';
import { Upstream, type UpstreamPools } from './upstream.js';

/** Where one service's requests go: its routable upstreams and the balancer choosing among them. */
export interface ServiceRoute {
  readonly service: string;
  readonly targets: readonly Target[];
  readonly upstreams: readonly Upstream[];
  readonly balancer: Balancer;
}

/** Where one request goes: the route that matched it and the path to forward. */
export interface RouteMatch {
  /** The route's name (`discovery` for the `/<service>/<path>` rule): the metrics' `route` label. */
  route: string;
  /** The service named by the route. */
  serviceName: string;
  /** Its upstreams; `undefined` when it has no instance at all. */
  service: ServiceRoute | undefined;
  /** The path (and query) sent to the instance. */
  path: string;
  /** `X-Forwarded-Prefix`: what was taken off the front of the path. */
  prefix: string;
  /** The route's per-attempt timeout; `null`: the gateway's default. */
  timeoutMs: number | null;
  /** What the request goes through first (CORS, authentication, rate limits), in order. */
  middlewares: readonly Middleware[];
  /** The route's resilience settings (`{}`: the gateway's defaults). */
  resilience: RouteResilience;
  /**
   * Which guard (bulkhead, circuit breaker) counts the request: the route's own when it has guard
   * settings (the key changes with them, so new settings start a fresh guard), otherwise the service's.
   */
  guardKey: string;
}

/** An explicit route, ready for matching. */
interface CompiledRoute {
  route: GatewayRoute;
  service: ServiceRoute | undefined;
  middlewares: readonly Middleware[];
  guardKey: string;
}

const NO_MIDDLEWARES: readonly Middleware[] = [];
const DEFAULT_RESILIENCE: RouteResilience = Object.freeze({});

const DISCOVERY = 'discovery';

function makeBalancer(kind: BalancerKind): Balancer {
  return kind === 'least_request' ? new LeastRequestBalancer() : new RoundRobinBalancer();
}

/**
 * A service's route whose upstreams are made on first use: a fleet of instances that get no traffic
 * through this gateway costs no `Upstream` objects (nor pools). Once made, a later snapshot of the
 * service carries its upstreams over (counts, ejections, pools).
 */
class LazyServiceRoute implements ServiceRoute {
  #upstreams: Upstream[] | undefined;

  constructor(
    readonly service: string,
    readonly targets: readonly Target[],
    readonly balancer: Balancer,
    private readonly pools: UpstreamPools,
  ) {}

  get materialized(): boolean {
    return this.#upstreams !== undefined;
  }

  get upstreams(): readonly Upstream[] {
    this.#upstreams ??= this.#make([]).upstreams;
    return this.#upstreams;
  }

  /** Make the upstreams now, reusing those of `before` that stay; returns the ones that do not. */
  carryOver(before: readonly Upstream[]): Upstream[] {
    const { upstreams, leftovers } = this.#make(before);
    this.#upstreams = upstreams;
    return leftovers;
  }

  /** The same upstreams under another balancer (an explicit route's own). */
  withBalancer(balancer: Balancer): ServiceRoute {
    const upstreams = (): readonly Upstream[] => this.upstreams;
    return {
      service: this.service,
      targets: this.targets,
      balancer,
      get upstreams() {
        return upstreams();
      },
    };
  }

  #make(before: readonly Upstream[]): { upstreams: Upstream[]; leftovers: Upstream[] } {
    const reusable = new Map(before.map((upstream) => [upstream.instanceId, upstream]));
    const upstreams = this.targets.map((target) => {
      const origin = `http://${target.address.includes(':') ? `[${target.address}]` : target.address}:${target.port}`;
      const kept = reusable.get(target.instanceId);
      if (kept !== undefined && kept.origin === origin && kept.weight === target.weight) {
        reusable.delete(target.instanceId);
        return kept;
      }
      this.pools.acquire(origin);
      return new Upstream(target.instanceId, origin, origin.slice('http://'.length), target.weight, this.pools, target.address, target.port);
    });
    return { upstreams, leftovers: [...reusable.values()] };
  }
}

/**
 * An immutable snapshot of where every service's requests go, looked up in O(1) by service name.
 * A new table is built from each provider snapshot off the request path and swapped in whole; a
 * service whose targets did not change keeps its `ServiceRoute` (and so its balancer state and its
 * upstreams' in-flight counts), and every upstream keeps its pooled connections. Upstreams are made
 * when a service first gets a request (`LazyServiceRoute`).
 */
export class RouteTable {
  static readonly empty = new RouteTable(new Map(), new Map(), []);

  private constructor(
    readonly services: ReadonlyMap<string, LazyServiceRoute>,
    /** Explicit routes by path prefix, each list host-specific first, then by name. */
    private readonly explicit: ReadonlyMap<string, readonly CompiledRoute[]>,
    /** Origins no service routes to any more since the previous table: their pools are closing. */
    readonly retired: readonly string[],
  ) {}

  /** The guard keys of the explicit routes guarded on their own (`route:…`). */
  get routeGuardKeys(): Set<string> {
    const keys = new Set<string>();
    for (const list of this.explicit.values()) for (const { guardKey, route } of list) if (guardKey !== route.service) keys.add(guardKey);
    return keys;
  }

  route(service: string): ServiceRoute | undefined {
    return this.services.get(service);
  }

  /**
   * The route for a request: the explicit route with the longest prefix of `path` (at a segment
   * boundary) matching its host and method, a host-specific route before one for any host; otherwise
   * the discovery rule, `/<service>/<path>`. `path` is normalised; `query` is passed on as it is.
   */
  match(host: string, method: string, path: string, query: string): RouteMatch | undefined {
    if (this.explicit.size > 0) {
      // The path's prefixes at segment boundaries, longest first: /a/b/c, /a/b, /a, /.
      let end = path.length > 1 && path.endsWith('/') ? path.length - 1 : path.length;
      if (end === 1) end = 0;
      for (;;) {
        const prefix = end === 0 ? '/' : path.slice(0, end);
        const found = this.explicit.get(prefix)?.find(
          ({ route }) => (route.host === null || route.host === host) && (route.methods === null || route.methods.includes(method)),
        );
        if (found !== undefined) {
          const { route } = found;
          const rest = route.stripPrefix && prefix !== '/' ? path.slice(prefix.length) || '/' : path;
          return {
            route: route.name,
            serviceName: route.service,
            service: found.service,
            path: `${rest}${query}`,
            prefix: route.stripPrefix && prefix !== '/' ? prefix : '',
            timeoutMs: route.timeoutMs,
            middlewares: found.middlewares,
            resilience: route.resilience,
            guardKey: found.guardKey,
          };
        }
        if (end === 0) break;
        end = path.lastIndexOf('/', end - 1);
      }
    }
    const slash = path.indexOf('/', 1);
    const name = slash < 0 ? path.slice(1) : path.slice(1, slash);
    const service = this.services.get(name);
    if (service === undefined) return undefined;
    return { route: DISCOVERY, serviceName: name, service, path: `${slash < 0 ? '/' : path.slice(slash)}${query}`, prefix: `/${name}`, timeoutMs: null, middlewares: NO_MIDDLEWARES, resilience: DEFAULT_RESILIENCE, guardKey: name };
  }

  /**
   * The table for `snapshot` and the explicit `routes`, reusing what it can of `previous`: unchanged
   * services keep their `ServiceRoute`, instances that stay keep their `Upstream`. Work is proportional
   * to the services and the instances that changed, so a fleet-wide registration storm stays cheap.
   */
  static build(
    snapshot: TargetSnapshot,
    routes: readonly GatewayRoute[],
    previous: RouteTable,
    pools: UpstreamPools,
    balancer: BalancerKind,
    compile: (route: GatewayRoute) => readonly Middleware[] = () => NO_MIDDLEWARES,
  ): RouteTable {
    const services = new Map<string, LazyServiceRoute>();
    const retired: string[] = [];
    const release = (upstream: Upstream) => {
      if (pools.release(upstream.origin)) retired.push(upstream.origin);
    };
    for (const [service, targets] of snapshot) {
      const before = previous.services.get(service);
      if (before?.targets === targets) {
        services.set(service, before);
        continue;
      }
      const next = new LazyServiceRoute(service, targets, makeBalancer(balancer), pools);
      if (before?.materialized === true) for (const gone of next.carryOver(before.upstreams)) release(gone);
      services.set(service, next);
    }
    for (const [service, before] of previous.services) if (!snapshot.has(service) && before.materialized) for (const gone of before.upstreams) release(gone);

    const explicit = new Map<string, CompiledRoute[]>();
    for (const route of routes) {
      const shared = services.get(route.service);
      // A route with its own balancer kind balances over the same upstreams (and their counts).
      const service = shared === undefined || route.balancer === balancer ? shared : shared.withBalancer(makeBalancer(route.balancer));
      const list = explicit.get(route.pathPrefix) ?? [];
      const guardKey = hasOwnGuard(route.resilience) ? `route:${route.name}:${JSON.stringify(route.resilience)}` : route.service;
      list.push({ route, service, middlewares: compile(route), guardKey });
      explicit.set(route.pathPrefix, list);
    }
    for (const list of explicit.values()) {
      list.sort((a, b) => (a.route.host === null ? 1 : 0) - (b.route.host === null ? 1 : 0) || (a.route.name < b.route.name ? -1 : 1));
    }
    return new RouteTable(services, explicit, retired);
  }
}
