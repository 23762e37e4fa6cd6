import { type RegistryEvent, type WaitOptions } from './registry-backend.js';

interface Waiter {
  after: number;
  service: string | undefined;
  wake: () => void;
}

export interface ChangeFeedOptions {
  /** The index now, for the whole registry or one service. */
  currentIndex: (service: string | undefined) => number;
  /** How many recent events are kept for replay (default 10,000). */
  bufferSize?: number;
  onListenerError?: (error: unknown, event: RegistryEvent) => void;
}

/**
 * What both registry backends share to tell others about changes: subscribers, a bounded replay
 * buffer, and blocking waits on an index. The backend owns the state and its indexes; it calls
 * `publish` for every change it makes visible, and `notify` whenever an index moved.
 */
export class ChangeFeed {
  readonly #options: ChangeFeedOptions;
  readonly #events: RegistryEvent[] = [];
  readonly #listeners = new Set<(event: RegistryEvent) => void>();
  readonly #waiters = new Set<Waiter>();
  /** Changes at or below this index may be missing from the buffer (dropped, or from before the start). */
  #completeAfter: number;

  constructor(options: ChangeFeedOptions & { startIndex: number }) {
    this.#options = options;
    this.#completeAfter = options.startIndex;
  }

  /** Record a change, tell the subscribers, and wake the waiters it concerns. */
  publish(event: RegistryEvent): void {
    this.#events.push(event);
    const limit = this.#options.bufferSize ?? 10_000;
    if (this.#events.length > limit) {
      const dropped = this.#events.splice(0, this.#events.length - limit);
      this.#completeAfter = Math.max(this.#completeAfter, dropped.at(-1)?.index ?? 0);
    }
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#options.onListenerError?.(error, event);
      }
    }
    this.notify();
  }

  /** Wake every waiter whose index has moved. */
  notify(): void {
    for (const waiter of this.#waiters) {
      if (this.#options.currentIndex(waiter.service) !== waiter.after) waiter.wake();
    }
  }

  subscribe(listener: (event: RegistryEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The held events after `index`, oldest first; `undefined` when some may be missing. */
  eventsSince(index: number): RegistryEvent[] | undefined {
    if (index < this.#completeAfter) return undefined;
    return this.#events.filter((event) => event.index > index);
  }

  /** See `RegistryBackend.waitForChange`. */
  waitForChange(after: number, options: WaitOptions): Promise<number> {
    const current = this.#options.currentIndex(options.service);
    if (current !== after || options.signal?.aborted === true) return Promise.resolve(current);
    return new Promise<number>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', wake);
        this.#waiters.delete(waiter);
        resolve(this.#options.currentIndex(options.service));
      };
      const waiter: Waiter = { after, service: options.service, wake };
      const timer = setTimeout(wake, options.timeoutMs);
      timer.unref();
      options.signal?.addEventListener('abort', wake, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Release every waiter (on close). */
  close(): void {
    for (const waiter of [...this.#waiters]) waiter.wake();
  }
}
