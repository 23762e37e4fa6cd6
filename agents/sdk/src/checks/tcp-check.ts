import { connect } from 'node:net';
import { describeNetworkError } from './http-check.js';
import { type CheckResult, type LocalCheck } from './local-check.js';

/** Splits `host:port` (`[v6]:port` too). */
function parseTarget(target: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(target);
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (host === undefined || !(port >= 1 && port <= 65535)) throw new RangeError(`"${target}" is not host:port`);
  return { host, port };
}

/** Whether `text` is a TCP check target (`host:port`). */
export function isTcpTarget(text: string): boolean {
  try {
    parseTarget(text);
    return true;
  } catch {
    return false;
  }
}

/** A TCP connection to `host:port` opens within the timeout: passing; otherwise critical. */
export function tcpCheck(target: string): LocalCheck {
  const { host, port } = parseTarget(target);
  const what = `TCP connect ${target}`;
  return {
    description: what,
    run(timeoutMs): Promise<CheckResult> {
      return new Promise((resolve) => {
        const socket = connect({ host, port });
        const done = (result: CheckResult) => {
          clearTimeout(timer);
          socket.destroy();
          resolve(result);
        };
        const timer = setTimeout(() => done({ status: 'critical', output: `${what}: no connection within ${timeoutMs} ms` }), timeoutMs);
        socket.once('connect', () => done({ status: 'passing', output: `${what}: Success` }));
        socket.once('error', (error) => done({ status: 'critical', output: `${what}: ${describeNetworkError(error)}` }));
      });
    },
  };
}
