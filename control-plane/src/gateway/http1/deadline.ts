/**
 * A deadline moved on far more often than it is reached: an upstream connection's wait for response
 * headers and its keep-alive idle time are set again on every exchange. Setting it stores a number;
 * the timer behind it is started only when none is pending that fires by then. A timer that fires
 * before the deadline is started again for what is left, so a busy connection does timer-list work
 * about once per period instead of once per exchange.
 *
 * The deadline is kept on `performance.now()`; it is reached when at most 1 ms is left (timers count
 * whole milliseconds of the event loop's clock).
 */
export class Deadline {
  readonly #onReached: () => void;
  #timer: NodeJS.Timeout | undefined;
  /** The duration the timer was started with (`refresh` restarts it with the same). */
  #timerMs = 0;
  #pending = false;
  /** When the pending timer fires, about. */
  #due = 0;
  #at = 0;
  #set = false;

  constructor(onReached: () => void) {
    this.#onReached = onReached;
  }

  /** Reached `ms` from now (at most `2 ** 31 - 1`, what a timer takes), unless set again or cleared first. */
  set(ms: number): void {
    const now = performance.now();
    this.#at = now + ms;
    this.#set = true;
    if (this.#pending && this.#due <= this.#at) return;
    this.#start(ms, now);
  }

  /** Not reached after all. A pending timer is left to fire, and finds nothing to do. */
  clear(): void {
    this.#set = false;
  }

  /** Cleared, and the timer stopped: for an owner that is going away. */
  cancel(): void {
    this.#set = false;
    this.#pending = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #start(ms: number, now: number): void {
    const timer = this.#timer;
    if (timer !== undefined && this.#timerMs === ms) timer.refresh();
    else {
      clearTimeout(timer);
      this.#timer = setTimeout(this.#fire, ms).unref();
      this.#timerMs = ms;
    }
    this.#pending = true;
    this.#due = now + ms;
  }

  readonly #fire = (): void => {
    this.#pending = false;
    if (!this.#set) return;
    const now = performance.now();
    const left = this.#at - now;
    if (left > 1) {
      this.#start(Math.ceil(left), now);
      return;
    }
    this.#set = false;
    this.#onReached();
  };
}
