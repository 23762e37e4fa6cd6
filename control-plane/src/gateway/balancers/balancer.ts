import { type Upstream } from '../upstream.js';

/**
 * Picks the instance for one request among a service's routable upstreams, skipping those in
 * `exclude` (the ones a retry has tried already) and, while any other is left, those ejected by outlier
 * detection. Returns `undefined` when none is left.
 * A balancer is made per service snapshot and may keep state in it.
 */
export interface Balancer {
  pick(upstreams: readonly Upstream[], exclude?: ReadonlySet<Upstream>): Upstream | undefined;
}

export type BalancerKind = 'round_robin' | 'least_request';
