import { type AgentError } from '@portico/sdk';
import { Backoff } from '@portico/sdk/backoff';
import { type ControlPlaneClient } from '@portico/sdk/control-plane-client';
import { EventStream } from '@portico/sdk/discovery/event-stream';
// The admin API's own schemas are the wire contract this adapter reads (types only; no code of the API runs here).
import { type InstanceView, type RegistryEventData, type RegistrySnapshot } from '../../api/schemas/registry.js';
import { parseDuration } from '../../config/duration.js';
import { type Indexed, type InstanceQuery, type RegistryBackend, type RegistryEvent } from '../../registry/registry-backend.js';
import { type CheckState, compareStrings, type Instance, instanceHealth, selectInstances, type ServiceSummary, summarizeService } from '../../registry/registry.js';
import { type ControlPlaneSourceOptions, deferred, refusedError, type SourceLogger, silentLogger, sourceClient } from './control-plane-source.js';
import { type GatewaySource, type SourceStatus } from './gateway-source.js';

/** One service as mirrored: its instances and the service index they reflect. */
interface Mirrored {
  index: number;
  instances: Map<string, Instance>;
}

/** A full read is cut into this many reads in flight at once, so each read's timeout starts when it is sent. */
const READ_CONCURRENCY = 3;

function optionalDuration(text: string | undefined): number | undefined {
  return text === undefined ? undefined : parseDuration(text);
}

/** An instance as the admin API shows it, back in the registry's own form. */
export function instanceFromView(view: InstanceView): Instance {
  return {
    id: view.id,
    service: view.service,
    address: view.address,
    port: view.port,
    tags: view.tags,
    meta: view.meta,
    weights: view.weights,
    maintenance: view.maintenance === null ? null : { reason: view.maintenance.reason, since: new Date(view.maintenance.since) },
    registeredBy: view.registeredBy,
    registeredAt: new Date(view.registeredAt),
    createIndex: view.createIndex,
    modifyIndex: view.modifyIndex,
    checks: view.checks.map((check): CheckState => {
      const state: CheckState = {
        id: check.id,
        name: check.name,
        kind: check.kind,
        status: check.status,
        output: check.output,
        statusSince: new Date(check.statusSince),
        lastResultAt: check.lastResultAt === null ? null : new Date(check.lastResultAt),
        successBeforePassing: check.successBeforePassing,
        failuresBeforeCritical: check.failuresBeforeCritical,
        // The API does not show the counters; they only matter to whoever runs the checks.
        consecutiveSuccesses: 0,
        consecutiveFailures: 0,
        ttlExpiresAt: check.ttlExpiresAt === undefined || check.ttlExpiresAt === null ? null : new Date(check.ttlExpiresAt),
      };
      if (check.http !== undefined) state.http = check.http;
      if (check.method !== undefined) state.method = check.method;
      if (check.headers !== undefined) state.headers = check.headers;
      if (check.tcp !== undefined) state.tcp = check.tcp;
      if (check.notes !== undefined) state.notes = check.notes;
      const intervalMs = optionalDuration(check.interval);
      const timeoutMs = optionalDuration(check.timeout);
      const ttlMs = optionalDuration(check.ttl);
      const deregisterCriticalAfterMs = optionalDuration(check.deregisterCriticalAfter);
      if (intervalMs !== undefined) state.intervalMs = intervalMs;
      if (timeoutMs !== undefined) state.timeoutMs = timeoutMs;
      if (ttlMs !== undefined) state.ttlMs = ttlMs;
      if (deregisterCriticalAfterMs !== undefined) state.deregisterCriticalAfterMs = deregisterCriticalAfterMs;
      return state;
    }),
  };
}

async function mapLimited<T, R>(items: readonly T[], limit: number, map: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await map(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * The registry as a control plane's admin API shows it, for a gateway that runs on its own: a mirror
 * in memory, answering `services()` and `instances()` at once, and telling subscribers of each change,
 * which is what `Gateway` (its `RegistryProvider`) takes from a `RegistryBackend`.
 *
 * It follows `GET /api/v1/events` (the SDK's event stream: capped, jittered reconnects that resume
 * with `Last-Event-ID`). On a fresh subscription (no event received yet to resume from) it reads
 * everything once, `GET /api/v1/services` then `GET /api/v1/services/:name` for each, holding the
 * events that arrive meanwhile and applying those newer than each service's read after it. When the
 * control plane cannot replay what was missed (a restart, a gap), it sends a `reset` with the whole
 * registry, which replaces the mirror. Nothing is polled.
 *
 * While the control plane is away the mirror keeps the last known state (the gateway keeps routing to
 * the instances it knew) and `status()` says it is not live.
 */
export class ControlPlaneRegistrySource implements Pick<RegistryBackend, 'services' | 'instances' | 'subscribe'>, GatewaySource {
  readonly #client: ControlPlaneClient;
  readonly #log: SourceLogger;
  readonly #stream: EventStream;
  readonly #retry: Backoff;
  readonly #services = new Map<string, Mirrored>();
  readonly #listeners = new Set<(event: RegistryEvent) => void>();
  readonly #firstLoad = deferred();
  #index = 0;
  /** Events held while a full read runs; `undefined` when none runs. */
  #held: Array<{ type: RegistryEvent['type']; data: RegistryEventData }> | undefined;
  /** Bumped by every full read and every `reset`: a read that a newer state overtook is dropped. */
  #generation = 0;
  #needsFullRead = true;
  #retryTimer: NodeJS.Timeout | undefined;
  #loaded = false;
  #live = false;
  #reason: string | undefined = 'not connected yet';
  #started = false;
  #closed = false;

  constructor(options: ControlPlaneSourceOptions) {
    this.#client = sourceClient(options);
    this.#log = options.logger ?? silentLogger;
    const reconnect = options.reconnect ?? { initialMs: 250, maxMs: 10_000 };
    this.#retry = new Backoff(reconnect);
    this.#stream = new EventStream(
      { client: this.#client, logger: this.#log, reconnect, name: "the registry's event stream" },
      {
        onLive: (resumed) => this.#onLive(resumed),
        onEvent: (event) => this.#onEvent(event.event, event.data),
        onDown: (error) => this.#onDown(error),
        onFatal: (error) => this.#onFatal(error),
      },
    );
  }

  start(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      this.#stream.open();
    }
    return this.#firstLoad.promise;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#stream.close();
    this.#client.close();
    this.#listeners.clear();
  }

  status(): SourceStatus {
    return { loaded: this.#loaded, live: this.#live && !this.#needsFullRead, ...(this.#reason === undefined ? {} : { reason: this.#reason }) };
  }

  async services(): Promise<Indexed<ServiceSummary[]>> {
    const value = [...this.#services.entries()]
      .filter(([, service]) => service.instances.size > 0)
      .map(([name, service]) => summarizeService(name, service.instances.values()))
      .sort((a, b) => compareStrings(a.name, b.name));
    return { index: this.#index, value };
  }

  async instances(query: InstanceQuery): Promise<Indexed<Instance[]>> {
    const service = this.#services.get(query.service);
    if (service === undefined) return { index: this.#index, value: [] };
    const value = selectInstances(service.instances.values(), query).sort((a, b) => compareStrings(a.id, b.id));
    return { index: service.index, value };
  }

  subscribe(listener: (event: RegistryEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #onLive(resumed: boolean): void {
    if (!this.#live && this.#loaded) this.#log.info({ resumed }, 'registry event stream reconnected');
    this.#live = true;
    this.#reason = undefined;
    this.#retry.reset();
    // Resumed: the control plane replays what was missed, or sends a reset.
    if (!resumed || this.#needsFullRead) void this.#readAll();
  }

  #onDown(error: AgentError): void {
    if (this.#live || this.#reason === 'not connected yet') {
      this.#log.warn(
        { code: error.code, err: error.message },
        this.#loaded ? 'registry event stream lost: reconnecting; routing by the last known state' : 'the control plane cannot be reached yet: retrying',
      );
    }
    this.#live = false;
    this.#reason = error.message;
  }

  #onFatal(error: AgentError): void {
    this.#live = false;
    this.#reason = error.message;
    this.#log.error({ code: error.code, statusCode: error.statusCode }, `${error.message}${this.#loaded ? '; routing by the last known state' : ''}`);
    this.#firstLoad.reject(refusedError(error, 'following the registry'));
  }

  #onEvent(type: string, data: string): void {
    try {
      if (type === 'reset') return this.#reset(JSON.parse(data) as RegistrySnapshot);
      if (!type.startsWith('instance.')) return;
      const event = { type: type as RegistryEvent['type'], data: JSON.parse(data) as RegistryEventData };
      if (this.#held !== undefined) this.#held.push(event);
      else this.#apply(event.type, event.data);
    } catch (error) {
      this.#log.warn({ event: type, err: (error as Error).message }, 'ignoring a registry event that could not be read');
    }
  }

  /** One change: set or remove the instance, unless the service's state already reflects it. */
  #apply(type: RegistryEvent['type'], data: RegistryEventData): void {
    this.#index = Math.max(this.#index, data.index);
    const at = new Date(data.at);
    // An instance re-registered under another service leaves the one it was in.
    for (const [name, other] of this.#services) {
      if (name !== data.service && other.instances.delete(data.instanceId)) {
        this.#emit({ type: 'instance.deregistered', index: data.index, at, service: name, instanceId: data.instanceId, reason: 'api' });
      }
    }
    // A service keeps its entry (and index) when its last instance leaves, so an older event cannot bring one back.
    const service = this.#services.get(data.service) ?? { index: 0, instances: new Map<string, Instance>() };
    if (data.index <= service.index) return;
    service.index = data.index;
    this.#services.set(data.service, service);
    if (type === 'instance.deregistered' || data.instance === undefined) {
      if (!service.instances.delete(data.instanceId)) return;
      this.#emit({ type: 'instance.deregistered', index: data.index, at, service: data.service, instanceId: data.instanceId, reason: data.reason === 'critical_timeout' ? 'critical_timeout' : 'api' });
      return;
    }
    const instance = instanceFromView(data.instance);
    const existed = service.instances.has(data.instanceId);
    service.instances.set(data.instanceId, instance);
    const health = instanceHealth(instance);
    this.#emit({ type: existed ? 'instance.updated' : 'instance.registered', index: data.index, at, service: data.service, instanceId: data.instanceId, instance, health });
  }

  /** The whole registry from the stream: it replaces the mirror, and any read or held events it overtook. */
  #reset(snapshot: RegistrySnapshot): void {
    this.#generation++;
    this.#held = undefined;
    this.#replace(
      snapshot.index,
      snapshot.services.map((service) => ({ name: service.name, index: snapshot.index, instances: service.instances })),
    );
    this.#log.info({ index: snapshot.index, services: snapshot.services.length }, 'registry re-read from a reset');
  }

  /** Read every service (after a fresh subscription), then apply what arrived meanwhile. */
  async #readAll(): Promise<void> {
    const generation = ++this.#generation;
    clearTimeout(this.#retryTimer);
    this.#held = [];
    try {
      const list = await this.#client.services();
      const details = await mapLimited(list.services, READ_CONCURRENCY, (service) => this.#client.service(service.name));
      if (generation !== this.#generation || this.#closed) return;
      this.#replace(
        list.index,
        details.map((detail) => ({ name: detail.name, index: detail.index, instances: detail.instances as InstanceView[] })),
      );
      this.#log.info({ index: list.index, services: details.length }, 'registry read from the control plane');
    } catch (error) {
      if (generation !== this.#generation || this.#closed) return;
      this.#log.warn({ err: (error as Error).message }, 'reading the registry from the control plane failed: trying again');
      // Newer than what is held, so applied all the same; the next read sets every service right.
      this.#releaseHeld();
      if (this.#live) this.#retryTimer = setTimeout(() => void this.#readAll(), this.#retry.next());
      return;
    }
    this.#releaseHeld();
  }

  #releaseHeld(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const event of held) {
      try {
        this.#apply(event.type, event.data);
      } catch (error) {
        this.#log.warn({ err: (error as Error).message }, 'ignoring a registry event that could not be read');
      }
    }
  }

  /** Replace the mirror with a whole state, telling subscribers what differs. */
  #replace(index: number, services: Array<{ name: string; index: number; instances: InstanceView[] }>): void {
    const at = new Date();
    const next = new Map<string, Mirrored>();
    for (const service of services) {
      if (service.instances.length === 0) continue;
      next.set(service.name, { index: service.index, instances: new Map(service.instances.map((view) => [view.id, instanceFromView(view)])) });
    }
    const events: RegistryEvent[] = [];
    for (const [name, previous] of this.#services) {
      const now = next.get(name);
      for (const id of previous.instances.keys()) {
        if (now?.instances.has(id) !== true) events.push({ type: 'instance.deregistered', index, at, service: name, instanceId: id, reason: 'api' });
      }
    }
    for (const [name, now] of next) {
      const previous = this.#services.get(name);
      for (const [id, instance] of now.instances) {
        const before = previous?.instances.get(id);
        const health = instanceHealth(instance);
        if (before === undefined) events.push({ type: 'instance.registered', index, at, service: name, instanceId: id, instance, health });
        else if (before.modifyIndex !== instance.modifyIndex || instanceHealth(before) !== health) {
          events.push({ type: 'instance.updated', index, at, service: name, instanceId: id, instance, health });
        }
      }
    }
    this.#services.clear();
    for (const [name, service] of next) this.#services.set(name, service);
    this.#index = index;
    this.#needsFullRead = false;
    for (const event of events) this.#emit(event);
    if (!this.#loaded) {
      this.#loaded = true;
      this.#firstLoad.resolve();
    }
  }

  #emit(event: RegistryEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#log.error({ err: error, event: event.type }, 'a registry listener failed');
      }
    }
  }
}
