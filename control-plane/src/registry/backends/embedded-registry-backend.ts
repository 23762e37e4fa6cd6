import { PorticoError } from '../../errors.js';
import { type NewAuditEntry, type Store } from '../../store/store.js';
import { ChangeFeed } from '../change-feed.js';
import { DeadlineWheel } from '../deadline-wheel.js';
import { type ScheduledCheck } from '../health/health-checker.js';
import {
  compareStrings,
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
  type ChangeOptions,
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
  /** At most this many changes are written in one transaction (default 512). */
  maxBatchSize?: number;
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
 * What a change does, worked out against the draft: the instance before and after (`next` undefined:
 * it leaves), whether it moves the index (and so is written), its audit entry, and what to do once it
 * is visible (events, check scheduling).
 */
interface Planned {
  previous: Instance | undefined;
  next: Instance | undefined;
  indexed: boolean;
  audit?: NewAuditEntry;
  /** Runs once the change is written and visible, with its index. */
  visible?: (index: number) => void;
}

/** A change waiting for the next group commit. `plan` runs with the index the change will get if it moves the index; `undefined`: nothing to do. */
interface PendingChange {
  plan(draft: Draft, index: number): Planned | undefined;
  resolve(instance: Instance | undefined): void;
  reject(error: unknown): void;
}

/**
 * The registry as the changes of the batch being planned leave it: the visible state with the batch's
 * earlier changes laid over it, so each change sees the ones before it without making them visible.
 */
class Draft {
  readonly #instances = new Map<string, Instance | undefined>();
  readonly #owners = new Map<string, string | undefined>();

  constructor(
    private readonly visibleInstances: ReadonlyMap<string, Instance>,
    private readonly visibleOwners: ReadonlyMap<string, string>,
  ) {}

  instance(id: string): Instance | undefined {
    return this.#instances.has(id) ? this.#instances.get(id) : this.visibleInstances.get(id);
  }

  /** The id of the instance a check belongs to. */
  ownerOf(checkId: string): string | undefined {
    return this.#owners.has(checkId) ? this.#owners.get(checkId) : this.visibleOwners.get(checkId);
  }

  replace(previous: Instance | undefined, next: Instance | undefined): void {
    if (previous !== undefined) {
      this.#instances.set(previous.id, undefined);
      for (const check of previous.checks) if (this.ownerOf(check.id) === previous.id) this.#owners.set(check.id, undefined);
    }
    if (next !== undefined) {
      this.#instances.set(next.id, next);
      for (const check of next.checks) this.#owners.set(check.id, next.id);
    }
  }
}

/**
 * The embedded registry: the working set in memory, every change written through to the store (so it
 * survives a restart), HTTP/TCP checks run by the control plane, TTLs and critical timeouts reaped
 * here. Changes are planned one at a time, in index order, and written in groups: the changes that
 * arrive while one group is being written (or in the same turn of the event loop) are written together
 * in the next transaction, with their audit entries, so a burst of registrations costs a few commits
 * rather than one each. A change becomes visible, and its caller gets an answer, only once its group is
 * written; a failed write changes nothing and fails every change of the group.
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
  /** Changes not yet planned, in arrival order. */
  #pending: PendingChange[] = [];
  /** Set while a group is being planned and written; resolves when the queue has drained. */
  #flushing: Promise<void> | undefined;
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
    // Changes already accepted are still written.
    await this.#flushing;
    this.#feed?.close();
  }

  async register(registration: InstanceRegistration, registeredBy: string | null, options: ChangeOptions = {}): Promise<Instance> {
    validateChecks(registration);
    return this.#change((draft, index) => {
      const previous = draft.instance(registration.id);
      const now = new Date();
      const registrations = registration.checks ?? [];
      const checks = registrations.map((check, i) => {
        const definition = checkDefinition(registration.id, registration.service, check, i, registrations.length);
        return initialCheckState(definition, check, now, previous?.checks.find((c) => c.id === definition.id));
      });
      const ids = new Set<string>();
      for (const check of checks) {
        const owner = draft.ownerOf(check.id);
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
      return {
        previous,
        next: instance,
        indexed: true,
        audit: options.audit?.({ previous, instance }),
        visible: (at) => {
          this.#scheduleChecks(instance, previous);
          const health = instanceHealth(instance);
          const common = { index: at, at: new Date(), service: instance.service, instanceId: instance.id, instance, health };
          this.#emit(previous === undefined ? { type: 'instance.registered', ...common } : { type: 'instance.updated', ...common });
        },
      };
    });
  }

  deregister(instanceId: string, reason: DeregistrationReason = 'api', options: ChangeOptions = {}): Promise<Instance> {
    return this.#change((draft) => {
      const instance = this.#require(draft, instanceId);
      return this.#planDeregistration(instance, reason, options.audit?.({ previous: instance, instance }));
    });
  }

  updateCheck(checkId: string, status: HealthStatus, output = ''): Promise<Instance> {
    return this.#change((draft, index) => this.#planResult(draft, index, checkId, status, output));
  }

  setMaintenance(instanceId: string, enabled: boolean, reason = '', options: ChangeOptions = {}): Promise<Instance> {
    return this.#change((draft, index) => {
      const previous = this.#require(draft, instanceId);
      if ((previous.maintenance !== null) === enabled && (!enabled || previous.maintenance?.reason === reason)) {
        return { previous, next: previous, indexed: false };
      }
      const instance: Instance = { ...previous, maintenance: enabled ? { reason, since: new Date() } : null, modifyIndex: index };
      return {
        previous,
        next: instance,
        indexed: true,
        audit: options.audit?.({ previous, instance }),
        visible: (at) => this.#emitChange(at, previous, instance),
      };
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
    value.sort((a, b) => compareStrings(a.name, b.name));
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

  #require(draft: Draft, instanceId: string): Instance {
    const instance = draft.instance(instanceId);
    if (instance === undefined) {
      throw new PorticoError('PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND', { message: `No instance has the id "${instanceId}".`, details: { instanceId } });
    }
    return instance;
  }

  /** Queue a change for the next group commit; resolves with the instance as the change left it. */
  #change(plan: (draft: Draft, index: number) => Planned): Promise<Instance> {
    return this.#enqueue(plan).then((instance) => instance as Instance);
  }

  #enqueue(plan: PendingChange['plan']): Promise<Instance | undefined> {
    if (this.#closed) return Promise.reject(new PorticoError('PORTICO_ERR_REGISTRY_UNAVAILABLE', { message: 'The registry is closed.' }));
    return new Promise((resolve, reject) => {
      this.#pending.push({ plan, resolve, reject });
      // The first change waits for the end of this turn of the event loop, so that the requests read in
      // the same turn join it; later ones join the group after the one being written.
      this.#flushing ??= new Promise<void>((done) => setImmediate(() => void this.#drain().finally(done)));
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) await this.#writeGroup(this.#pending.splice(0, this.#options.maxBatchSize ?? 512));
    } finally {
      this.#flushing = undefined;
    }
  }

  /**
   * Plan each change against the draft in order, write the ones that move the index in one transaction
   * (each instance's final state once, the index, the audit entries), then make them visible in order.
   */
  async #writeGroup(group: PendingChange[]): Promise<void> {
    const draft = new Draft(this.#instances, this.#checkOwner);
    const planned: Array<{ change: PendingChange; plan: Planned | undefined; index: number }> = [];
    let index = this.#index;
    for (const change of group) {
      try {
        const plan = change.plan(draft, index + 1);
        if (plan?.indexed === true) index += 1;
        if (plan !== undefined) draft.replace(plan.previous, plan.next);
        planned.push({ change, plan, index });
      } catch (error) {
        change.reject(error);
      }
    }

    const written = new Map<string, Instance | undefined>();
    const audits: NewAuditEntry[] = [];
    for (const { plan } of planned) {
      if (plan?.indexed !== true) continue;
      const id = (plan.next ?? plan.previous)?.id as string;
      written.delete(id); // keep the map in the order of each instance's last change
      written.set(id, plan.next);
      if (plan.audit !== undefined) audits.push(plan.audit);
    }
    if (index > this.#index) {
      const save = [...written.values()].filter((instance) => instance !== undefined);
      const remove = [...written].filter(([, instance]) => instance === undefined).map(([id]) => id);
      try {
        await this.#store.transaction(async (session) => {
          await session.registry.write({ save, remove, index });
          if (audits.length > 0) await session.audit.appendMany(audits);
        });
      } catch (error) {
        for (const { change } of planned) change.reject(error);
        return;
      }
    }

    for (const { change, plan, index: at } of planned) {
      if (plan === undefined) {
        change.resolve(undefined);
        continue;
      }
      if (plan.indexed) this.#commit(at, plan.previous, plan.next);
      else if (plan.next !== undefined) this.#put(plan.next);
      plan.visible?.(at);
      change.resolve(plan.next ?? plan.previous);
    }
  }

  #planDeregistration(instance: Instance, reason: DeregistrationReason, audit: NewAuditEntry | undefined): Planned {
    return {
      previous: instance,
      next: undefined,
      indexed: true,
      audit,
      visible: (index) => {
        for (const check of instance.checks) this.#scheduler?.unschedule(check.id);
        this.#emit({ type: 'instance.deregistered', index, at: new Date(), service: instance.service, instanceId: instance.id, reason });
      },
    };
  }

  #planResult(draft: Draft, index: number, checkId: string, status: HealthStatus, output: string): Planned {
    const instanceId = draft.ownerOf(checkId);
    const previous = instanceId === undefined ? undefined : draft.instance(instanceId);
    if (previous === undefined) {
      throw new PorticoError('PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND', { message: `No check has the id "${checkId}".`, details: { checkId } });
    }
    const now = new Date();
    const checks = previous.checks.map((check) => (check.id === checkId ? applyCheckResult(check, status, output, now) : check));
    const changed = checks.some((check, i) => check.status !== previous.checks[i]?.status);
    if (!changed) {
      // Output and deadlines only: visible at once, but neither an index change nor a store write, so
      // steady heartbeats cost no I/O (Consul likewise batches output-only updates).
      return { previous, next: { ...previous, checks }, indexed: false };
    }
    const instance: Instance = { ...previous, checks, modifyIndex: index };
    return { previous, next: instance, indexed: true, visible: (at) => this.#emitChange(at, previous, instance) };
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
    const due: Array<Promise<unknown>> = [];
    for (const key of this.#deadlines.takeDue()) {
      const separator = key.indexOf(':');
      const kind = key.slice(0, separator);
      const id = key.slice(separator + 1);
      due.push(kind === 'ttl' ? this.#expireTtl(id) : this.#deregisterIfLongCritical(id));
    }
    await Promise.all(due);
  }

  #expireTtl(checkId: string): Promise<void> {
    return this.#enqueue((draft, index) => {
      const owner = draft.instance(draft.ownerOf(checkId) ?? '');
      const check = owner?.checks.find((c) => c.id === checkId);
      // A heartbeat may have moved the deadline since this entry was made; its new entry will come due.
      if (check === undefined || check.ttlExpiresAt === null || check.ttlExpiresAt.getTime() > Date.now() || check.status === 'critical') return undefined;
      return this.#planResult(draft, index, checkId, 'critical', `TTL expired (no heartbeat for ${check.ttlMs ?? 0} ms)`);
    }).then(
      () => undefined,
      (error: unknown) => this.#options.logger?.error({ err: error, checkId }, 'expiring a TTL check failed'),
    );
  }

  #deregisterIfLongCritical(instanceId: string): Promise<void> {
    return this.#enqueue((draft) => {
      const instance = draft.instance(instanceId);
      const now = Date.now();
      const overdue = instance?.checks.some(
        (check) => check.status === 'critical' && check.deregisterCriticalAfterMs !== undefined && now - check.statusSince.getTime() >= check.deregisterCriticalAfterMs,
      );
      return instance === undefined || overdue !== true ? undefined : this.#planDeregistration(instance, 'critical_timeout', undefined);
    }).then(
      () => undefined,
      (error: unknown) => this.#options.logger?.error({ err: error, instanceId }, 'deregistering a long-critical instance failed'),
    );
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
