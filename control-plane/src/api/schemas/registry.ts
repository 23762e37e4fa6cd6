import { type Static, Type } from 'typebox';
import { CHECK_KINDS, HEALTH_STATUSES, ID_PATTERN } from '../../registry/registry.js';
import { Timestamp } from './common.js';
import { ServiceName } from './tokens.js';

/**
 * Schemas of the registry's admin API: services, instances, checks, the event stream and Prometheus
 * service discovery. Durations travel as Go-style strings (`"500ms"`, `"10s"`, `"1m30s"`) both ways, so
 * a check read from the API can be sent back unchanged; the routes parse and format them.
 */

/** An instance's or a check's health. */
export const HealthStatus = Type.Enum([...HEALTH_STATUSES], {
  description: 'passing, warning or critical; an instance is as healthy as its worst check, and critical in maintenance.',
});

/** How a check learns its status. */
export const CheckKind = Type.Enum([...CHECK_KINDS], {
  description: 'http: the control plane probes a URL; tcp: it opens a connection; ttl: the instance reports heartbeats.',
});

/** An instance id (the path's `:id`). */
export const InstanceId = Type.String({
  pattern: ID_PATTERN,
  description: 'Letters, digits, _ . : - ; starting with a letter or digit; at most 128 characters. Stable across restarts.',
});

/** A check id. */
export const CheckId = Type.String({ pattern: ID_PATTERN, description: 'Unique in the registry; same alphabet as instance ids.' });

/** A Go-style duration string, with what it means here. */
function duration(description: string) {
  return Type.String({ minLength: 1, maxLength: 64, description: `${description} A Go-style duration: "500ms", "10s", "1m30s".` });
}

const HEADER_NAME_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$";
const META_KEY_PATTERN = '^[A-Za-z0-9_-]{1,128}$';

/** One check in a registration. */
export const CheckRegistrationBody = Type.Object(
  {
    id: Type.Optional(CheckId),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    kind: CheckKind,
    http: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'http: the URL probed; it must be on the instance\'s own address.' })),
    method: Type.Optional(Type.Enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], { description: 'http: default GET.' })),
    headers: Type.Optional(
      Type.Record(Type.String({ pattern: HEADER_NAME_PATTERN }), Type.String({ maxLength: 4096, pattern: '^[^\\r\\n]*$' }), {
        additionalProperties: false,
        maxProperties: 32,
        description: 'http: request headers.',
      }),
    ),
    tcp: Type.Optional(Type.String({ minLength: 1, maxLength: 300, description: 'tcp: host:port on the instance\'s own address.' })),
    interval: Type.Optional(duration('http/tcp: time between probes (default 10s, at least 100ms).')),
    timeout: Type.Optional(duration('http/tcp: time a probe may take (default the interval, at most 10s).')),
    ttl: Type.Optional(duration('ttl: a heartbeat must arrive within this (required, at least 100ms).')),
    deregisterCriticalAfter: Type.Optional(
      duration('Deregister the instance once this check has been critical this long (at least 100ms).'),
    ),
    successBeforePassing: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Consecutive successes before passing (default 0).' })),
    failuresBeforeCritical: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Consecutive failures before critical (default 0).' })),
    status: Type.Optional(Type.Enum([...HEALTH_STATUSES], { description: 'Status until the first result; default critical.' })),
    notes: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false, description: 'A health check of the instance.' },
);
export type CheckRegistrationBody = Static<typeof CheckRegistrationBody>;

/** The body of `PUT /instances/:id`; the id is the path's. */
export const InstanceRegistrationBody = Type.Object(
  {
    service: ServiceName,
    address: Type.String({ minLength: 1, maxLength: 253, description: 'An IPv4 or IPv6 address, or a DNS host name.' }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 64, uniqueItems: true })),
    meta: Type.Optional(
      Type.Record(Type.String({ pattern: META_KEY_PATTERN }), Type.String({ maxLength: 512 }), {
        additionalProperties: false,
        maxProperties: 64,
        description: 'Free key/value pairs; keys are letters, digits, _ and -.',
      }),
    ),
    weights: Type.Optional(
      Type.Object(
        {
          passing: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Default 1.' })),
          warning: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Default 1.' })),
        },
        { additionalProperties: false, description: 'Load-balancing weights by health.' },
      ),
    ),
    checks: Type.Optional(Type.Array(CheckRegistrationBody, { maxItems: 32 })),
  },
  { additionalProperties: false },
);
export type InstanceRegistrationBody = Static<typeof InstanceRegistrationBody>;

/** Path parameters of the instance routes. */
export const InstanceParams = Type.Object({ id: InstanceId });
/** Path parameters of `GET /services/:name`. */
export const ServiceParams = Type.Object({ name: ServiceName });

/** The body of `PUT /instances/:id/health`. */
export const HeartbeatBody = Type.Object(
  {
    status: HealthStatus,
    output: Type.Optional(Type.String({ maxLength: 4096, description: 'What the instance says about itself; shown with the check.' })),
    checkId: Type.Optional(Type.String({ pattern: ID_PATTERN, description: 'Which TTL check; needed only when the instance has several.' })),
  },
  { additionalProperties: false },
);

/** The body of `PUT /instances/:id/maintenance`. */
export const MaintenanceBody = Type.Object(
  {
    enabled: Type.Boolean({ description: 'true: the instance turns critical and gets no traffic; false: back to its checks\' health.' }),
    reason: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);

/** A check as read. */
export const CheckView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    kind: CheckKind,
    status: HealthStatus,
    output: Type.String({ description: 'The last probe\'s or heartbeat\'s output.' }),
    statusSince: Timestamp,
    lastResultAt: Type.Union([Timestamp, Type.Null()]),
    http: Type.Optional(Type.String()),
    method: Type.Optional(Type.String()),
    headers: Type.Optional(Type.Record(Type.String(), Type.String())),
    tcp: Type.Optional(Type.String()),
    interval: Type.Optional(duration('http/tcp: time between probes.')),
    timeout: Type.Optional(duration('http/tcp: time a probe may take.')),
    ttl: Type.Optional(duration('ttl: a heartbeat must arrive within this.')),
    ttlExpiresAt: Type.Optional(Type.Union([Timestamp, Type.Null()], { description: 'ttl: when the current heartbeat runs out.' })),
    deregisterCriticalAfter: Type.Optional(duration('Deregistered once critical this long.')),
    successBeforePassing: Type.Integer(),
    failuresBeforeCritical: Type.Integer(),
    notes: Type.Optional(Type.String()),
  },
  { description: 'A check and its state. Durations are Go-style strings, as registered.' },
);
export type CheckView = Static<typeof CheckView>;

/** An instance as read. */
export const InstanceView = Type.Object(
  {
    id: Type.String(),
    service: Type.String(),
    address: Type.String(),
    port: Type.Integer(),
    tags: Type.Array(Type.String()),
    meta: Type.Record(Type.String(), Type.String()),
    weights: Type.Object({ passing: Type.Integer(), warning: Type.Integer() }),
    health: HealthStatus,
    maintenance: Type.Union([Type.Object({ reason: Type.String(), since: Timestamp }), Type.Null()]),
    registeredAt: Timestamp,
    registeredBy: Type.Union([Type.String(), Type.Null()], { description: 'Id of the token that registered it.' }),
    createIndex: Type.Integer(),
    modifyIndex: Type.Integer(),
    checks: Type.Array(CheckView),
  },
  { description: 'An instance of a service, with its checks and aggregated health.' },
);
export type InstanceView = Static<typeof InstanceView>;

/** One service in the list. */
export const ServiceSummaryView = Type.Object({
  name: Type.String(),
  tags: Type.Array(Type.String(), { description: 'Union of its instances\' tags.' }),
  instances: Type.Object(
    { passing: Type.Integer(), warning: Type.Integer(), critical: Type.Integer() },
    { description: 'How many instances have each health.' },
  ),
});

/** `GET /services`. */
export const ServiceList = Type.Object({
  services: Type.Array(ServiceSummaryView, { description: 'Every service with at least one instance, by name.' }),
  index: Type.Integer({ description: 'The registry\'s index this reflects.' }),
});

/** `GET /services/:name`. */
export const ServiceDetail = Type.Object({
  name: Type.String(),
  instances: Type.Array(InstanceView),
  index: Type.Integer({ description: 'The service\'s index this reflects.' }),
});

/** The answer to a heartbeat. */
export const InstanceHealthView = Type.Object(
  {
    instanceId: Type.String(),
    service: Type.String(),
    health: HealthStatus,
    check: CheckView,
  },
  { description: 'The instance\'s health after the heartbeat, and the check it went to.' },
);

/** What every event's `data` holds; see the events route. */
export const RegistryEventData = Type.Object(
  {
    index: Type.Integer({ description: 'The registry index of the change; also the SSE id.' }),
    at: Timestamp,
    service: Type.String(),
    instanceId: Type.String(),
    health: Type.Optional(HealthStatus),
    previousHealth: Type.Optional(HealthStatus),
    reason: Type.Optional(Type.String({ description: 'instance.deregistered: api or critical_timeout.' })),
    instance: Type.Optional(InstanceView),
  },
  { description: 'An event\'s data; instance.deregistered carries reason instead of health and instance.' },
);
export type RegistryEventData = Static<typeof RegistryEventData>;

/** The `data` of a `reset` event: the whole registry. */
export const RegistrySnapshot = Type.Object({
  index: Type.Integer({ description: 'Every change up to this index is reflected.' }),
  services: Type.Array(Type.Object({ name: Type.String(), instances: Type.Array(InstanceView) })),
});
export type RegistrySnapshot = Static<typeof RegistrySnapshot>;

/** `GET /events` query: where to resume. */
export const EventsQuerystring = Type.Object(
  {
    since: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Start after this index (as Last-Event-ID does; the header wins when both are sent). 0: start with the whole registry.' }),
    ),
  },
  { additionalProperties: false },
);

/** `GET /events` headers: where to resume (wins over `since`). */
export const EventsHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'The id of the last event received: resume after it.' })),
});

/** `GET /sd/prometheus` filters. */
export const PrometheusSdQuerystring = Type.Object(
  {
    passing: Type.Optional(
      Type.Enum(['', 'true', 'false'], { description: 'Present (or true): only instances whose health is passing. Default: every instance.' }),
    ),
    service: Type.Optional(Type.Array(ServiceName, { maxItems: 100, description: 'Only these services (repeat the parameter for several).' })),
  },
  { additionalProperties: false },
);

/** One Prometheus http_sd target group. */
export const PrometheusTargetGroup = Type.Object({
  targets: Type.Array(Type.String({ description: 'host:port' })),
  labels: Type.Record(Type.String(), Type.String()),
});

/** The `GET /sd/prometheus` answer. */
export const PrometheusTargetGroups = Type.Array(PrometheusTargetGroup, {
  description: 'Prometheus http_sd: one group per instance, labelled with __meta_portico_* labels for relabelling.',
});
