import { connect } from 'node:net';
import { describeNetworkError } from './network-error.js';
import { type ProbeOptions, type ProbeResult } from './probe-result.js';

/** What a TCP probe connects to. */
export interface TcpProbeTarget {
  /** A host name or IP address (IPv6 without brackets). */
  host: string;
  port: number;
  /** The connection must open within this. */
  timeoutMs: number;
}

/**
 * Probe a TCP endpoint once, as Consul does: `passing` when a connection opens within the timeout
 * (it is closed at once, nothing is sent), else `critical`. Outputs read
 * `TCP connect 127.0.0.1:9: Success` or `TCP connect 127.0.0.1:9: Connection refused`.
 *
 * It connects to exactly the address it is given; choosing one that belongs to the instance is the
 * caller's job. Never rejects.
 */
export function probeTcp(target: TcpProbeTarget, options: ProbeOptions = {}): Promise<ProbeResult> {
  const prefix = `TCP connect ${formatHostPort(target.host, target.port)}`;
  if (!isPort(target.port)) return Promise.resolve({ status: 'critical', output: `${prefix}: Invalid port` });
  if (options.signal?.aborted === true) return Promise.resolve({ status: 'critical', output: `${prefix}: Probe cancelled` });

  return new Promise<ProbeResult>((resolve) => {
    const socket = connect({ host: target.host, port: target.port });
    let settled = false;
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', cancel);
      socket.destroy();
      resolve(result);
    };
    const critical = (reason: string): void => finish({ status: 'critical', output: `${prefix}: ${capitalise(reason)}` });
    const cancel = (): void => critical('probe cancelled');

    const timer = setTimeout(() => critical(`timed out after ${target.timeoutMs} ms`), target.timeoutMs);
    timer.unref();
    options.signal?.addEventListener('abort', cancel, { once: true });
    socket.once('connect', () => finish({ status: 'passing', output: `${prefix}: Success` }));
    // Kept after settling: a destroyed socket may still report an error, which must not go unhandled.
    socket.on('error', (error) => critical(describeNetworkError(error)));
  });
}

/**
 * Split a TCP check's `host:port` (`[v6]:port` for IPv6) into its parts; `undefined` when it is not
 * one.
 */
export function parseHostPort(address: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address.trim());
  if (match === null) return undefined;
  const host = match[1] ?? match[2];
  const port = Number(match[3]);
  if (host === undefined || host === '' || !isPort(port)) return undefined;
  return { host, port };
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65_535;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
