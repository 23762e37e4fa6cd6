/**
 * The registry's domain: services, their instances, health checks and aggregated health, as Consul
 * documents them. Pure types and functions; the backends (embedded, Consul) hold the state.
 *
 * Semantics kept from Consul:
 * - an instance's health is the worst of its checks' (`critical` > `warning` > `passing`); an instance
 *   without checks is `passing`; one in maintenance is `critical`;
 * - a new check is `critical` until it passes, unless registered with an initial status;
 * - `successBeforePassing` / `failuresBeforeCritical` count consecutive results before a change;
 * - a check critical for longer than `deregisterCriticalAfterMs` deregisters its instance;
 * - one index that only ever grows, moved by every change, for blocking queries.
 */

import { isIP } from 'node:net';
import { PorticoError } from '../errors.js';

export const HEALTH_STATUSES = ['passing', 'warning', 'critical'] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

export const CHECK_KINDS = ['http', 'tcp', 'ttl'] as const;
export type CheckKind = (typeof CHECK_KINDS)[number];

/** Service names: letters, digits, `_`, `.`, `-`; underscores stay legal (the seeds' `catalog_service`). */
export const SERVICE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$';
/** Instance and check ids: the same alphabet plus `:`, up to 128 characters. */
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$';

/** An IPv4 or IPv6 address, or a DNS host name. */
export function isIpOrHostname(value: string): boolean {
  return (
    isIP(value) !== 0 ||
    /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(value)
  );
}

/** The shortest interval or TTL a check may have: faster probing is load, not safety. */
export const MIN_CHECK_INTERVAL_MS = 100;

/** A check as registered. */
export interface CheckDefinition {
  /** Unique within the registry (Consul's CheckID); defaults to `service:<instanceId>` (`:<n>` for more than one). */
  id: string;
  name: string;
  kind: CheckKind;
  /** `http`: the URL probed (it must point at the instance's own address and port). */
  http?: string;
  /** `http`: method, default GET. */
  method?: string;
  /** `http`: request headers. */
  headers?: Record<string, string>;
  /** `tcp`: `host:port` probed (the instance's own address). */
  tcp?: string;
  /** `http`/`tcp`: time between probes. */
  intervalMs?: number;
  /** `http`/`tcp`: time a probe may take. */
  timeoutMs?: number;
  /** `ttl`: a heartbeat must arrive within this, or the check turns critical. */
  ttlMs?: number;
  successBeforePassing: number;
  failuresBeforeCritical: number;
  /** Deregister the instance once this check has been critical this long. */
  deregisterCriticalAfterMs?: number;
  notes?: string;
}

/** A check with its current state. */
export interface CheckState extends CheckDefinition {
  status: HealthStatus;
  /** The last probe's or heartbeat's output (a response excerpt, an error). */
  output: string;
  /** When the status last changed. */
  statusSince: Date;
  /** When a result (probe or heartbeat) last arrived. */
  lastResultAt: Date | null;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
  /** `ttl` checks: when the current heartbeat runs out. */
  ttlExpiresAt: Date | null;
}

export interface Weights {
  passing: number;
  warning: number;
}

/** An instance of a service, with its checks and health. */
export interface Instance {
  id: string;
  service: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  weights: Weights;
  checks: CheckState[];
  /** Set while the instance is in maintenance: it is then critical, and gets no traffic. */
  maintenance: { reason: string; since: Date } | null;
  /** Id of the token that registered it (`null`: registered without a token, e.g. by the control plane). */
  registeredBy: string | null;
  registeredAt: Date;
  /** Index of the registration that created it. */
  createIndex: number;
  /** Index of its latest change. */
  modifyIndex: number;
}

/** What a client sends to register (or re-register) an instance. */
export interface InstanceRegistration {
  id: string;
  service: string;
  address: string;
  port: number;
  tags?: string[];
  meta?: Record<string, string>;
  weights?: Partial<Weights>;
  checks?: CheckRegistration[];
}

export interface CheckRegistration {
  id?: string;
  name?: string;
  kind: CheckKind;
  http?: string;
  method?: string;
  headers?: Record<string, string>;
  tcp?: string;
  intervalMs?: number;
  timeoutMs?: number;
  ttlMs?: number;
  successBeforePassing?: number;
  failuresBeforeCritical?: number;
  deregisterCriticalAfterMs?: number;
  /** Status before the first result; default `critical`. */
  status?: HealthStatus;
  notes?: string;
}

/** One service, as listed. */
export interface ServiceSummary {
  name: string;
  /** Union of its instances' tags. */
  tags: string[];
  instances: Record<HealthStatus, number>;
}

const SEVERITY: Record<HealthStatus, number> = { passing: 0, warning: 1, critical: 2 };

/** The worse of two statuses. */
export function worse(a: HealthStatus, b: HealthStatus): HealthStatus {
  return SEVERITY[a] >= SEVERITY[b] ? a : b;
}

/** An instance's aggregated health: critical in maintenance, else the worst of its checks, else passing. */
export function instanceHealth(instance: Pick<Instance, 'checks' | 'maintenance'>): HealthStatus {
  if (instance.maintenance !== null) return 'critical';
  return instance.checks.reduce<HealthStatus>((acc, check) => worse(acc, check.status), 'passing');
}

/** A service's summary: the union of its instances' tags (sorted) and their count by health. */
export function summarizeService(name: string, instances: Iterable<Instance>): ServiceSummary {
  const tags = new Set<string>();
  const counts: Record<HealthStatus, number> = { passing: 0, warning: 0, critical: 0 };
  for (const instance of instances) {
    for (const tag of instance.tags) tags.add(tag);
    counts[instanceHealth(instance)]++;
  }
  return { name, tags: [...tags].sort(), instances: counts };
}

/** The instances carrying `tag` (when given), and only the passing ones (when asked). */
export function selectInstances(instances: Iterable<Instance>, filter: { tag?: string; passingOnly?: boolean }): Instance[] {
  const selected: Instance[] = [];
  for (const instance of instances) {
    if (filter.tag !== undefined && !instance.tags.includes(filter.tag)) continue;
    if (filter.passingOnly === true && instanceHealth(instance) !== 'passing') continue;
    selected.push(instance);
  }
  return selected;
}

export const DEFAULT_CHECK_INTERVAL_MS = 10_000;
export const DEFAULT_CHECK_TIMEOUT_MS = 10_000;

/** Consul's default check ids: `service:<id>` for one check, `service:<id>:<n>` (1-based) for several. */
export function defaultCheckId(instanceId: string, index: number, count: number): string {
  return count === 1 ? `service:${instanceId}` : `service:${instanceId}:${index + 1}`;
}

/**
 * The state a check starts in (or keeps, when an instance re-registers a check of the same id and
 * kind: a re-registration must not reset health a running instance has earned).
 */
export function initialCheckState(definition: CheckDefinition, registration: CheckRegistration, now: Date, previous?: CheckState): CheckState {
  if (previous !== undefined && previous.kind === definition.kind) {
    return {
      ...definition,
      status: previous.status,
      output: previous.output,
      statusSince: previous.statusSince,
      lastResultAt: previous.lastResultAt,
      consecutiveSuccesses: previous.consecutiveSuccesses,
      consecutiveFailures: previous.consecutiveFailures,
      ttlExpiresAt: definition.kind === 'ttl' ? (previous.ttlExpiresAt ?? new Date(now.getTime() + (definition.ttlMs ?? 0))) : null,
    };
  }
  return {
    ...definition,
    status: registration.status ?? 'critical',
    output: '',
    statusSince: now,
    lastResultAt: null,
    consecutiveSuccesses: 0,
    consecutiveFailures: 0,
    ttlExpiresAt: definition.kind === 'ttl' ? new Date(now.getTime() + (definition.ttlMs ?? 0)) : null,
  };
}

/** Fill a check registration's defaults. */
export function checkDefinition(instanceId: string, service: string, registration: CheckRegistration, index: number, count: number): CheckDefinition {
  const definition: CheckDefinition = {
    id: registration.id ?? defaultCheckId(instanceId, index, count),
    name: registration.name ?? `Service '${service}' check`,
    kind: registration.kind,
    successBeforePassing: registration.successBeforePassing ?? 0,
    failuresBeforeCritical: registration.failuresBeforeCritical ?? 0,
  };
  if (registration.kind === 'http') {
    definition.http = registration.http;
    definition.method = registration.method ?? 'GET';
    if (registration.headers !== undefined) definition.headers = registration.headers;
  }
  if (registration.kind === 'tcp') definition.tcp = registration.tcp;
  if (registration.kind === 'ttl') definition.ttlMs = registration.ttlMs;
  else {
    definition.intervalMs = registration.intervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    definition.timeoutMs = registration.timeoutMs ?? Math.min(DEFAULT_CHECK_TIMEOUT_MS, definition.intervalMs);
  }
  if (registration.deregisterCriticalAfterMs !== undefined) definition.deregisterCriticalAfterMs = registration.deregisterCriticalAfterMs;
  if (registration.notes !== undefined) definition.notes = registration.notes;
  return definition;
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

function isLoopback(host: string): boolean {
  return LOOPBACK_NAMES.has(host.toLowerCase()) || host.startsWith('127.');
}

/** `host` names the instance's own address (loopback names count as one another). */
function sameHost(host: string, address: string): boolean {
  const a = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const b = address.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return a === b || (isLoopback(a) && isLoopback(b));
}

function invalidCheck(message: string, details?: unknown): PorticoError {
  return new PorticoError('PORTICO_ERR_REGISTRY_INVALID_CHECK', { message, details });
}

function validateCheck(registration: InstanceRegistration, check: CheckRegistration, position: number): void {
  const where = `checks[${position}]`;
  if (check.kind === 'ttl') {
    if (check.ttlMs === undefined) throw invalidCheck(`${where}: a ttl check needs a ttl.`);
    if (check.ttlMs < MIN_CHECK_INTERVAL_MS) throw invalidCheck(`${where}: the ttl must be at least ${MIN_CHECK_INTERVAL_MS} ms.`);
    return;
  }
  if (check.intervalMs !== undefined && check.intervalMs < MIN_CHECK_INTERVAL_MS) {
    throw invalidCheck(`${where}: the interval must be at least ${MIN_CHECK_INTERVAL_MS} ms.`);
  }
  if (check.timeoutMs !== undefined && check.timeoutMs <= 0) throw invalidCheck(`${where}: the timeout must be positive.`);
  let host: string;
  if (check.kind === 'http') {
    if (check.http === undefined) throw invalidCheck(`${where}: an http check needs a URL.`);
    let url: URL;
    try {
      url = new URL(check.http);
    } catch {
      throw invalidCheck(`${where}: "${check.http}" is not a URL.`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidCheck(`${where}: the URL must be http:// or https://.`);
    host = url.hostname;
  } else {
    if (check.tcp === undefined) throw invalidCheck(`${where}: a tcp check needs host:port.`);
    const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(check.tcp);
    if (match === null || Number(match[2]) < 1 || Number(match[2]) > 65535) {
      throw invalidCheck(`${where}: "${check.tcp}" is not host:port.`);
    }
    host = match[1] as string;
  }
  // The control plane probes from inside the network: a check aimed elsewhere would let anyone who may
  // register make it send requests to arbitrary hosts.
  if (!sameHost(host, registration.address)) {
    throw invalidCheck(`${where}: a check may probe only the instance's own address (${registration.address}), not ${host}.`, {
      address: registration.address,
      target: host,
    });
  }
}

/**
 * Checks a schema cannot express, the same for every backend: each kind has its target, intervals and
 * TTLs respect the floor, and probes aim only at the instance's own address.
 * @throws PorticoError `PORTICO_ERR_REGISTRY_INVALID_CHECK`, naming the check.
 */
export function validateChecks(registration: InstanceRegistration): void {
  (registration.checks ?? []).forEach((check, i) => validateCheck(registration, check, i));
}

/**
 * Apply one result (a probe's, or a heartbeat's) to a check, as Consul's status handler does: a
 * passing or warning result takes effect once `successBeforePassing` consecutive non-critical results
 * have arrived, a critical one once `failuresBeforeCritical` consecutive critical results have; until
 * then only the output changes. With the defaults (0) every result takes effect at once.
 */
export function applyCheckResult(check: CheckState, result: HealthStatus, output: string, now: Date): CheckState {
  const next: CheckState = { ...check, output, lastResultAt: now };
  if (check.kind === 'ttl' && check.ttlMs !== undefined) next.ttlExpiresAt = new Date(now.getTime() + check.ttlMs);
  let takesEffect: boolean;
  if (result === 'critical') {
    next.consecutiveFailures = check.consecutiveFailures + 1;
    next.consecutiveSuccesses = 0;
    takesEffect = next.consecutiveFailures >= check.failuresBeforeCritical;
  } else {
    next.consecutiveSuccesses = check.consecutiveSuccesses + 1;
    next.consecutiveFailures = 0;
    takesEffect = next.consecutiveSuccesses >= check.successBeforePassing;
  }
  if (takesEffect && result !== check.status) {
    next.status = result;
    next.statusSince = now;
  }
  return next;
}

/**
 * Order strings by code unit, as Consul (Go's `sort.Strings`) orders names and ids: the same for every
 * locale, and far cheaper than `localeCompare` on the read path.
 */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
