import { type Upstream } from '../upstream.js';
import { type Balancer } from './balancer.js';

/**
 * Smooth weighted round robin (nginx's): over any window of total-weight picks each instance gets its
 * weight's share, and the picks are interleaved rather than bunched. O(n) per pick over a service's
 * instances, with no allocation.
 */
export class RoundRobinBalancer implements Balancer {
  pick(upstreams: readonly Upstream[], exclude?: ReadonlySet<Upstream>): Upstream | undefined {
    if (upstreams.length === 1) {
      const only = upstreams[0] as Upstream;
      return exclude?.has(only) === true ? undefined : only;
    }
    // Ejected instances are skipped, unless nothing else is left.
    return this.#pick(upstreams, exclude, true) ?? this.#pick(upstreams, exclude, false);
  }

  #pick(upstreams: readonly Upstream[], exclude: ReadonlySet<Upstream> | undefined, skipEjected: boolean): Upstream | undefined {
    let best: Upstream | undefined;
    let total = 0;
    for (const upstream of upstreams) {
      if (exclude?.has(upstream) === true || (skipEjected && upstream.ejected)) continue;
      upstream.currentWeight += upstream.weight;
      total += upstream.weight;
      if (best === undefined || upstream.currentWeight > best.currentWeight) best = upstream;
    }
    if (best !== undefined) best.currentWeight -= total;
    return best;
  }
}
