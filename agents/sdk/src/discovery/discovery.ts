import { AgentError } from '../agent-error.js';
import { type Duration } from '../agent-options.js';
import { ControlPlaneClient } from '../control-plane-client.js';
import { parseDuration } from '../duration.js';
import { type Logger, silentLogger } from '../logger.js';
import { type InstanceView, type RegistryEventData, type RegistrySnapshot } from '../registry-types.js';
import { EventStream } from './event-stream.js';
import { type SseEvent } from './sse-parser.js';

/** An instance of a service, as discovery hands it out. */
export type ResolvedInstance = Pick<InstanceView, 'id' | 'service' | 'address' | 'port' | 'tags' | 'meta' | 'health'>;

/** What `createDiscovery` takes. */
export interface DiscoveryOptions {
  /** The control plane's base URL, e.g. `http://127.0.0.1:8400`. */
  controlPlane: string | URL;
  /** Any token (every role may read the registry). */
  token: string;
  logger?: Logger;
  /** Time a read (and the wait for the event stream on a first resolve) may take; default `5s`. */
  requestTimeout?: Duration;
}

interface InternalOptions {
  client: ControlPlaneClient;
  logger: Logger;
  reconnect: { initialMs: number; maxMs: number };
  /** Close the client with the discovery (it was made for it). */
  ownsClient?: boolean;
  waitMs?: number;
}

/** One watched service. */
interface Entry {
  name: string;
  instances: Map<string, InstanceView>;
  /** Every change at or below this index is reflected. */
  index: number;
  seeded: boolean;
  /** The read that (re)seeds the entry, while it runs. */
  seeding: Promise<void> | undefined;
  /** Events that arrived while the read ran: applied after it, those newer than what it saw. */
  pending: SseEvent[] | undefined;
  healthy: ResolvedInstance[] | undefined;
  next: number;
}

function toResolved(view: InstanceView): ResolvedInstance {
  return { id: view.id, service: view.service, address: view.address, port: view.port, tags: view.tags, meta: view.meta, health: view.health };
}

/**
 * Service discovery for calls between services that bypass the gateway. `resolve(service)` answers
 * the passing instances of a service from memory; the registry's event stream (`GET /api/v1/events`,
 * one connection for every service) keeps that memory current. Nothing is polled.
 *
 * - The first `resolve` of a service reads it once (`GET /api/v1/services/:name`) after the stream is
 *   subscribed, so no change falls between the read and the stream; events that arrive during the
 *   read and are newer than it are applied after it.
 * - When the stream drops, it reconnects with backoff and resumes with `Last-Event-ID`: the control
 *   plane replays the missed changes, or sends a `reset` with the whole registry (after a restart).
 *   Meanwhile answers come from the last known state (stale rather than none).
 * - A token the control plane refuses (401/403) closes the stream for good; `resolve` then rejects.
 */
export class Discovery {
  readonly #client: ControlPlaneClient;
  readonly #log: Logger;
  readonly #options: InternalOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #stream: EventStream;
  #opened = false;
  #live = false;
  #waiters = new Set<{ resolve: () => void; reject: (error: AgentError) => void }>();
  #failure: AgentError | undefined;
  #down = false;

  /** Internal: use `createDiscovery`, or an agent's `resolve`. */
  constructor(options: InternalOptions) {
    this.#options = options;
    this.#client = options.client;
    this.#log = options.logger;
    this.#stream = new EventStream(
      { client: this.#client, logger: this.#log, reconnect: options.reconnect },
      {
        onLive: (resumed) => this.#onLive(resumed),
        onEvent: (event) => this.#onEvent(event),
        onDown: (error) => this.#onDown(error),
        onFatal: (error) => this.#onFatal(error),
      },
    );
  }

  /**
   * The passing instances of `service`, ordered by id. Answers from memory once the service is known;
   * the first call for a service waits for one read.
   * @throws AgentError when the service was never read and the control plane cannot be reached, or
   *   when the token was refused.
   */
  async resolve(service: string): Promise<ResolvedInstance[]> {
    if (this.#failure !== undefined) throw this.#failure;
    this.#open();
    let entry = this.#entries.get(service);
    if (entry === undefined) {
      entry = { name: service, instances: new Map(), index: 0, seeded: false, seeding: undefined, pending: undefined, healthy: undefined, next: 0 };
      this.#entries.set(service, entry);
    }
    if (!entry.seeded) {
      try {
        await this.#seed(entry);
      } catch (error) {
        if (!entry.seeded) this.#entries.delete(service);
        throw error;
      }
    }
    return this.#healthy(entry);
  }

  /** The next passing instance of `service`, round robin; `undefined` when it has none. */
  async pick(service: string): Promise<ResolvedInstance | undefined> {
    const healthy = await this.resolve(service);
    if (healthy.length === 0) return undefined;
    const entry = this.#entries.get(service);
    const position = entry === undefined ? 0 : entry.next++ % healthy.length;
    return healthy[position];
  }

  /** Close the event stream (and the connections, when this discovery made them). */
  async close(): Promise<void> {
    this.#stream.close();
    this.#failure ??= new AgentError('discovery is closed', { kind: 'unavailable', code: 'PORTICO_ERR_AGENT_STOPPED' });
    for (const waiter of this.#waiters) waiter.reject(this.#failure);
    this.#waiters.clear();
    if (this.#options.ownsClient === true) this.#client.close();
  }

  #open(): void {
    if (this.#opened) return;
    this.#opened = true;
    this.#stream.open();
  }

  #healthy(entry: Entry): ResolvedInstance[] {
    entry.healthy ??= [...entry.instances.values()]
      .filter((view) => view.health === 'passing')
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map(toResolved);
    return entry.healthy;
  }

  /** Read the service once the stream is live; then apply what arrived meanwhile. */
  #seed(entry: Entry): Promise<void> {
    entry.seeding ??= (async () => {
      await this.#whenLive();
      entry.pending = [];
      try {
        const detail = await this.#client.service(entry.name);
        entry.instances = new Map(detail.instances.map((view) => [view.id, view]));
        entry.index = detail.index;
        entry.healthy = undefined;
        entry.seeded = true;
      } finally {
        const pending = entry.pending;
        entry.pending = undefined;
        for (const event of pending) this.#apply(entry, event);
      }
    })().finally(() => {
      entry.seeding = undefined;
    });
    return entry.seeding;
  }

  #whenLive(): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#live) return Promise.resolve();
    const waitMs = this.#options.waitMs ?? 5_000;
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error: AgentError) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new AgentError(`the registry's event stream did not connect within ${waitMs} ms`, { kind: 'unavailable', code: 'PORTICO_ERR_AGENT_UNREACHABLE' }));
      }, waitMs);
      this.#waiters.add(waiter);
    });
  }

  #onLive(resumed: boolean): void {
    this.#live = true;
    if (this.#down) this.#log.info({ resumed }, 'registry event stream reconnected');
    this.#down = false;
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters.clear();
    if (resumed) return;
    // A fresh subscription (nothing to resume from): what was read before may have missed changes.
    for (const entry of this.#entries.values()) {
      if (!entry.seeded) continue;
      this.#seed(entry).catch((error: unknown) => this.#log.warn({ service: entry.name, err: (error as Error).message }, 'reading a service again failed'));
    }
  }

  #onDown(error: AgentError): void {
    this.#live = false;
    if (!this.#down) this.#log.warn({ code: error.code, err: error.message }, 'registry event stream lost: reconnecting; answering from the last known state');
    this.#down = true;
  }

  #onFatal(error: AgentError): void {
    this.#live = false;
    this.#failure = error;
    this.#log.error({ code: error.code, statusCode: error.statusCode }, error.message);
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters.clear();
  }

  #onEvent(event: SseEvent): void {
    try {
      if (event.event === 'reset') return this.#reset(JSON.parse(event.data) as RegistrySnapshot);
      if (!event.event.startsWith('instance.')) return;
      const data = JSON.parse(event.data) as RegistryEventData;
      // An instance re-registered under another service leaves the one it was in.
      for (const other of this.#entries.values()) {
        if (other.name !== data.service && other.instances.delete(data.instanceId)) other.healthy = undefined;
      }
      const entry = this.#entries.get(data.service);
      if (entry === undefined) return;
      if (entry.pending !== undefined) entry.pending.push(event);
      else this.#apply(entry, event);
    } catch (error) {
      this.#log.warn({ event: event.event, err: (error as Error).message }, 'ignoring an event that could not be read');
    }
  }

  #apply(entry: Entry, event: SseEvent): void {
    const data = JSON.parse(event.data) as RegistryEventData;
    if (data.index <= entry.index) return;
    entry.index = data.index;
    if (event.event === 'instance.deregistered') entry.instances.delete(data.instanceId);
    else if (data.instance !== undefined) entry.instances.set(data.instanceId, data.instance);
    entry.healthy = undefined;
  }

  #reset(snapshot: RegistrySnapshot): void {
    const byName = new Map(snapshot.services.map((service) => [service.name, service.instances]));
    for (const entry of this.#entries.values()) {
      entry.instances = new Map((byName.get(entry.name) ?? []).map((view) => [view.id, view]));
      entry.index = snapshot.index;
      entry.seeded = true;
      entry.healthy = undefined;
      if (entry.pending !== undefined) entry.pending = [];
    }
  }
}

/** Discovery on its own, for a process that calls services without registering one. See `Discovery`. */
export function createDiscovery(options: DiscoveryOptions): Discovery {
  let baseUrl: URL;
  try {
    baseUrl = new URL(options.controlPlane);
    if (!baseUrl.pathname.endsWith('/')) baseUrl.pathname += '/';
  } catch (error) {
    throw new AgentError(`Invalid discovery options: controlPlane "${String(options.controlPlane)}" is not a URL.`, {
      kind: 'invalid_options',
      code: 'PORTICO_ERR_AGENT_INVALID_OPTIONS',
      cause: error,
    });
  }
  const timeout = options.requestTimeout;
  const requestTimeoutMs = timeout === undefined ? 5_000 : typeof timeout === 'number' ? timeout : parseDuration(timeout);
  const client = new ControlPlaneClient({ baseUrl, token: options.token, requestTimeoutMs });
  return new Discovery({ client, logger: options.logger ?? silentLogger, reconnect: { initialMs: 250, maxMs: 10_000 }, ownsClient: true, waitMs: requestTimeoutMs });
}
