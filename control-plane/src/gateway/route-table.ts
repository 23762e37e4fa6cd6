import { type Balancer, type BalancerKind } from './balancers/balancer.js';
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

function makeBalancer(kind: BalancerKind): Balancer {
  return kind === 'least_request' ? new LeastRequestBalancer() : new RoundRobinBalancer();
}

/**
 * An immutable snapshot of where every service's requests go, looked up in O(1) by service name.
 * A new table is built from each provider snapshot off the request path and swapped in whole; a
 * service whose targets did not change keeps its `ServiceRoute` (and so its balancer state and its
 * upstreams' in-flight counts), and every upstream keeps its pooled connections.
 */
export class RouteTable {
  static readonly empty = new RouteTable(new Map());

  private constructor(readonly services: ReadonlyMap<string, ServiceRoute>) {}

  route(service: string): ServiceRoute | undefined {
    return this.services.get(service);
  }

  /** The table for `snapshot`, reusing what it can of `previous`. */
  static build(snapshot: TargetSnapshot, previous: RouteTable, pools: UpstreamPools, balancer: BalancerKind): RouteTable {
    const services = new Map<string, ServiceRoute>();
    const origins = new Set<string>();
    for (const [service, targets] of snapshot) {
      const before = previous.services.get(service);
      if (before?.targets === targets) {
        services.set(service, before);
      } else {
        const reusable = new Map(before?.upstreams.map((upstream) => [upstream.instanceId, upstream]));
        const upstreams = targets.map((target) => {
          const origin = `http://${target.address.includes(':') ? `[${target.address}]` : target.address}:${target.port}`;
          const kept = reusable.get(target.instanceId);
          if (kept !== undefined && kept.origin === origin && kept.weight === target.weight) return kept;
          return new Upstream(target.instanceId, origin, origin.slice('http://'.length), target.weight, pools.get(origin));
        });
        services.set(service, { service, targets, upstreams, balancer: makeBalancer(balancer) });
      }
      for (const upstream of (services.get(service) as ServiceRoute).upstreams) origins.add(upstream.origin);
    }
    // Pools no service routes to any more finish their in-flight requests and close.
    pools.retain(origins);
    return new RouteTable(services);
  }
}
