import { EventEmitter } from 'node:events';
import Consul from 'consul';
import { parseDuration } from '../../config/duration.js';
import { PorticoError } from '../../errors.js';
import { ChangeFeed } from '../change-feed.js';
import { type AuditRepository } from '../../store/store.js';
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
import {
  compareStrings,
  type CheckKind,
  type CheckRegistration,
  type CheckState,
  type HealthStatus,
  type Instance,
  instanceHealth,
  type InstanceRegistration,
  type ServiceSummary,
  selectInstances,
  summarizeService,
  validateChecks,
} from '../registry.js';

export interface ConsulRegistryBackendOptions {
  /** The Consul agent: `http(s)://host:port` or `host:port` (`PORTICO_CONSUL_ADDR`). */
  addr: string;
  /** ACL token (`PORTICO_CONSUL_TOKEN`). */
  token?: string;
  /** Cap of the reconnect backoff (default 30 s). */
  backoffMaxMs?: number;
  /** How long `start()` waits for the first full read before serving (stale) anyway (default 10 s). */
  initialSyncTimeoutMs?: number;
  eventBufferSize?: number;
  /** Where the audit entries of changes (`ChangeOptions.audit`) are appended once Consul has acknowledged them. */
  auditLog?: Pick<AuditRepository, 'append'>;
  logger?: { warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
}

/** Consul's `/v1/health/service/:name` entry, as far as Portico reads it. */
interface HealthEntry {
  Node?: { Node?: string; Address?: string };
  Service: {
    ID: string;
    Service: string;
    Address?: string;
    Port?: number;
    Tags?: string[] | null;
    Meta?: Record<string, string> | null;
    Weights?: { Passing?: number; Warning?: number } | null;
    CreateIndex?: number;
    ModifyIndex?: number;
  };
  Checks?: Array<{
    CheckID: string;
    Name?: string;
    Status: HealthStatus;
    Output?: string;
    Notes?: string;
    ServiceID?: string;
    Type?: string;
    ModifyIndex?: number;
    Definition?: { HTTP?: string; TCP?: string; Method?: string; Interval?: string; Timeout?: string; TTL?: string; DeregisterCriticalServiceAfter?: string };
  }> | null;
}

interface ConsulResponse {
  headers: Record<string, string | string[] | undefined>;
}

interface ConsulWatch extends EventEmitter {
  end(): void;
}

/** Meta key under which Portico keeps the registering token's id in Consul. */
const REGISTERED_BY = 'portico-registered-by';
const MAINTENANCE_PREFIX = '_service_maintenance:';

interface ServiceMirror {
  index: number;
  instances: Map<string, Instance>;
}

function indexOf(response: ConsulResponse): number {
  const header = response.headers['x-consul-index'];
  const value = Number(Array.isArray(header) ? header[0] : header);
  return Number.isFinite(value) && value > 0 ? value : 1;
}

/** A Go-style duration from Consul's check definition, in ms; `undefined` when absent, zero or unreadable. */
function durationMs(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  try {
    const ms = parseDuration(text);
    return ms > 0 ? ms : undefined;
  } catch {
    return undefined;
  }
}

function checkKind(type: string | undefined, definition: { HTTP?: string; TCP?: string } | undefined): CheckKind {
  if (type === 'http' || definition?.HTTP !== undefined) return 'http';
  if (type === 'tcp' || definition?.TCP !== undefined) return 'tcp';
  return 'ttl';
}

/** A Consul health entry as Portico's `Instance`. `firstSeen` keeps `registeredAt` stable across reads. */
export function instanceFromHealthEntry(entry: HealthEntry, firstSeen: Date): Instance {
  const service = entry.Service;
  const checks: CheckState[] = [];
  let maintenance: Instance['maintenance'] = null;
  let modifyIndex = service.ModifyIndex ?? 1;
  for (const check of entry.Checks ?? []) {
    // Node-level checks (serfHealth) are not the instance's: Consul folds them into health, Portico's
    // instance model does not carry them.
    if (check.ServiceID !== service.ID) continue;
    modifyIndex = Math.max(modifyIndex, check.ModifyIndex ?? 0);
    if (check.CheckID.startsWith(MAINTENANCE_PREFIX)) {
      maintenance = { reason: check.Notes ?? '', since: firstSeen };
      continue;
    }
    const definition = check.Definition;
    const kind = checkKind(check.Type, definition);
    const state: CheckState = {
      id: check.CheckID,
      name: check.Name ?? check.CheckID,
      kind,
      successBeforePassing: 0,
      failuresBeforeCritical: 0,
      status: check.Status,
      output: check.Output ?? '',
      statusSince: firstSeen,
      lastResultAt: null,
      consecutiveSuccesses: 0,
      consecutiveFailures: 0,
      ttlExpiresAt: null,
    };
    if (definition?.HTTP !== undefined && definition.HTTP !== '') state.http = definition.HTTP;
    if (definition?.TCP !== undefined && definition.TCP !== '') state.tcp = definition.TCP;
    const interval = durationMs(definition?.Interval);
    const timeout = durationMs(definition?.Timeout);
    const ttl = durationMs(definition?.TTL);
    const deregisterAfter = durationMs(definition?.DeregisterCriticalServiceAfter);
    if (interval !== undefined) state.intervalMs = interval;
    if (timeout !== undefined) state.timeoutMs = timeout;
    if (ttl !== undefined) state.ttlMs = ttl;
    if (deregisterAfter !== undefined) state.deregisterCriticalAfterMs = deregisterAfter;
    if (check.Notes !== undefined && check.Notes !== '') state.notes = check.Notes;
    checks.push(state);
  }
  const meta = { ...(service.Meta ?? {}) };
  const registeredBy = meta[REGISTERED_BY] ?? null;
  delete meta[REGISTERED_BY];
  return {
    id: service.ID,
    service: service.Service,
    address: service.Address !== undefined && service.Address !== '' ? service.Address : (entry.Node?.Address ?? ''),
    port: service.Port ?? 0,
    tags: service.Tags ?? [],
    meta,
    weights: { passing: service.Weights?.Passing ?? 1, warning: service.Weights?.Warning ?? 1 },
    checks,
    maintenance,
    registeredBy,
    registeredAt: firstSeen,
    createIndex: service.CreateIndex ?? modifyIndex,
    modifyIndex,
  };
}

function consulCheck(check: CheckRegistration): Record<string, unknown> {
  const ms = (value: number | undefined) => (value === undefined ? undefined : `${value}ms`);
  const body: Record<string, unknown> = {
    checkid: check.id,
    name: check.name,
    notes: check.notes,
    status: check.status,
    successbeforepassing: check.successBeforePassing,
    failuresbeforecritical: check.failuresBeforeCritical,
    deregistercriticalserviceafter: ms(check.deregisterCriticalAfterMs),
  };
  if (check.kind === 'ttl') body.ttl = ms(check.ttlMs);
  else {
    body.interval = ms(check.intervalMs ?? 10_000);
    body.timeout = ms(check.timeoutMs);
    if (check.kind === 'http') {
      body.http = check.http;
      body.method = check.method;
      if (check.headers !== undefined) body.header = Object.fromEntries(Object.entries(check.headers).map(([k, v]) => [k, [v]]));
    } else body.tcp = check.tcp;
  }
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined));
}

function sameInstance(a: Instance, b: Instance): boolean {
  const comparable = (instance: Instance) => JSON.stringify({ ...instance, registeredAt: 0, checks: instance.checks.map((c) => ({ ...c, statusSince: 0 })), maintenance: instance.maintenance?.reason ?? null });
  return comparable(a) === comparable(b);
}

/**
 * The registry backed by a real Consul agent: writes go to the agent API, reads come from a mirror kept
 * current by blocking queries (`/v1/catalog/services`, and `/v1/health/service/:name` per service) —
 * never a polling loop. Health checks, TTLs and critical-timeout reaping are Consul's.
 *
 * When Consul is away the watches reconnect with capped exponential backoff while the mirror keeps
 * serving the last known state, and `status()` reports it stale (so does `/readyz`).
 *
 * Limits: Consul's agent API as spoken by the `consul` client carries no service weights (instances
 * read back with weight 1), and node-level checks are not folded into an instance's health.
 */
export class ConsulRegistryBackend implements RegistryBackend {
  readonly kind = 'consul' as const;

  readonly #consul: Consul;
  readonly #options: ConsulRegistryBackendOptions;
  readonly #mirror = new Map<string, ServiceMirror>();
  /** Index of each service's last change, kept after it disappears so its watchers still wake. */
  readonly #serviceIndex = new Map<string, number>();
  readonly #serviceWatches = new Map<string, ConsulWatch>();
  readonly #firstSeen = new Map<string, Date>();
  readonly #errors = new Map<string, string>();
  #catalogWatch: ConsulWatch | undefined;
  #index = 1;
  #feed: ChangeFeed;
  #started: Promise<void> | undefined;
  #closed = false;

  constructor(options: ConsulRegistryBackendOptions) {
    this.#options = options;
    const url = new URL(/^https?:\/\//.test(options.addr) ? options.addr : `http://${options.addr}`);
    this.#consul = new Consul({
      host: url.hostname,
      port: Number(url.port || (url.protocol === 'https:' ? 443 : 8500)),
      secure: url.protocol === 'https:',
      defaults: options.token === undefined ? {} : { token: options.token },
    });
    this.#feed = this.#makeFeed(1);
  }

  #makeFeed(startIndex: number): ChangeFeed {
    return new ChangeFeed({
      startIndex,
      currentIndex: (service) => this.#currentIndex(service),
      bufferSize: this.#options.eventBufferSize,
      onListenerError: (error, event) => this.#options.logger?.error({ err: error, event: event.type }, 'a registry listener failed'),
    });
  }

  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    const synced = new Promise<void>((resolve) => {
      // The watch calls its method with a bare `this`; bind it to the client's own object.
      const watch = this.#consul.watch({ method: this.#consul.catalog.services.bind(this.#consul.catalog), options: {}, backoffFactor: 100, backoffMax: this.#options.backoffMaxMs ?? 30_000 }) as unknown as ConsulWatch;
      this.#catalogWatch = watch;
      watch.on('change', (data: Record<string, string[]>) => {
        this.#errors.delete('catalog');
        void this.#onCatalog(Object.keys(data)).then(resolve);
      });
      watch.on('error', (error: unknown) => this.#onWatchError('catalog', error));
    });
    const timeout = this.#options.initialSyncTimeoutMs ?? 10_000;
    const timedOut = await Promise.race([synced.then(() => false), new Promise<boolean>((resolve) => setTimeout(() => resolve(true), timeout).unref())]);
    if (timedOut) this.#options.logger?.warn({ addr: this.#options.addr }, 'Consul did not answer in time: serving an empty, stale registry until it does');
    // Events before this point are the initial state, not changes a resuming client missed.
    this.#feed = this.#makeFeed(this.#index);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#catalogWatch?.end();
    for (const watch of this.#serviceWatches.values()) watch.end();
    this.#serviceWatches.clear();
    this.#feed.close();
    this.#consul.destroy();
  }

  async register(registration: InstanceRegistration, registeredBy: string | null, options: ChangeOptions = {}): Promise<Instance> {
    validateChecks(registration);
    const previous = await this.instance(registration.id);
    const checks = (registration.checks ?? []).map((check, i, all) => ({
      ...check,
      id: check.id ?? (all.length === 1 ? `service:${registration.id}` : `service:${registration.id}:${i + 1}`),
    }));
    await this.#call(() =>
      this.#consul.agent.service.register({
        name: registration.service,
        id: registration.id,
        address: registration.address,
        port: registration.port,
        tags: registration.tags ?? [],
        meta: { ...(registration.meta ?? {}), ...(registeredBy === null ? {} : { [REGISTERED_BY]: registeredBy }) },
        checks: checks.map(consulCheck),
      } as never),
    );
    await this.#refresh(registration.service);
    if (previous !== undefined && previous.service !== registration.service) await this.#refresh(previous.service);
    const instance = this.#lookup(registration.id);
    if (instance === undefined) throw new PorticoError('PORTICO_ERR_REGISTRY_UNAVAILABLE', { message: `Consul accepted ${registration.id} but does not list it.` });
    await this.#audit(options, previous, instance);
    return instance;
  }

  async deregister(instanceId: string, _reason: DeregistrationReason = 'api', options: ChangeOptions = {}): Promise<Instance> {
    const instance = await this.#known(instanceId);
    await this.#call(() => this.#consul.agent.service.deregister(instanceId), () => this.#instanceNotFound(instanceId));
    await this.#refresh(instance.service);
    await this.#audit(options, instance, instance);
    return instance;
  }

  async updateCheck(checkId: string, status: HealthStatus, output = ''): Promise<Instance> {
    const owner = await this.instanceOfCheck(checkId);
    const verb = status === 'passing' ? 'pass' : status === 'warning' ? 'warn' : 'fail';
    await this.#call(
      () => this.#consul.agent.check[verb]({ id: checkId, note: output }),
      () => new PorticoError('PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND', { message: `No check has the id "${checkId}".`, details: { checkId } }),
    );
    if (owner === undefined) await this.#refreshAll();
    else await this.#refresh(owner.service);
    const updated = await this.instanceOfCheck(checkId);
    if (updated === undefined) throw new PorticoError('PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND', { message: `No check has the id "${checkId}".`, details: { checkId } });
    return updated;
  }

  async setMaintenance(instanceId: string, enabled: boolean, reason = '', options: ChangeOptions = {}): Promise<Instance> {
    const instance = await this.#known(instanceId);
    await this.#call(() => this.#consul.agent.service.maintenance({ id: instanceId, enable: enabled, reason }), () => this.#instanceNotFound(instanceId));
    await this.#refresh(instance.service);
    const updated = this.#lookup(instanceId) ?? instance;
    await this.#audit(options, instance, updated);
    return updated;
  }

  /** Record an acknowledged change. Consul has it already, so a failed append is logged, not thrown. */
  async #audit(options: ChangeOptions, previous: Instance | undefined, instance: Instance): Promise<void> {
    const entry = options.audit?.({ previous, instance });
    if (entry === undefined || this.#options.auditLog === undefined) return;
    try {
      await this.#options.auditLog.append(entry);
    } catch (error) {
      this.#options.logger?.error({ err: error, action: entry.action, target: entry.target }, 'writing the audit entry of a registry change failed');
    }
  }

  instance(instanceId: string): Promise<Instance | undefined> {
    return Promise.resolve(this.#lookup(instanceId));
  }

  instanceOfCheck(checkId: string): Promise<Instance | undefined> {
    for (const service of this.#mirror.values()) {
      for (const instance of service.instances.values()) if (instance.checks.some((check) => check.id === checkId)) return Promise.resolve(instance);
    }
    return Promise.resolve(undefined);
  }

  instances(query: InstanceQuery): Promise<Indexed<Instance[]>> {
    const value = selectInstances(this.#mirror.get(query.service)?.instances.values() ?? [], query);
    return Promise.resolve({ index: this.#currentIndex(query.service), value });
  }

  services(): Promise<Indexed<ServiceSummary[]>> {
    const value = [...this.#mirror]
      .filter(([, service]) => service.instances.size > 0)
      .map(([name, service]) => summarizeService(name, service.instances.values()));
    value.sort((a, b) => compareStrings(a.name, b.name));
    return Promise.resolve({ index: this.#index, value });
  }

  waitForChange(after: number, options: WaitOptions): Promise<number> {
    if (this.#closed) return Promise.resolve(this.#currentIndex(options.service));
    return this.#feed.waitForChange(after, options);
  }

  subscribe(listener: (event: RegistryEvent) => void): () => void {
    return this.#feed.subscribe(listener);
  }

  eventsSince(index: number): RegistryEvent[] | undefined {
    return this.#feed.eventsSince(index);
  }

  status(): BackendStatus {
    if (this.#errors.size === 0) return { stale: false };
    return { stale: true, reason: [...this.#errors.values()][0] };
  }

  #currentIndex(service: string | undefined): number {
    return service === undefined ? this.#index : (this.#serviceIndex.get(service) ?? 1);
  }

  #lookup(instanceId: string): Instance | undefined {
    for (const service of this.#mirror.values()) {
      const instance = service.instances.get(instanceId);
      if (instance !== undefined) return instance;
    }
    return undefined;
  }

  async #known(instanceId: string): Promise<Instance> {
    let instance = this.#lookup(instanceId);
    if (instance === undefined) {
      await this.#refreshAll();
      instance = this.#lookup(instanceId);
    }
    if (instance === undefined) throw this.#instanceNotFound(instanceId);
    return instance;
  }

  #instanceNotFound(instanceId: string): PorticoError {
    return new PorticoError('PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND', { message: `No instance has the id "${instanceId}".`, details: { instanceId } });
  }

  /** Run a Consul call, mapping its failures: 404 to `notFound`, unreachable to `PORTICO_ERR_REGISTRY_UNAVAILABLE`. */
  async #call<T>(call: () => Promise<T>, notFound?: () => PorticoError): Promise<T> {
    try {
      return await call();
    } catch (error) {
      const status = (error as { response?: { statusCode?: number } }).response?.statusCode;
      const message = error instanceof Error ? error.message : String(error);
      if (status === 404 && notFound !== undefined) throw notFound();
      if (status === 400) throw new PorticoError('PORTICO_ERR_REGISTRY_INVALID_CHECK', { message: `Consul refused the request: ${message}`, cause: error });
      if (status === 403) throw new PorticoError('PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN', { message: `Consul refused the token: ${message}`, cause: error });
      throw new PorticoError('PORTICO_ERR_REGISTRY_UNAVAILABLE', { message: `Consul at ${this.#options.addr} failed: ${message}`, cause: error });
    }
  }

  /** Read one service now (after a write of ours), so the caller sees its own change. */
  async #refresh(service: string): Promise<void> {
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
    const [response, entries] = (await this.#call(() => this.#consul.health.service({ service, ctx } as never))) as unknown as [ConsulResponse, HealthEntry[]];
    this.#applyService(service, indexOf(response), entries);
  }

  async #refreshAll(): Promise<void> {
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
    const [, services] = (await this.#call(() => this.#consul.catalog.services({ ctx } as never))) as unknown as [ConsulResponse, Record<string, string[]>];
    await this.#onCatalog(Object.keys(services));
    await Promise.all(Object.keys(services).map((service) => this.#refresh(service)));
  }

  async #onCatalog(names: string[]): Promise<void> {
    const current = new Set(names.filter((name) => name !== 'consul'));
    const firstReads: Array<Promise<void>> = [];
    for (const name of current) {
      if (this.#serviceWatches.has(name) || this.#closed) continue;
      firstReads.push(
        new Promise<void>((resolve) => {
          const watch = this.#consul.watch({ method: this.#consul.health.service.bind(this.#consul.health), options: { service: name }, backoffFactor: 100, backoffMax: this.#options.backoffMaxMs ?? 30_000 }) as unknown as ConsulWatch;
          this.#serviceWatches.set(name, watch);
          watch.on('change', (entries: HealthEntry[], response: ConsulResponse) => {
            this.#errors.delete(`service:${name}`);
            this.#applyService(name, indexOf(response), entries);
            resolve();
          });
          watch.on('error', (error: unknown) => {
            this.#onWatchError(`service:${name}`, error);
            resolve();
          });
        }),
      );
    }
    for (const [name, watch] of this.#serviceWatches) {
      if (current.has(name)) continue;
      watch.end();
      this.#serviceWatches.delete(name);
      this.#errors.delete(`service:${name}`);
      this.#applyService(name, Math.max(this.#index + 1, this.#currentIndex(name) + 1), []);
    }
    await Promise.all(firstReads);
  }

  #onWatchError(source: string, error: unknown): void {
    const reason = `Consul at ${this.#options.addr} cannot be read (${error instanceof Error ? error.message : String(error)})`;
    if (!this.#errors.has(source)) this.#options.logger?.warn({ source, err: error }, 'Consul watch failed: serving the last known state');
    this.#errors.set(source, reason);
  }

  /** Replace one service's mirror with a newer read, and publish the differences as events. */
  #applyService(name: string, index: number, entries: HealthEntry[]): void {
    const mirror = this.#mirror.get(name) ?? { index: 0, instances: new Map<string, Instance>() };
    if (index < mirror.index) return;
    const next = new Map<string, Instance>();
    for (const entry of entries) {
      const firstSeen = this.#firstSeen.get(entry.Service.ID) ?? new Date();
      this.#firstSeen.set(entry.Service.ID, firstSeen);
      next.set(entry.Service.ID, instanceFromHealthEntry(entry, firstSeen));
    }
    const events: RegistryEvent[] = [];
    const at = new Date();
    for (const [id, instance] of next) {
      const before = mirror.instances.get(id);
      const health = instanceHealth(instance);
      if (before === undefined) events.push({ type: 'instance.registered', index, at, service: name, instanceId: id, instance, health });
      else if (!sameInstance(before, instance)) {
        const previousHealth = instanceHealth(before);
        events.push(
          previousHealth === health
            ? { type: 'instance.updated', index, at, service: name, instanceId: id, instance, health }
            : { type: 'instance.health_changed', index, at, service: name, instanceId: id, instance, health, previousHealth },
        );
      }
    }
    for (const id of mirror.instances.keys()) {
      if (!next.has(id)) {
        events.push({ type: 'instance.deregistered', index, at, service: name, instanceId: id, reason: 'api' });
        this.#firstSeen.delete(id);
      }
    }
    if (next.size === 0) this.#mirror.delete(name);
    else this.#mirror.set(name, { index, instances: next });
    if (events.length > 0 || index > (this.#serviceIndex.get(name) ?? 0)) this.#serviceIndex.set(name, Math.max(index, this.#serviceIndex.get(name) ?? 0));
    this.#index = Math.max(this.#index, index);
    for (const event of events) this.#feed.publish(event);
    this.#feed.notify();
  }
}
