/**
 * Keys due at given times, found without scanning every instance: each deadline goes into a bucket of
 * `resolutionMs`, and `takeDue` hands out only the buckets whose time has come. Entries are hints, not
 * truth: a later deadline for the same key leaves the earlier entry in place, so the owner checks each
 * due key against its current state.
 */
export class DeadlineWheel {
  readonly #resolutionMs: number;
  readonly #buckets = new Map<number, Set<string>>();
  /** The first bucket not handed out yet. */
  #next: number;

  constructor(resolutionMs: number, now = Date.now()) {
    this.#resolutionMs = resolutionMs;
    this.#next = Math.floor(now / resolutionMs);
  }

  /** Have `key` handed out once `at` (epoch ms) has passed. A deadline already past is due at the next take. */
  add(key: string, at: number): void {
    // Rounding up: a bucket is due only when every deadline in it has passed.
    const bucket = Math.max(this.#next, Math.ceil(at / this.#resolutionMs));
    let keys = this.#buckets.get(bucket);
    if (keys === undefined) {
      keys = new Set();
      this.#buckets.set(bucket, keys);
    }
    keys.add(key);
  }

  /** Every key whose deadline has passed by `now`, each once, and forgets them. */
  takeDue(now = Date.now()): string[] {
    const last = Math.floor(now / this.#resolutionMs);
    const due = new Set<string>();
    for (; this.#next <= last; this.#next++) {
      const keys = this.#buckets.get(this.#next);
      if (keys === undefined) continue;
      for (const key of keys) due.add(key);
      this.#buckets.delete(this.#next);
    }
    return [...due];
  }

  /** How many deadlines are held (for tests and metrics). */
  get size(): number {
    let size = 0;
    for (const keys of this.#buckets.values()) size += keys.size;
    return size;
  }
}
