import { type HealthStatus } from '../registry-types.js';
import { httpCheck } from './http-check.js';
import { tcpCheck } from './tcp-check.js';

/** One result of the local check, as the heartbeat carries it. */
export interface CheckResult {
  status: HealthStatus;
  /** What the check saw (a status line, an error); shown with the instance in the registry. */
  output: string;
}

/**
 * A health check written as a function. It may return a full result, a status, or a boolean
 * (`true` passing, `false` critical); throwing, or not settling within the timeout, is critical. The
 * signal aborts when the timeout passes.
 */
export type HealthCheckFunction = (signal: AbortSignal) => CheckResult | HealthStatus | boolean | Promise<CheckResult | HealthStatus | boolean>;

/**
 * How the agent checks the service, on its own machine:
 * - `{ path }`: `GET http://<address>:<port><path>`; 2xx passing, 429 warning, anything else critical
 *   (the control plane's HTTP-check rule);
 * - `{ tcp }`: a TCP connection opens; `true` for the instance's own address and port, or `host:port`;
 * - a function (see `HealthCheckFunction`).
 */
export type HealthOption = { path: string } | { tcp: true | string } | HealthCheckFunction;

/** A check ready to run. */
export interface LocalCheck {
  /** What it does, for the registry's check notes and the logs. */
  readonly description: string;
  /** Run once. Never rejects: every failure is a critical result with its reason. */
  run(timeoutMs: number): Promise<CheckResult>;
}

const STATUSES: readonly string[] = ['passing', 'warning', 'critical'];

/** `host:port` as written in a URL or a TCP target (IPv6 in brackets). */
export function hostPort(address: string, port: number): string {
  return `${address.includes(':') ? `[${address}]` : address}:${port}`;
}

function normalise(value: CheckResult | HealthStatus | boolean): CheckResult {
  if (value === true) return { status: 'passing', output: 'healthy' };
  if (value === false) return { status: 'critical', output: 'unhealthy' };
  if (typeof value === 'string') {
    return STATUSES.includes(value) ? { status: value, output: value } : { status: 'critical', output: `the health function returned "${String(value)}"` };
  }
  if (typeof value === 'object' && value !== null && STATUSES.includes(value.status)) return { status: value.status, output: String(value.output ?? '') };
  return { status: 'critical', output: 'the health function returned neither a status, a boolean nor { status, output }' };
}

function functionCheck(fn: HealthCheckFunction): LocalCheck {
  return {
    description: 'a health function in the service',
    async run(timeoutMs) {
      const abort = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<CheckResult>((resolve) => {
        timer = setTimeout(() => {
          abort.abort();
          resolve({ status: 'critical', output: `the health function did not answer within ${timeoutMs} ms` });
        }, timeoutMs);
      });
      try {
        const answer = Promise.resolve()
          .then(() => fn(abort.signal))
          .then(normalise, (error: unknown) => ({ status: 'critical' as const, output: `the health function failed: ${error instanceof Error ? error.message : String(error)}` }));
        return await Promise.race([answer, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** An in-process agent without a check: its heartbeat itself says the process is alive. */
const aliveCheck: LocalCheck = {
  description: 'the process is alive (no health check given)',
  run: () => Promise.resolve({ status: 'passing', output: `alive (pid ${process.pid})` }),
};

/** The check for an agent's `health` option; none means "alive" (see `aliveCheck`). */
export function createLocalCheck(health: HealthOption | undefined, target: { address: string; port: number }): LocalCheck {
  if (health === undefined) return aliveCheck;
  if (typeof health === 'function') return functionCheck(health);
  if ('path' in health) return httpCheck(new URL(health.path, `http://${hostPort(target.address, target.port)}`));
  return tcpCheck(health.tcp === true ? hostPort(target.address, target.port) : health.tcp);
}
