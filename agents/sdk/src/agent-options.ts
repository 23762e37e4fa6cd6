import { isIP } from 'node:net';
import { AgentError } from './agent-error.js';
import { type HealthOption } from './checks/local-check.js';
import { parseDuration } from './duration.js';
import { defaultInstanceId } from './instance-id.js';
import { type Logger } from './logger.js';

/** A duration: Go-style text (`"500ms"`, `"10s"`, `"1m30s"`) or a number of milliseconds. */
export type Duration = string | number;

/** What `createAgent` takes. Only `service`, `port`, `controlPlane` and `token` are required. */
export interface AgentOptions {
  /** The service's name in the registry (letters, digits, `_ . -`). */
  service: string;
  /** The port the service listens on. */
  port: number;
  /** The address others reach it at; default `127.0.0.1` (set the machine's or pod's address for other hosts). */
  address?: string;
  /** The instance id; default `<service>-<hash of service, host name, address, port>`, stable across restarts. */
  id?: string;
  tags?: string[];
  meta?: Record<string, string>;
  /** The local health check; default none: the heartbeat itself says "alive". See `HealthOption`. */
  health?: HealthOption;
  /** Time between checks (and heartbeats); default `10s`, at least `100ms`. */
  interval?: Duration;
  /** Time the check may take; default the interval, at most `10s`. */
  timeout?: Duration;
  /** The control plane's base URL, e.g. `http://127.0.0.1:8400`. */
  controlPlane: string | URL;
  /** A bearer token: an `agent` token issued for this service (or an operator's or admin's). */
  token: string;
  /** Deregister the instance once critical this long (`deregister_critical_service_after`); default `1m`; `0` or `null`: never. */
  deregisterAfter?: Duration | null;
  /** Time in maintenance before deregistering on `stop()`; default `5s`. */
  drain?: Duration;
  /** Time a request to the control plane may take; default `5s`. */
  requestTimeout?: Duration;
  /** Retry delays while the control plane is unreachable; default from `min(1s, interval/4)` doubling up to the interval. */
  reconnect?: { initial?: Duration; max?: Duration };
  /** A pino-compatible logger; default silent. */
  logger?: Logger;
}

/** The options resolved: defaults applied, durations in ms. */
export interface AgentConfig {
  service: string;
  id: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  intervalMs: number;
  timeoutMs: number;
  /**
   * The TTL registered: two intervals plus the timeout. A heartbeat leaves once per interval, after a
   * check that may take up to the timeout, so one lost or late heartbeat never turns a healthy instance
   * critical, while an agent that died is noticed within 2 × interval + timeout.
   */
  ttlMs: number;
  deregisterAfterMs: number | undefined;
  drainMs: number;
  requestTimeoutMs: number;
  reconnect: { initialMs: number; maxMs: number };
  controlPlane: URL;
}

const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const META_KEY = /^[A-Za-z0-9_-]{1,128}$/;
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** The control plane refuses intervals, TTLs and deregistration delays below this. */
const MIN_INTERVAL_MS = 100;

/**
 * Check and resolve the options, reporting every problem at once.
 * @throws AgentError `PORTICO_ERR_AGENT_INVALID_OPTIONS` naming each option at fault.
 */
export function resolveAgentConfig(options: AgentOptions): AgentConfig {
  const problems: string[] = [];
  const duration = (name: string, value: Duration | undefined, fallback: number, minimum: number): number => {
    if (value === undefined) return fallback;
    let ms: number;
    if (typeof value === 'number') ms = value;
    else {
      try {
        ms = parseDuration(value);
      } catch (error) {
        problems.push(`${name}: ${(error as Error).message}`);
        return fallback;
      }
    }
    if (!Number.isFinite(ms) || ms < minimum) {
      problems.push(`${name}: must be at least ${minimum} ms, not ${String(value)}`);
      return fallback;
    }
    return Math.round(ms);
  };

  if (typeof options.service !== 'string' || !SERVICE_NAME.test(options.service)) {
    problems.push(`service: "${String(options.service)}" is not a service name (letters, digits, _ . -; at most 63 characters)`);
  }
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) problems.push(`port: ${String(options.port)} is not a port (1-65535)`);
  const address = options.address ?? '127.0.0.1';
  if (isIP(address) === 0 && !HOST_NAME.test(address)) problems.push(`address: "${address}" is neither an IP address nor a host name`);
  const id = options.id ?? defaultInstanceId({ service: options.service, address, port: options.port });
  if (!INSTANCE_ID.test(id)) problems.push(`id: "${id}" is not an instance id (letters, digits, _ . : -; at most 128 characters)`);
  const tags = options.tags ?? [];
  for (const tag of tags) if (tag === '' || tag.length > 255) problems.push(`tags: "${tag}" must be 1 to 255 characters`);
  if (new Set(tags).size !== tags.length) problems.push('tags: a tag is repeated');
  const meta = options.meta ?? {};
  for (const [key, value] of Object.entries(meta)) {
    if (!META_KEY.test(key)) problems.push(`meta: the key "${key}" may hold only letters, digits, _ and - (at most 128)`);
    if (typeof value !== 'string' || value.length > 512) problems.push(`meta: the value of "${key}" must be a string of at most 512 characters`);
  }

  let controlPlane: URL | undefined;
  try {
    controlPlane = new URL(options.controlPlane);
    if (controlPlane.protocol !== 'http:' && controlPlane.protocol !== 'https:') throw new TypeError('not http');
    // A base path (a proxy's prefix) is kept: API paths are resolved relative to it.
    if (!controlPlane.pathname.endsWith('/')) controlPlane.pathname += '/';
  } catch {
    problems.push(`controlPlane: "${String(options.controlPlane)}" is not an http:// or https:// URL`);
  }
  if (typeof options.token !== 'string' || options.token.trim() === '') problems.push('token: required (an agent token issued for the service)');

  const intervalMs = duration('interval', options.interval, 10_000, MIN_INTERVAL_MS);
  const timeoutMs = duration('timeout', options.timeout, Math.min(intervalMs, 10_000), 1);
  const deregisterAfterMs =
    options.deregisterAfter === null || options.deregisterAfter === 0 || options.deregisterAfter === '0'
      ? undefined
      : duration('deregisterAfter', options.deregisterAfter, 60_000, MIN_INTERVAL_MS);
  const drainMs = duration('drain', options.drain, 5_000, 0);
  const requestTimeoutMs = duration('requestTimeout', options.requestTimeout, 5_000, 1);
  const maxMs = duration('reconnect.max', options.reconnect?.max, Math.max(intervalMs, MIN_INTERVAL_MS), 1);
  const initialMs = duration('reconnect.initial', options.reconnect?.initial, Math.min(1_000, intervalMs / 4, maxMs), 1);

  if (problems.length > 0 || controlPlane === undefined) {
    throw new AgentError(`Invalid agent options: ${problems.join('; ')}.`, { kind: 'invalid_options', code: 'PORTICO_ERR_AGENT_INVALID_OPTIONS', details: problems });
  }
  return {
    service: options.service,
    id,
    address,
    port: options.port,
    tags,
    meta,
    intervalMs,
    timeoutMs,
    ttlMs: 2 * intervalMs + timeoutMs,
    deregisterAfterMs,
    drainMs,
    requestTimeoutMs,
    reconnect: { initialMs, maxMs },
    controlPlane,
  };
}
