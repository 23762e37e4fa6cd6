/**
 * Instances ↔ Consul's JSON: a validated service definition to an `InstanceRegistration`, and
 * instances and checks to the documents Consul's agent, catalog and health endpoints return, with
 * Consul's field names and casing.
 *
 * Portico presents itself as one Consul node (server and agent at once) on which every instance is
 * registered: node-level fields (`Node`, `Address`, the `serfHealth` check) describe the control plane,
 * service-level ones the instance.
 */

import { createHash } from 'node:crypto';
import { isIP, isIPv4 } from 'node:net';
import { hostname } from 'node:os';
import { parseDuration } from '../config/duration.js';
import { PorticoError } from '../errors.js';
import { type RequestProblem } from '../api/error-handler.js';
import {
  type CheckRegistration,
  type CheckState,
  type HealthStatus,
  type Instance,
  type InstanceRegistration,
  isIpOrHostname,
  MIN_CHECK_INTERVAL_MS,
} from '../registry/registry.js';
import { type ConsulCheckDefinition, type ConsulServiceDefinition } from './service-definition.js';

/** The one datacenter Portico serves. */
export const DATACENTER = 'dc1';

/**
 * The Consul version `/v1/agent/self` reports. Clients gate features on it; this is the release whose
 * HTTP API the endpoints here follow.
 */
export const CONSUL_COMPATIBLE_VERSION = '1.15.0';

/** Consul's prefix for the critical check it adds to a service in maintenance. */
export const MAINTENANCE_CHECK_PREFIX = '_service_maintenance:';
const DEFAULT_MAINTENANCE_REASON = 'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';

/** Consul keeps at most this much of a check's output (its `check_output_max_size` default). */
export const MAX_CHECK_OUTPUT = 4096;

/** The node Portico presents itself as. */
export interface ConsulNode {
  /** A UUID, stable for a given name. */
  id: string;
  name: string;
  address: string;
  datacenter: string;
}

/** The node for `name` (default: this host's name) at `address` (default 127.0.0.1). */
export function consulNode(options: { name?: string; address?: string } = {}): ConsulNode {
  const name = options.name ?? hostname();
  const hash = createHash('sha256').update(`portico-node:${name}`).digest('hex');
  const id = `${hash.slice(0, 8)}-${hash.slice(8, 12)}-${hash.slice(12, 16)}-${hash.slice(16, 20)}-${hash.slice(20, 32)}`;
  return { id, name, address: options.address ?? '127.0.0.1', datacenter: DATACENTER };
}

/** Milliseconds as Go's `time.Duration.String()` writes them: `100ms`, `10s`, `1m30s`, `1h0m0s`, `0s`. */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${Number(ms.toFixed(6))}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = `${Number(((ms % 60_000) / 1000).toFixed(9))}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${minutes}m${seconds}`;
  return seconds;
}

/** Output cut to Consul's limit, saying so as Consul does. */
export function truncateOutput(output: string): string {
  if (output.length <= MAX_CHECK_OUTPUT) return output;
  return `${output.slice(0, MAX_CHECK_OUTPUT)} ...\n(Captured ${MAX_CHECK_OUTPUT} of ${output.length} bytes)`;
}

/** `0.0.0.0`, `::` and the like: addresses that mean "any", which Consul refuses for a service. */
function isUnspecified(address: string): boolean {
  const bare = address.replace(/^\[(.*)\]$/, '$1');
  return isIP(bare) !== 0 && /^[0.:]+$/.test(bare);
}

/** The caller's address as a service address: IPv4-mapped IPv6 reads as plain IPv4. */
export function callerAddress(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

type DurationField = 'Interval' | 'Timeout' | 'TTL' | 'DeregisterCriticalServiceAfter';
const MINIMUM_MS: Readonly<Record<DurationField, number>> = {
  Interval: MIN_CHECK_INTERVAL_MS,
  Timeout: 1,
  TTL: MIN_CHECK_INTERVAL_MS,
  DeregisterCriticalServiceAfter: MIN_CHECK_INTERVAL_MS,
};
/** Fields that belong to one kind of check; sent with another kind they are mistakes. */
const KIND_ONLY: Readonly<Record<string, readonly CheckRegistration['kind'][]>> = {
  Method: ['http'],
  Header: ['http'],
  Interval: ['http', 'tcp'],
  Timeout: ['http', 'tcp'],
};

function readDuration(check: ConsulCheckDefinition, field: DurationField, where: string, problems: RequestProblem[]): number | undefined {
  const text = check[field];
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (error) {
    problems.push({ location: `${where}/${field}`, problem: error instanceof RangeError ? error.message : `"${text}" is not a duration` });
    return undefined;
  }
  // Go's zero duration is how Consul clients say "not set".
  if (ms === 0 && field === 'DeregisterCriticalServiceAfter') return undefined;
  const minimum = MINIMUM_MS[field];
  if (ms < minimum) {
    problems.push({ location: `${where}/${field}`, problem: `must be at least ${minimum}ms, not "${text}"` });
    return undefined;
  }
  return ms;
}

function toCheckRegistration(check: ConsulCheckDefinition, where: string, problems: RequestProblem[]): CheckRegistration | undefined {
  const kinds = (['HTTP', 'TCP', 'TTL'] as const).filter((field) => check[field] !== undefined);
  if (kinds.length !== 1) {
    problems.push({
      location: where,
      problem: kinds.length === 0 ? 'a check needs one of HTTP, TCP or TTL (the kinds of check Portico runs)' : `has ${kinds.join(' and ')}: a check is of one kind only`,
    });
    return undefined;
  }
  const kind = kinds[0] === 'HTTP' ? 'http' : kinds[0] === 'TCP' ? 'tcp' : 'ttl';
  for (const [field, allowed] of Object.entries(KIND_ONLY)) {
    if (check[field as keyof ConsulCheckDefinition] !== undefined && !allowed.includes(kind)) {
      problems.push({ location: `${where}/${field}`, problem: `not allowed on a ${kind.toUpperCase()} check` });
    }
  }
  if (kind !== 'ttl' && check.Interval === undefined) {
    problems.push({ location: `${where}/Interval`, problem: `an ${kind.toUpperCase()} check needs an Interval` });
  }

  const registration: CheckRegistration = { kind };
  if (check.CheckID !== undefined) registration.id = check.CheckID;
  if (check.Name !== undefined) registration.name = check.Name;
  if (check.HTTP !== undefined) registration.http = check.HTTP;
  if (check.Method !== undefined) registration.method = check.Method;
  if (check.Header !== undefined) {
    registration.headers = Object.fromEntries(Object.entries(check.Header).map(([name, values]) => [name, values.join(', ')]));
  }
  if (check.TCP !== undefined) registration.tcp = check.TCP;
  const intervalMs = readDuration(check, 'Interval', where, problems);
  if (intervalMs !== undefined) registration.intervalMs = intervalMs;
  const timeoutMs = readDuration(check, 'Timeout', where, problems);
  if (timeoutMs !== undefined) registration.timeoutMs = timeoutMs;
  const ttlMs = readDuration(check, 'TTL', where, problems);
  if (ttlMs !== undefined) registration.ttlMs = ttlMs;
  const deregisterMs = readDuration(check, 'DeregisterCriticalServiceAfter', where, problems);
  if (deregisterMs !== undefined) registration.deregisterCriticalAfterMs = deregisterMs;
  if (check.SuccessBeforePassing !== undefined) registration.successBeforePassing = check.SuccessBeforePassing;
  if (check.FailuresBeforeCritical !== undefined) registration.failuresBeforeCritical = check.FailuresBeforeCritical;
  if (check.Status !== undefined) registration.status = check.Status;
  if (check.Notes !== undefined) registration.notes = check.Notes;
  return registration;
}

/**
 * The registration a validated service definition stands for, after the checks its schema cannot
 * express: the address (the caller's when none is given, as a Consul agent would use its own) is an
 * IP or a host name and not "any"; each check has one kind, the fields of that kind only, durations
 * that parse and respect their minimums; check ids are unique. Every problem is reported at once.
 *
 * @throws PorticoError `PORTICO_ERR_REGISTRY_INVALID_CHECK` when every problem is in a check,
 *   `PORTICO_ERR_REQUEST_INVALID` otherwise.
 */
export function toInstanceRegistration(definition: ConsulServiceDefinition, caller: string): InstanceRegistration {
  const problems: RequestProblem[] = [];
  const address = definition.Address ?? callerAddress(caller);
  if (isUnspecified(address)) problems.push({ location: 'body/Address', problem: `"${address}" is not a service address: it means any address` });
  else if (!isIpOrHostname(address)) problems.push({ location: 'body/Address', problem: `"${address}" is neither an IP address nor a host name` });

  const sent = [
    ...(definition.Check === undefined ? [] : [{ check: definition.Check, where: 'body/Check' }]),
    ...(definition.Checks ?? []).map((check, i) => ({ check, where: `body/Checks/${i}` })),
  ];
  const checks = sent.map(({ check, where }) => toCheckRegistration(check, where, problems));
  const seen = new Map<string, string>();
  for (const { check, where } of sent) {
    if (check.CheckID === undefined) continue;
    const first = seen.get(check.CheckID);
    if (first !== undefined) problems.push({ location: `${where}/CheckID`, problem: `"${check.CheckID}" is used by ${first} already` });
    else seen.set(check.CheckID, where);
  }

  if (problems.length > 0) {
    const checksOnly = problems.every((p) => p.location.startsWith('body/Check'));
    throw new PorticoError(checksOnly ? 'PORTICO_ERR_REGISTRY_INVALID_CHECK' : 'PORTICO_ERR_REQUEST_INVALID', {
      message: `${problems.map((p) => `${p.location} ${p.problem}`).join('; ')}.`,
      details: problems,
    });
  }

  const registration: InstanceRegistration = { id: definition.ID ?? definition.Name, service: definition.Name, address, port: definition.Port };
  if (definition.Tags !== undefined) registration.tags = definition.Tags;
  if (definition.Meta !== undefined) registration.meta = definition.Meta;
  if (definition.Weights !== undefined) registration.weights = { passing: definition.Weights.Passing ?? 1, warning: definition.Weights.Warning ?? 1 };
  if (sent.length > 0) registration.checks = checks.filter((check) => check !== undefined);
  return registration;
}

/** Consul's `AgentService`, as `/v1/agent/services` lists it. */
export function agentService(instance: Instance, node: ConsulNode) {
  return {
    ID: instance.id,
    Service: instance.service,
    Tags: instance.tags,
    Meta: instance.meta,
    Port: instance.port,
    Address: instance.address,
    Weights: { Passing: instance.weights.passing, Warning: instance.weights.warning },
    EnableTagOverride: false,
    Datacenter: node.datacenter,
  };
}

function taggedAddresses(address: string): Record<string, string> {
  const family = isIPv4(address) ? 'ipv4' : 'ipv6';
  return { lan: address, [`lan_${family}`]: address, wan: address, [`wan_${family}`]: address };
}

/** Consul's `Node`, as health entries carry it. */
export function consulNodeView(node: ConsulNode) {
  return {
    ID: node.id,
    Node: node.name,
    Address: node.address,
    Datacenter: node.datacenter,
    TaggedAddresses: taggedAddresses(node.address),
    Meta: { 'consul-network-segment': '' },
    CreateIndex: 1,
    ModifyIndex: 1,
  };
}

/** One entry of `/v1/catalog/service/:name` (Consul's `CatalogService`). */
export function catalogService(instance: Instance, node: ConsulNode) {
  return {
    ID: node.id,
    Node: node.name,
    Address: node.address,
    Datacenter: node.datacenter,
    TaggedAddresses: taggedAddresses(node.address),
    NodeMeta: { 'consul-network-segment': '' },
    ServiceKind: '',
    ServiceID: instance.id,
    ServiceName: instance.service,
    ServiceTags: instance.tags,
    ServiceAddress: instance.address,
    ServiceWeights: { Passing: instance.weights.passing, Warning: instance.weights.warning },
    ServiceMeta: instance.meta,
    ServicePort: instance.port,
    ServiceSocketPath: '',
    ServiceEnableTagOverride: false,
    ServiceProxy: { Mode: '', MeshGateway: {}, Expose: {} },
    ServiceConnect: {},
    CreateIndex: instance.createIndex,
    ModifyIndex: instance.modifyIndex,
  };
}

/** Consul's `HealthCheck`. */
export interface ConsulHealthCheck {
  Node: string;
  CheckID: string;
  Name: string;
  Status: HealthStatus;
  Notes: string;
  Output: string;
  ServiceID: string;
  ServiceName: string;
  ServiceTags: string[];
  Type: string;
  Interval: string;
  Timeout: string;
  ExposedPort: number;
  Definition: Record<string, unknown>;
  CreateIndex: number;
  ModifyIndex: number;
}

function checkView(instance: Instance, check: CheckState, node: ConsulNode): ConsulHealthCheck {
  const interval = check.intervalMs === undefined ? '' : formatGoDuration(check.intervalMs);
  const timeout = check.timeoutMs === undefined ? '' : formatGoDuration(check.timeoutMs);
  return {
    Node: node.name,
    CheckID: check.id,
    Name: check.name,
    Status: check.status,
    Notes: check.notes ?? '',
    Output: check.output,
    ServiceID: instance.id,
    ServiceName: instance.service,
    ServiceTags: instance.tags,
    Type: check.kind,
    Interval: interval,
    Timeout: timeout,
    ExposedPort: 0,
    Definition: {
      HTTP: check.http ?? '',
      Header: check.headers === undefined ? null : Object.fromEntries(Object.entries(check.headers).map(([name, value]) => [name, [value]])),
      Method: check.method ?? '',
      Body: '',
      TLSServerName: '',
      TLSSkipVerify: false,
      TCP: check.tcp ?? '',
      Interval: interval === '' ? '0s' : interval,
      Timeout: timeout === '' ? '0s' : timeout,
      DeregisterCriticalServiceAfter: formatGoDuration(check.deregisterCriticalAfterMs ?? 0),
    },
    CreateIndex: instance.createIndex,
    ModifyIndex: instance.modifyIndex,
  };
}

/** The critical check Consul adds to a service in maintenance. */
function maintenanceCheck(instance: Instance, node: ConsulNode): ConsulHealthCheck | undefined {
  if (instance.maintenance === null) return undefined;
  return {
    Node: node.name,
    CheckID: `${MAINTENANCE_CHECK_PREFIX}${instance.id}`,
    Name: 'Service Maintenance Mode',
    Status: 'critical',
    Notes: instance.maintenance.reason === '' ? DEFAULT_MAINTENANCE_REASON : instance.maintenance.reason,
    Output: '',
    ServiceID: instance.id,
    ServiceName: instance.service,
    ServiceTags: instance.tags,
    Type: 'maintenance',
    Interval: '',
    Timeout: '',
    ExposedPort: 0,
    Definition: {},
    CreateIndex: instance.modifyIndex,
    ModifyIndex: instance.modifyIndex,
  };
}

/** The node's own check: the control plane answering is what Consul's gossip check would show. */
export function serfHealthCheck(node: ConsulNode): ConsulHealthCheck {
  return {
    Node: node.name,
    CheckID: 'serfHealth',
    Name: 'Serf Health Status',
    Status: 'passing',
    Notes: '',
    Output: 'Agent alive and reachable',
    ServiceID: '',
    ServiceName: '',
    ServiceTags: [],
    Type: '',
    Interval: '',
    Timeout: '',
    ExposedPort: 0,
    Definition: {},
    CreateIndex: 1,
    ModifyIndex: 1,
  };
}

/** An instance's checks as Consul lists them: its own, then the maintenance check when it has one. */
export function serviceChecks(instance: Instance, node: ConsulNode): ConsulHealthCheck[] {
  const checks = instance.checks.map((check) => checkView(instance, check, node));
  const maintenance = maintenanceCheck(instance, node);
  return maintenance === undefined ? checks : [...checks, maintenance];
}

/** One entry of `/v1/health/service/:name` (Consul's `ServiceEntry`). */
export function healthServiceEntry(instance: Instance, node: ConsulNode) {
  return {
    Node: consulNodeView(node),
    Service: { ...agentService(instance, node), CreateIndex: instance.createIndex, ModifyIndex: instance.modifyIndex },
    Checks: [...serviceChecks(instance, node), serfHealthCheck(node)],
  };
}

/** `/v1/agent/self`: enough of Consul's document for clients that read the datacenter, node and version. */
export function agentSelf(node: ConsulNode) {
  return {
    Config: {
      Datacenter: node.datacenter,
      PrimaryDatacenter: node.datacenter,
      NodeName: node.name,
      NodeID: node.id,
      Revision: 'portico',
      Server: true,
      Version: CONSUL_COMPATIBLE_VERSION,
    },
    DebugConfig: {},
    Coord: null,
    Member: {
      Name: node.name,
      Addr: node.address,
      Port: 8301,
      Tags: {
        dc: node.datacenter,
        id: node.id,
        role: 'consul',
        port: '8300',
        build: `${CONSUL_COMPATIBLE_VERSION}:portico`,
        vsn: '2',
        vsn_min: '2',
        vsn_max: '3',
      },
      Status: 1,
      ProtocolMin: 1,
      ProtocolMax: 5,
      ProtocolCur: 2,
      DelegateMin: 2,
      DelegateMax: 5,
      DelegateCur: 4,
    },
    Stats: {},
    Meta: { 'consul-network-segment': '' },
  };
}
