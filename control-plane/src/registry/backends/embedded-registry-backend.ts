import { PorticoError } from '../../errors.js';
import { type Store } from '../../store/store.js';
import { ChangeFeed } from '../change-feed.js';
import { DeadlineWheel } from '../deadline-wheel.js';
import { type ScheduledCheck } from '../health/health-checker.js';
import {
  applyCheckResult,
  type CheckState,
  checkDefinition,
  type HealthStatus,
  type Instance,
  instanceHealth,
  type InstanceRegistration,
  initialCheckState,
  type ServiceSummary,
  selectInstances,
  summarizeService,
  validateChecks,
} from '../registry.js';
import {
  type BackendStatus,
  type DeregistrationReason,
  type Indexed,
  type InstanceQuery,
  type RegistryBackend,
  type RegistryEvent,
  type WaitOptions,
} from '../registry-backend.js';

/** Runs HTTP and TCP checks on their intervals (`HealthChecker` in production). */
export interface CheckScheduler {
  schedule(check: ScheduledCheck): void;
  unschedule(checkId: string): void;
  close(): Promise<void>;
}

export type CheckResultHandler = (checkId: string, result: { status: HealthStatus; output: string }) => void | Promise<void>;

export interface EmbeddedRegistryBackendOptions {
  store: Store;
  /** Makes the scheduler for HTTP and TCP checks, given where to report results. Without it, only TTL checks change health. */
  createScheduler?: (onResult: CheckResultHandler) => CheckScheduler;
  /** How often expired TTLs and long-critical instances are looked for (default 250 ms). */
  reapIntervalMs?: number;
  /** How many recent changes are kept for `eventsSince` (default 10,000). */
  eventBufferSize?: number;
  logger?: { warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
}

function toScheduled(check: CheckState): ScheduledCheck | undefined {
  if (check.kind === 'ttl') return undefined;
  const scheduled: ScheduledCheck = { id: check.id, kind: check.kind, intervalMs: check.intervalMs ?? 10_000, timeoutMs: check.timeoutMs ?? 10_000 };
  if (check.http !== undefined) scheduled.http = check.http;
  if (check.method !== undefined) scheduled.method = check.method;
  if (check.headers !== undefined) scheduled.headers = check.headers;
  if (check.tcp !== undefined) scheduled.tcp = check.tcp;
  return scheduled;
}

/**
 * The embedded registry: the working set in memory, every change written through to the store (so it
 * survives a restart), HTTP/TCP checks run by the control plane, TTLs and critical timeouts reaped
 * here. Changes are applied one at a time, in index order: each is written to the store first and
 * becomes visible only once written, so a failed write changes nothing.
 *
 * One control-plane process owns an embedded registry; several replicas share a Consul backend instead.
 */
export class EmbeddedRegistryBackend implements RegistryBackend {
  readonly kind = 'embedded' as const;

  readonly #store: Store;
  readonly #options: EmbeddedRegistryBackendOptions;
  readonly #instances = new Map<string, Instance>();
  readonly #byService = new Map<string, Map<string, Instance>>();
  readonly #checkOwner = new Map<string, string>();
  /** Each service's latest change, kept after its last instance leaves so watchers of it still wake. */
  readonly #serviceIndex = new Map<string, number>();
  #feed: ChangeFeed | undefined;
  #index = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #scheduler: CheckScheduler | undefined;
  #reaper: NodeJS.Timeout | undefined;
  /** TTL expiries (`ttl:<check id>`) and critical timeouts (`critical:<instance id>`), by when they fall due. */
  readonly #deadlines = new DeadlineWheel(50);
  #started: Promise<void> | undefined;
  #closed = false;

  constructor(options: EmbeddedRegistryBackendOptions) {
    this.#store = options.store;
    this.#options = options;
  }

  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    const stored = await this.#store.registry.load();
    const now = new Date();
    // Index 1 stands for "empty": Consul clients read 0 as "no index", so the first change is 2.
    let index = Math.max(1, stored.index);
    for (const saved of stored.instances) {
      // Heartbeats could not arrive while the control plane was down: every TTL gets a fresh period.
      const instance: Instance = {
        ...saved,
        checks: saved.checks.map((check) => (check.kind === 'ttl' ? { ...check, ttlExpiresAt: new Date(now.getTime() + (check.ttlMs ?? 0)) } : check)),
      };
      index = Math.max(index, instance.modifyIndex);
      this.#put(instance);
    }
    this.#index = index;
    this.#feed = new ChangeFeed({
      startIndex: index,
      currentIndex: (service) => this.#currentIndex(service),
      bufferSize: this.#options.eventBufferSize,
      onListenerError: (error, event) => this.#options.logger?.error({ err: error, event: event.type }, 'a registry listener failed'),
    });
    this.#scheduler = this.#options.createScheduler?.((checkId, result) => this.#onProbeResult(checkId, result));
    for (const instance of this.#instances.values()) this.#scheduleChecks(instance, undefined);
    this.#reaper = setInterval(() => void this.#reap(), this.#options.reapIntervalMs ?? 250);
    this.#reaper.unref();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#reaper);
    await this.#scheduler?.close();
    await this.#queue.catch(() => undefined);
    this.#feed?.close();
  }

  async register(registration: InstanceRegistration, registeredBy: string | null): Promise<Instance> {
    validateChecks(registration);
    return this.#serial(async () => {
      const previous = this.#instances.get(registration.id);
      const now = new Date();
      const index = this.#index + 1;
      const registrations = registration.checks ?? [];
      const checks = registrations.map((check, i) => {
        const definition = checkDefinition(registration.id, registration.service, check, i, registrations.length);
        return initialCheckState(definition, check, now, previous?.checks.find((c) => c.id === definition.id));
      });
      const ids = new Set<string>();
      for (const check of checks) {
        const owner = this.#checkOwner.get(check.id);
        if ((owner !== undefined && owner !== registration.id) || ids.has(check.id)) {
          throw new PorticoError('PORTICO_ERR_REGISTRY_CHECK_ID_TAKEN', { message: `The check id "${check.id}" is in use by another instance.`, details: { checkId: check.id } });
        }
        ids.add(check.id);
      }
      const instance: Instance = {
        id: registration.id,
        service: registration.service,
        address: registration.address,
        port: registration.port,
        tags: registration.tags ?? [],
        meta: registration.meta ?? {},
        weights: { passing: registration.weights?.passing ?? 1, warning: registration.weights?.warning ?? 1 },
        checks,
        maintenance: previous?.maintenance ?? null,
        registeredBy,
        registeredAt: previous?.registeredAt ?? now,
        createIndex: previous?.createIndex ?? index,
        modifyIndex: index,
      };
      await this.#store.transaction((session) => session.registry.save(instance, index));
      this.#commit(index, previous, instance);
      this.#scheduleChecks(instance, previous);
      const health = instanceHealth(instance);
      this.#emit(
        previous === undefined
          ? { type: 'instance.registered', index, at: now, service: instance.service, instanceId: instance.id, instance, health }
          : { type: 'instance.updated', index, at: now, service: instance.service, instanceId: instance.id, instance, health },
      );
      return instance;
    });
  }

  deregister(instanceId: string, reason: DeregistrationReason = 'api'): Promise<Instance> {
    return this.#serial(async () => {
      const instance = this.#require(instanceId);
      const index = this.#index + 1;
      await this.#store.transaction((session) => session.registry.remove(instanceId, index));
      this.#commit(index, instance, undefined);
      for (const check of instance.checks) this.#scheduler?.unschedule(check.id);
      this.#emit({ type: 'instance.deregistered', index, at: new Date(), service: instance.service, instanceId, reason });
      return instance;
    });
  }

  updateCheck(checkId: string, status: HealthStatus, output = ''): Promise<Instance> {
    return this.#serial(() => this.#applyResult(checkId, status, output));
  }

  setMaintenance(instanceId: string, enabled: boolean, reason = ''): Promise<Instance> {
    return this.#serial(async () => {
      const previous = this.#require(instanceId);
      if ((previous.maintenance !== null) === enabled && (!enabled || previous.maintenance?.reason === reason)) return previous;
      const index = this.#index + 1;
      const instance: Instance = { ...previous, maintenance: enabled ? { reason, since: new Date() } : null, modifyIndex: index };
      await this.#store.transaction((session) => session.registry.save(instance, index));
      this.#commit(index, previous, instance);
      this.#emitChange(index, previous, instance);
      return instance;
    });
  }

  instance(instanceId: string): Promise<Instance | undefined> {
    return Promise.resolve(this.#instances.get(instanceId));
  }

  instanceOfCheck(checkId: string): Promise<Instance | undefined> {
    const owner = this.#checkOwner.get(checkId);
    return Promise.resolve(owner === undefined ? undefined : this.#instances.get(owner));
  }

  instances(query: InstanceQuery): Promise<Indexed<Instance[]>> {
    const value = selectInstances(this.#byService.get(query.service)?.values() ?? [], query);
    return Promise.resolve({ index: this.#currentIndex(query.service), value });
  }

  services(): Promise<Indexed<ServiceSummary[]>> {
    const value = [...this.#byService].map(([name, instances]) => summarizeService(name, instances.values()));
    value.sort((a, b) => a.name.localeCompare(b.name));
    return Promise.resolve({ index: this.#currentIndex(undefined), value });
  }

  waitForChange(after: number, options: WaitOptions): Promise<number> {
    if (this.#closed) return Promise.resolve(this.#currentIndex(options.service));
    return this.#startedFeed().waitForChange(after, options);
  }

  subscribe(listener: (event: RegistryEvent) => void): () => void {
    return this.#startedFeed().subscribe(listener);
  }

  eventsSince(index: number): RegistryEvent[] | undefined {
    return this.#startedFeed().eventsSince(index);
  }

  status(): BackendStatus {
    return { stale: false };
  }

  #startedFeed(): ChangeFeed {
    if (this.#feed === undefined) throw new PorticoError('PORTICO_ERR_REGISTRY_UNAVAILABLE', { message: 'The registry has not started.' });
    return this.#feed;
  }

  /** The reported index: never 0, as Consul clients treat 0 as "no index". */
  #currentIndex(service: string | undefined): number {
    const index = service === undefined ? this.#index : (this.#serviceIndex.get(service) ?? 0);
    return Math.max(1, index);
  }

  #require(instanceId: string): Instance {
    const instance = this.#instances.get(instanceId);
    if (instance === undefined) {
      throw new PorticoError('PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND', { message: `No instance has the id "${instanceId}".`, details: { instanceId } });
    }
    return instance;
  }

  /** Changes run one after another, so indexes are given out and written in order. */
  #serial<T>(work: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new PorticoError('PORTICO_ERR_REGISTRY_UNAVAILABLE', { message: 'The registry is closed.' }));
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #applyResult(checkId: string, status: HealthStatus, output: string): Promise<Instance> {
    const instanceId = this.#checkOwner.get(checkId);
    const previous = instanceId === undefined ? undefined : this.#instances.get(instanceId);
    if (previous === undefined) {
      throw new PorticoError('PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND', { message: `No check has the id "${checkId}".`, details: { checkId } });
    }
    const now = new Date();
    const checks = previous.checks.map((check) => (check.id === checkId ? applyCheckResult(check, status, output, now) : check));
    const changed = checks.some((check, i) => check.status !== previous.checks[i]?.status);
    if (!changed) {
      // Output and deadlines only: visible at once, but neither an index change nor a store write, so
      // steady heartbeats cost no I/O (Consul likewise batches output-only updates).
      const instance: Instance = { ...previous, checks };
      this.#put(instance);
      return instance;
    }
    const index = this.#index + 1;
    const instance: Instance = { ...previous, checks, modifyIndex: index };
    await this.#store.transaction((session) => session.registry.save(instance, index));
    this.#commit(index, previous, instance);
    this.#emitChange(index, previous, instance);
    return instance;
  }

  async #onProbeResult(checkId: string, result: { status: HealthStatus; output: string }): Promise<void> {
    try {
      await this.updateCheck(checkId, result.status, result.output);
    } catch (error) {
      // The instance may have left between the probe's start and its result.
      if (error instanceof PorticoError && error.code === 'PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND') return;
      this.#options.logger?.error({ err: error, checkId }, 'recording a check result failed');
    }
  }

  async #reap(): Promise<void> {
    if (this.#closed) return;
    for (const key of this.#deadlines.takeDue()) {
      const separator = key.indexOf(':');
      const kind = key.slice(0, separator);
      const id = key.slice(separator + 1);
      if (kind === 'ttl') await this.#expireTtl(id);
      else await this.#deregisterIfLongCritical(id);
    }
  }

  #expireTtl(checkId: string): Promise<void> {
    return this.#serial(async () => {
      const owner = this.#instances.get(this.#checkOwner.get(checkId) ?? '');
      const check = owner?.checks.find((c) => c.id === checkId);
      // A heartbeat may have moved the deadline since this entry was made; its new entry will come due.
      if (check === undefined || check.ttlExpiresAt === null || check.ttlExpiresAt.getTime() > Date.now() || check.status === 'critical') return;
      await this.#applyResult(checkId, 'critical', `TTL expired (no heartbeat for ${check.ttlMs ?? 0} ms)`);
    }).catch((error: unknown) => this.#options.logger?.error({ err: error, checkId }, 'expiring a TTL check failed'));
  }

  async #deregisterIfLongCritical(instanceId: string): Promise<void> {
    const instance = this.#instances.get(instanceId);
    const now = Date.now();
    const overdue = instance?.checks.some(
      (check) => check.status === 'critical' && check.deregisterCriticalAfterMs !== undefined && now - check.statusSince.getTime() >= check.deregisterCriticalAfterMs,
    );
    if (overdue !== true) return;
    await this.deregister(instanceId, 'critical_timeout').catch((error: unknown) => {
      if (!(error instanceof PorticoError && error.code === 'PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND')) {
        this.#options.logger?.error({ err: error, instanceId }, 'deregistering a long-critical instance failed');
      }
    });
  }

  #put(instance: Instance): void {
    this.#instances.set(instance.id, instance);
    let group = this.#byService.get(instance.service);
    if (group === undefined) {
      group = new Map();
      this.#byService.set(instance.service, group);
    }
    group.set(instance.id, instance);
    for (const check of instance.checks) {
      this.#checkOwner.set(check.id, instance.id);
      if (check.kind === 'ttl' && check.status !== 'critical' && check.ttlExpiresAt !== null) this.#deadlines.add(`ttl:${check.id}`, check.ttlExpiresAt.getTime());
      if (check.status === 'critical' && check.deregisterCriticalAfterMs !== undefined) {
        this.#deadlines.add(`critical:${instance.id}`, check.statusSince.getTime() + check.deregisterCriticalAfterMs);
      }
    }
    this.#serviceIndex.set(instance.service, Math.max(this.#serviceIndex.get(instance.service) ?? 0, instance.modifyIndex));
  }

  #drop(instance: Instance): void {
    this.#instances.delete(instance.id);
    const group = this.#byService.get(instance.service);
    group?.delete(instance.id);
    if (group?.size === 0) this.#byService.delete(instance.service);
    for (const check of instance.checks) {
      if (this.#checkOwner.get(check.id) === instance.id) this.#checkOwner.delete(check.id);
    }
  }

  /** Make a written change visible: memory, indexes, then wake the watchers. */
  #commit(index: number, previous: Instance | undefined, next: Instance | undefined): void {
    if (previous !== undefined) {
      this.#drop(previous);
      this.#serviceIndex.set(previous.service, index);
    }
    if (next !== undefined) this.#put(next);
    this.#index = index;
    this.#feed?.notify();
  }

  #scheduleChecks(instance: Instance, previous: Instance | undefined): void {
    if (this.#scheduler === undefined) return;
    const keep = new Set(instance.checks.map((check) => check.id));
    for (const check of previous?.checks ?? []) if (!keep.has(check.id)) this.#scheduler.unschedule(check.id);
    for (const check of instance.checks) {
      const scheduled = toScheduled(check);
      // A check that became a TTL check under the same id must stop being probed.
      if (scheduled === undefined) this.#scheduler.unschedule(check.id);
      else this.#scheduler.schedule(scheduled);
    }
  }

  #emitChange(index: number, previous: Instance, instance: Instance): void {
    const before = instanceHealth(previous);
    const health = instanceHealth(instance);
    const common = { index, at: new Date(), service: instance.service, instanceId: instance.id, instance, health };
    this.#emit(before === health ? { type: 'instance.updated', ...common } : { type: 'instance.health_changed', ...common, previousHealth: before });
  }

  #emit(event: RegistryEvent): void {
    this.#feed?.publish(event);
  }
}
