import { type NewAuditEntry } from '../store/store.js';
import { type HealthStatus, type Instance, type InstanceRegistration, type ServiceSummary } from './registry.js';

/** Why an instance left the registry. */
export type DeregistrationReason = 'api' | 'critical_timeout';

/** One change in the registry, in index order. */
export type RegistryEvent =
  | { type: 'instance.registered'; index: number; at: Date; service: string; instanceId: string; instance: Instance; health: HealthStatus }
  | { type: 'instance.updated'; index: number; at: Date; service: string; instanceId: string; instance: Instance; health: HealthStatus }
  | {
      type: 'instance.health_changed';
      index: number;
      at: Date;
      service: string;
      instanceId: string;
      instance: Instance;
      health: HealthStatus;
      previousHealth: HealthStatus;
    }
  | { type: 'instance.deregistered'; index: number; at: Date; service: string; instanceId: string; reason: DeregistrationReason };

export type RegistryEventType = RegistryEvent['type'];

/**
 * How a change is recorded. `audit` makes the audit-log entry from the instance before the change
 * (absent for a new instance) and after it (for a deregistration, as it was when it left). The embedded
 * backend writes the entry in the same transaction as the change; the Consul backend once Consul has
 * acknowledged the change.
 */
export interface ChangeOptions {
  audit?: (change: { previous: Instance | undefined; instance: Instance }) => NewAuditEntry;
}

/** Which instances of a service to list. */
export interface InstanceQuery {
  service: string;
  /** Only instances whose aggregated health is `passing`. */
  passingOnly?: boolean;
  /** Only instances carrying this tag. */
  tag?: string;
}

/** A read together with the index it reflects (Consul's `X-Consul-Index`). */
export interface Indexed<T> {
  index: number;
  value: T;
}

export interface WaitOptions {
  /** Watch one service's index rather than the whole registry's. */
  service?: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface BackendStatus {
  /** True when the backend serves its last known state because its source cannot be reached. */
  stale: boolean;
  reason?: string;
}

/**
 * The registry port: where instances, checks and health live. Two adapters: the embedded one (state
 * in Portico's store, checks run by the control plane) and the Consul one (a real Consul agent is the
 * source of truth). Both pass `describeRegistryBackendContract`.
 *
 * Errors are `PorticoError`s with `PORTICO_ERR_REGISTRY_*` codes on both adapters.
 */
export interface RegistryBackend {
  readonly kind: 'embedded' | 'consul';

  /** Load or connect, and begin health checking / watching. Idempotent. */
  start(): Promise<void>;
  /** Stop checking and watching, release connections. Idempotent. */
  close(): Promise<void>;

  /**
   * Register an instance, or update it when its id is registered already (never a duplicate). A
   * re-registration keeps the health of checks that keep their id and kind.
   * @param registeredBy id of the token registering it, kept with the instance.
   */
  register(registration: InstanceRegistration, registeredBy: string | null, options?: ChangeOptions): Promise<Instance>;

  /**
   * Remove an instance and its checks.
   * @throws PorticoError `PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND`.
   */
  deregister(instanceId: string, reason?: DeregistrationReason, options?: ChangeOptions): Promise<Instance>;

  /**
   * Report a check's result (a TTL heartbeat, or Consul's check pass/warn/fail/update). Resets a TTL
   * check's deadline. `successBeforePassing` / `failuresBeforeCritical` apply.
   * @throws PorticoError `PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND`.
   */
  updateCheck(checkId: string, status: HealthStatus, output?: string): Promise<Instance>;

  /**
   * Put an instance into maintenance (it turns critical and leaves `passing` reads) or take it out.
   * @throws PorticoError `PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND`.
   */
  setMaintenance(instanceId: string, enabled: boolean, reason?: string, options?: ChangeOptions): Promise<Instance>;

  /** One instance, if registered. */
  instance(instanceId: string): Promise<Instance | undefined>;

  /** The instance a check belongs to, if the check is registered. */
  instanceOfCheck(checkId: string): Promise<Instance | undefined>;

  /** The instances of a service, with the service's index. An unknown service reads as empty. */
  instances(query: InstanceQuery): Promise<Indexed<Instance[]>>;

  /** Every service with at least one instance, with the registry's index. */
  services(): Promise<Indexed<ServiceSummary[]>>;

  /**
   * Resolve once the index (the service's, or the registry's) is greater than `after`, or when the
   * timeout passes or the signal aborts; either way with the index as it is then. Resolves at once when
   * the index has moved past `after` already (or when `after` is ahead of it: the registry was reset,
   * and the caller must re-read).
   */
  waitForChange(after: number, options: WaitOptions): Promise<number>;

  /** Every change as it happens, in index order. Returns the unsubscribe function. */
  subscribe(listener: (event: RegistryEvent) => void): () => void;

  /**
   * The changes after `index` the backend still holds, oldest first; `undefined` when some of them
   * are no longer held (the caller must re-read the whole state instead).
   */
  eventsSince(index: number): RegistryEvent[] | undefined;

  /** Whether what the backend serves is current. */
  status(): BackendStatus;
}
