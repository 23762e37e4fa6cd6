import { type Upstream } from '../upstream.js';
import { type Balancer } from './balancer.js';

/**
 * Least request with the power of two choices: two instances drawn at random, the one with fewer
 * requests in flight per unit of weight wins. Nearly as good as scanning every instance, at O(1), and
 * without the herd a global minimum makes.
 */
export class LeastRequestBalancer implements Balancer {
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  pick(upstreams: readonly Upstream[], exclude?: ReadonlySet<Upstream>): Upstream | undefined {
    let candidates = exclude === undefined && !upstreams.some((upstream) => upstream.ejected) ? upstreams : upstreams.filter((upstream) => !upstream.ejected && exclude?.has(upstream) !== true);
    // Ejected instances are skipped, unless nothing else is left.
    if (candidates.length === 0) candidates = exclude === undefined ? [...upstreams] : upstreams.filter((upstream) => !exclude.has(upstream));
    if (candidates.length <= 1) return candidates[0];
    const first = Math.floor(this.#random() * candidates.length);
    let second = Math.floor(this.#random() * (candidates.length - 1));
    if (second >= first) second += 1;
    const a = candidates[first] as Upstream;
    const b = candidates[second] as Upstream;
    return a.inflight / a.weight <= b.inflight / b.weight ? a : b;
  }
}
