/**
 * A retry budget (as in Finagle and Linkerd): every request deposits `ratio` of a retry, every retry
 * withdraws one, and a small reserve that refills over time lets a quiet service still retry. So
 * retries stay within `ratio` extra load however many instances fail at once, instead of multiplying
 * the load on the ones still up.
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #reservePerSecond: number;
  readonly #cap: number;
  #balance: number;
  #refilledAt = performance.now();

  constructor(options: { ratio: number; reservePerSecond?: number; cap?: number }) {
    this.#ratio = options.ratio;
    this.#reservePerSecond = options.reservePerSecond ?? 10;
    this.#cap = options.cap ?? 100;
    this.#balance = this.#reservePerSecond;
  }

  /** One request finished: it earns `ratio` of a retry. */
  deposit(): void {
    this.#balance = Math.min(this.#cap, this.#balance + this.#ratio);
  }

  /** Take one retry from the budget, if there is one. */
  tryWithdraw(): boolean {
    const now = performance.now();
    const elapsed = (now - this.#refilledAt) / 1000;
    this.#refilledAt = now;
    // The reserve refills over time, up to one second's worth, whatever the traffic.
    if (this.#balance < this.#reservePerSecond) this.#balance = Math.min(this.#reservePerSecond, this.#balance + elapsed * this.#reservePerSecond);
    if (this.#balance < 1) return false;
    this.#balance -= 1;
    return true;
  }
}
