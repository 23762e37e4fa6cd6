import { STATUS_CODES } from 'node:http';
import { httpRequest } from '../http-transport.js';
import { type CheckResult, type LocalCheck } from './local-check.js';

/** Characters of the response body kept in the output. */
const BODY_EXCERPT = 512;

/**
 * `GET <url>` on a fresh connection each time (as Consul's HTTP checks do: a pooled connection the
 * service closed would fail a probe of a healthy service). 2xx passing, 429 warning, anything else or
 * no answer within the timeout critical. The output is the status line and the start of the body.
 */
export function httpCheck(url: URL): LocalCheck {
  const what = `HTTP GET ${url.href}`;
  return {
    description: what,
    async run(timeoutMs): Promise<CheckResult> {
      try {
        const response = await httpRequest(url, { timeoutMs, agent: false, maxBodyBytes: BODY_EXCERPT, headers: { 'user-agent': 'portico-agent' } });
        const status = response.status >= 200 && response.status < 300 ? 'passing' : response.status === 429 ? 'warning' : 'critical';
        const body = response.body.trim();
        return { status, output: `${what}: ${response.status} ${STATUS_CODES[response.status] ?? ''}${body === '' ? '' : ` Output: ${body}`}` };
      } catch (error) {
        return { status: 'critical', output: `${what}: ${describeNetworkError(error)}` };
      }
    },
  };
}

/** A network error as an operator reads it: "connection refused", not an errno. */
export function describeNetworkError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENOTFOUND':
      return 'host not found';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
