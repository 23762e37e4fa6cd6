/**
 * The bodies Consul's agent endpoints take, as Portico validates them: the service definition of
 * `PUT /v1/agent/service/register` and the `{ Status, Output }` of `PUT /v1/agent/check/update/:id`.
 *
 * Consul decodes bodies with Go's `encoding/json`, which matches field names case-insensitively, and
 * also accepts the snake_case of its configuration files (`deregister_critical_service_after`); clients
 * rely on both (python-consul sends `name`, `port`, `check: { ttl }`). So a body is first brought to
 * Consul's documented spelling (`canonicalServiceDefinition`), then validated by the schema as strictly
 * as the admin API validates its own registrations: unknown fields are refused, never ignored.
 */

import { type Static, Type } from 'typebox';
import { PorticoError } from '../errors.js';
import { HEALTH_STATUSES, ID_PATTERN, SERVICE_NAME_PATTERN } from '../registry/registry.js';

const HEADER_NAME_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$";
const META_KEY_PATTERN = '^[A-Za-z0-9_-]{1,128}$';

function duration(description: string) {
  return Type.String({ minLength: 1, maxLength: 64, description: `${description} A Go-style duration: "500ms", "10s", "1m30s".` });
}

/** One check of a service definition (Consul's `CheckType`), limited to the kinds Portico runs. */
export const ConsulCheckDefinition = Type.Object(
  {
    CheckID: Type.Optional(Type.String({ pattern: ID_PATTERN })),
    Name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    Notes: Type.Optional(Type.String({ maxLength: 1000 })),
    Status: Type.Optional(Type.Enum([...HEALTH_STATUSES])),
    HTTP: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
    Method: Type.Optional(Type.Enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])),
    Header: Type.Optional(
      Type.Record(Type.String({ pattern: HEADER_NAME_PATTERN }), Type.Array(Type.String({ maxLength: 4096, pattern: '^[^\\r\\n]*$' }), { maxItems: 16 }), {
        additionalProperties: false,
        maxProperties: 32,
      }),
    ),
    TCP: Type.Optional(Type.String({ minLength: 1, maxLength: 300 })),
    TTL: Type.Optional(duration('ttl: a heartbeat must arrive within this.')),
    Interval: Type.Optional(duration('http/tcp: time between probes.')),
    Timeout: Type.Optional(duration('http/tcp: time a probe may take.')),
    DeregisterCriticalServiceAfter: Type.Optional(duration('Deregister the instance once this check has been critical this long.')),
    SuccessBeforePassing: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
    FailuresBeforeCritical: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  },
  { additionalProperties: false },
);
export type ConsulCheckDefinition = Static<typeof ConsulCheckDefinition>;

/**
 * Consul's service definition, as Portico accepts it. `Port` is required (Consul defaults it to 0,
 * which the gateway could not route to); `EnableTagOverride` is accepted and has no effect, as no
 * other agent rewrites Portico's tags.
 */
export const ConsulServiceDefinition = Type.Object(
  {
    Name: Type.String({ pattern: SERVICE_NAME_PATTERN }),
    ID: Type.Optional(Type.String({ pattern: ID_PATTERN })),
    Tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 64, uniqueItems: true })),
    Address: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
    Port: Type.Integer({ minimum: 1, maximum: 65535 }),
    Meta: Type.Optional(
      Type.Record(Type.String({ pattern: META_KEY_PATTERN }), Type.String({ maxLength: 512 }), { additionalProperties: false, maxProperties: 64 }),
    ),
    Weights: Type.Optional(
      Type.Object(
        {
          Passing: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
          Warning: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
        },
        { additionalProperties: false },
      ),
    ),
    EnableTagOverride: Type.Optional(Type.Boolean()),
    Check: Type.Optional(ConsulCheckDefinition),
    Checks: Type.Optional(Type.Array(ConsulCheckDefinition, { maxItems: 32 })),
  },
  { additionalProperties: false },
);
export type ConsulServiceDefinition = Static<typeof ConsulServiceDefinition>;

/** The body of `PUT /v1/agent/check/update/:check_id`. */
export const ConsulCheckUpdate = Type.Object(
  {
    Status: Type.Enum([...HEALTH_STATUSES]),
    Output: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type ConsulCheckUpdate = Static<typeof ConsulCheckUpdate>;

const SERVICE_FIELDS = ['Name', 'ID', 'Tags', 'Address', 'Port', 'Meta', 'Weights', 'EnableTagOverride', 'Check', 'Checks'] as const;
const CHECK_FIELDS = [
  'CheckID',
  'Name',
  'Notes',
  'Status',
  'HTTP',
  'Method',
  'Header',
  'TCP',
  'TTL',
  'Interval',
  'Timeout',
  'DeregisterCriticalServiceAfter',
  'SuccessBeforePassing',
  'FailuresBeforeCritical',
] as const;
/** Check kinds Consul has and Portico does not run: named, so the refusal can say so. */
const UNSUPPORTED_CHECK_FIELDS = ['Args', 'ScriptArgs', 'Script', 'DockerContainerID', 'Shell', 'GRPC', 'H2PING', 'UDP', 'OSService', 'AliasNode', 'AliasService'] as const;
const WEIGHT_FIELDS = ['Passing', 'Warning'] as const;
const UPDATE_FIELDS = ['Status', 'Output'] as const;

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isEmptyObject(value: unknown): boolean {
  return isObject(value) && Object.keys(value).length === 0;
}

/** How Go's decoder, with Consul's snake_case translations, compares a sent key with a field name. */
function fold(key: string): string {
  return key.toLowerCase().replaceAll('_', '');
}

/**
 * A copy of `value` with its keys spelled as `fields` spell them (unknown keys stay as sent, for the
 * schema to refuse by name). `null` reads as absent, as Go decodes it; so does `""` except for the
 * fields in `keepEmpty`, because Go clients send zero values for fields they leave unset.
 */
function canonical(
  value: unknown,
  fields: readonly string[],
  where: string,
  problems: string[],
  options: { aliases?: Readonly<Record<string, string>>; keepEmpty?: readonly string[] } = {},
): unknown {
  if (!isObject(value)) return value;
  const byFolded = new Map(fields.map((field) => [fold(field), field]));
  for (const [alias, field] of Object.entries(options.aliases ?? {})) byFolded.set(alias, field);
  const result: JsonObject = {};
  const sentAs = new Map<string, string>();
  for (const [key, item] of Object.entries(value)) {
    const field = byFolded.get(fold(key)) ?? key;
    if (item === null || (item === '' && !(options.keepEmpty ?? []).includes(field))) continue;
    const earlier = sentAs.get(field);
    if (earlier !== undefined) {
      problems.push(`${where} has both "${earlier}" and "${key}", which name the same field ${field}`);
      continue;
    }
    sentAs.set(field, key);
    result[field] = item;
  }
  return result;
}

function canonicalCheck(value: unknown, where: string, problems: string[]): unknown {
  const check = canonical(value, [...CHECK_FIELDS, ...UNSUPPORTED_CHECK_FIELDS], where, problems, { aliases: { id: 'CheckID' } });
  if (!isObject(check)) return check;
  for (const field of UNSUPPORTED_CHECK_FIELDS) {
    if (field in check) problems.push(`${where}/${field}: Portico runs HTTP, TCP and TTL checks; ${field} checks are not supported`);
  }
  return check;
}

function fail(problems: string[], checksOnly: boolean): never {
  throw new PorticoError(checksOnly ? 'PORTICO_ERR_REGISTRY_INVALID_CHECK' : 'PORTICO_ERR_REQUEST_INVALID', {
    message: `${problems.join('; ')}.`,
    details: problems.map((problem) => ({ location: problem.split(/[ :]/, 1)[0] ?? 'body', problem })),
  });
}

/**
 * A registration body with its keys in Consul's documented spelling, ready for the schema.
 * @throws PorticoError `PORTICO_ERR_REQUEST_INVALID` when two keys name one field;
 *   `PORTICO_ERR_REGISTRY_INVALID_CHECK` for check kinds Portico does not run (script, gRPC, ...).
 */
export function canonicalServiceDefinition(body: unknown): unknown {
  const problems: string[] = [];
  const service = canonical(body, SERVICE_FIELDS, 'body', problems, { keepEmpty: ['Name'] });
  if (isObject(service)) {
    if ('Weights' in service) service.Weights = canonical(service.Weights, WEIGHT_FIELDS, 'body/Weights', problems);
    if ('Check' in service) service.Check = canonicalCheck(service.Check, 'body/Check', problems);
    if (Array.isArray(service.Checks)) service.Checks = service.Checks.map((check, i) => canonicalCheck(check, `body/Checks/${i}`, problems));
    // Consul skips a check with nothing set (some clients send `"Check": {}` for "no check").
    if (isEmptyObject(service.Check)) delete service.Check;
    if (Array.isArray(service.Checks)) service.Checks = service.Checks.filter((check) => !isEmptyObject(check));
  }
  if (problems.length > 0) fail(problems, problems.every((problem) => problem.startsWith('body/Check')));
  return service;
}

/** A check update body with its keys in Consul's spelling. */
export function canonicalCheckUpdate(body: unknown): unknown {
  const problems: string[] = [];
  const update = canonical(body, UPDATE_FIELDS, 'body', problems, { keepEmpty: ['Output'] });
  if (problems.length > 0) fail(problems, false);
  return update;
}
