import { type AgentError } from '@portico/sdk';
import { ControlPlaneClient } from '@portico/sdk/control-plane-client';
import { PorticoError } from '../../errors.js';

/*
 * What the two control-plane sources of a gateway running on its own share: their options, their
 * client (the SDK's, so the gateway speaks to the control plane exactly as agents do) and how a
 * refused token ends the start-up.
 */

/** The logging a source does: pino's subset, as the SDK's. */
export interface SourceLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ControlPlaneSourceOptions {
  /** The control plane's base URL (`PORTICO_GATEWAY_CONTROL_PLANE`). */
  controlPlane: string | URL;
  /** Its bearer token (`PORTICO_GATEWAY_TOKEN`): `viewer` may read both the registry and the routes. */
  token: string;
  logger?: SourceLogger;
  /** Time one read may take (default 10 s). */
  requestTimeoutMs?: number;
  /** Reconnect and re-read backoff (default 250 ms doubling to 10 s, with jitter). */
  reconnect?: { initialMs: number; maxMs: number };
}

export const silentLogger: SourceLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** The control plane's client for a source: one keep-alive pool of its own. */
export function sourceClient(options: ControlPlaneSourceOptions): ControlPlaneClient {
  const baseUrl = new URL(options.controlPlane);
  if (!baseUrl.pathname.endsWith('/')) baseUrl.pathname += '/';
  return new ControlPlaneClient({ baseUrl, token: options.token, requestTimeoutMs: options.requestTimeoutMs ?? 10_000 });
}

/** The error `start()` rejects with when the control plane refuses the token before anything was loaded. */
export function refusedError(error: AgentError, what: string): PorticoError {
  return new PorticoError('PORTICO_ERR_CONFIG_INVALID', {
    message: `PORTICO_GATEWAY_TOKEN: the control plane refused it while ${what} (${error.statusCode ?? 'no status'} ${error.code}); a token with the viewer role is enough.`,
    cause: error,
  });
}

/** A deferred promise: the first load, settled once. */
export function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting when it rejects (start() not awaited yet); the rejection is read from start().
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

