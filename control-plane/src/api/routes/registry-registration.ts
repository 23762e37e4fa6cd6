import { parseDuration } from '../../config/duration.js';
import { PorticoError } from '../../errors.js';
import { type CheckRegistration, type InstanceRegistration, isIpOrHostname, MIN_CHECK_INTERVAL_MS } from '../../registry/registry.js';
import { type RequestProblem } from '../error-handler.js';
import { type CheckRegistrationBody, type InstanceRegistrationBody } from '../schemas/registry.js';

type DurationField = 'interval' | 'timeout' | 'ttl' | 'deregisterCriticalAfter';

/** Fields that mean something for one kind of check only; sent with another kind they are mistakes. */
const KIND_ONLY: Readonly<Record<string, CheckRegistrationBody['kind'][]>> = {
  http: ['http'],
  method: ['http'],
  headers: ['http'],
  tcp: ['tcp'],
  interval: ['http', 'tcp'],
  timeout: ['http', 'tcp'],
  ttl: ['ttl'],
};

/** The minimum each duration field accepts, in ms. */
const MINIMUM_MS: Readonly<Record<DurationField, number>> = {
  interval: MIN_CHECK_INTERVAL_MS,
  timeout: 1,
  ttl: MIN_CHECK_INTERVAL_MS,
  deregisterCriticalAfter: MIN_CHECK_INTERVAL_MS,
};

function readDuration(check: CheckRegistrationBody, field: DurationField, location: string, problems: RequestProblem[]): number | undefined {
  const text = check[field];
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (error) {
    problems.push({ location, problem: error instanceof RangeError ? error.message : `"${text}" is not a duration` });
    return undefined;
  }
  const minimum = MINIMUM_MS[field];
  if (ms < minimum) {
    problems.push({ location, problem: `must be at least ${minimum === 1 ? '1ms' : `${minimum}ms`}, not "${text}"` });
    return undefined;
  }
  return ms;
}

function toCheck(check: CheckRegistrationBody, position: number, problems: RequestProblem[]): CheckRegistration {
  const where = `body/checks/${position}`;
  for (const [field, kinds] of Object.entries(KIND_ONLY)) {
    if (check[field as keyof CheckRegistrationBody] !== undefined && !kinds.includes(check.kind)) {
      problems.push({ location: `${where}/${field}`, problem: `not allowed on a ${check.kind} check (only ${kinds.join(' and ')})` });
    }
  }
  if (check.kind === 'http' && check.http === undefined) problems.push({ location: where, problem: 'an http check needs "http", the URL to probe' });
  if (check.kind === 'tcp' && check.tcp === undefined) problems.push({ location: where, problem: 'a tcp check needs "tcp", the host:port to probe' });
  if (check.kind === 'ttl' && check.ttl === undefined) problems.push({ location: where, problem: 'a ttl check needs "ttl", the time a heartbeat is good for' });

  const registration: CheckRegistration = { kind: check.kind };
  if (check.id !== undefined) registration.id = check.id;
  if (check.name !== undefined) registration.name = check.name;
  if (check.http !== undefined) registration.http = check.http;
  if (check.method !== undefined) registration.method = check.method;
  if (check.headers !== undefined) registration.headers = check.headers;
  if (check.tcp !== undefined) registration.tcp = check.tcp;
  const intervalMs = readDuration(check, 'interval', `${where}/interval`, problems);
  if (intervalMs !== undefined) registration.intervalMs = intervalMs;
  const timeoutMs = readDuration(check, 'timeout', `${where}/timeout`, problems);
  if (timeoutMs !== undefined) registration.timeoutMs = timeoutMs;
  const ttlMs = readDuration(check, 'ttl', `${where}/ttl`, problems);
  if (ttlMs !== undefined) registration.ttlMs = ttlMs;
  const deregisterMs = readDuration(check, 'deregisterCriticalAfter', `${where}/deregisterCriticalAfter`, problems);
  if (deregisterMs !== undefined) registration.deregisterCriticalAfterMs = deregisterMs;
  if (check.successBeforePassing !== undefined) registration.successBeforePassing = check.successBeforePassing;
  if (check.failuresBeforeCritical !== undefined) registration.failuresBeforeCritical = check.failuresBeforeCritical;
  if (check.status !== undefined) registration.status = check.status;
  if (check.notes !== undefined) registration.notes = check.notes;
  return registration;
}

/**
 * The domain registration for `PUT /instances/:id`, after the checks a schema cannot express: the
 * address is an IP or a host name, durations parse and respect their minimums, each check carries the
 * fields of its kind and no others, check ids are unique. Every problem is reported at once, by field.
 *
 * Problems all inside `checks` are `PORTICO_ERR_REGISTRY_INVALID_CHECK`; any other makes the whole
 * error `PORTICO_ERR_REQUEST_INVALID`. The backend then checks what needs the registry's state (check
 * ids held by other instances) and that probes aim at the instance's own address.
 */
export function toInstanceRegistration(id: string, body: InstanceRegistrationBody): InstanceRegistration {
  const problems: RequestProblem[] = [];
  if (!isIpOrHostname(body.address)) {
    problems.push({ location: 'body/address', problem: `"${body.address}" is neither an IP address nor a host name` });
  }
  const checks = (body.checks ?? []).map((check, i) => toCheck(check, i, problems));
  const seen = new Map<string, number>();
  (body.checks ?? []).forEach((check, i) => {
    if (check.id === undefined) return;
    const first = seen.get(check.id);
    if (first !== undefined) problems.push({ location: `body/checks/${i}/id`, problem: `"${check.id}" is used by checks/${first} already` });
    else seen.set(check.id, i);
  });

  if (problems.length > 0) {
    const onlyChecks = problems.every((p) => p.location.startsWith('body/checks/'));
    throw new PorticoError(onlyChecks ? 'PORTICO_ERR_REGISTRY_INVALID_CHECK' : 'PORTICO_ERR_REQUEST_INVALID', {
      message: `Invalid ${onlyChecks ? 'check' : 'request'}: ${problems.map((p) => `${p.location} ${p.problem}`).join('; ')}.`,
      details: problems,
    });
  }

  const registration: InstanceRegistration = { id, service: body.service, address: body.address, port: body.port };
  if (body.tags !== undefined) registration.tags = body.tags;
  if (body.meta !== undefined) registration.meta = body.meta;
  if (body.weights !== undefined) registration.weights = body.weights;
  if (body.checks !== undefined) registration.checks = checks;
  return registration;
}
