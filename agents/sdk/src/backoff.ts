/**
 * Capped exponential backoff with "equal jitter": the n-th delay is drawn from [c/2, c], where
 * c = min(max, initial × 2ⁿ). Half of each delay is fixed, so retries never bunch at zero; the other
 * half spreads agents that lost the control plane together, so they do not return in one burst.
 */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: { initialMs: number; maxMs: number; random?: () => number }) {
    this.#initialMs = options.initialMs;
    this.#maxMs = Math.max(options.initialMs, options.maxMs);
    this.#random = options.random ?? Math.random;
  }

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt, in ms. */
  next(): number {
    const ceiling = Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return ceiling / 2 + (this.#random() * ceiling) / 2;
  }

  reset(): void {
    this.#attempt = 0;
  }
}
