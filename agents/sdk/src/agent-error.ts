/**
 * What can go wrong between an agent and the control plane, sorted by what the agent does about it:
 *
 * - `unauthorized`: 401 or 403, the token is wrong, revoked, or not issued for this service. Fatal:
 *   retrying cannot help, so the agent stops and says so (the sidecar exits non-zero).
 * - `rejected`: another 4xx, the control plane refuses the registration as sent. Fatal.
 * - `lost`: 404 for the instance or its check: the control plane no longer has it (restarted with an
 *   empty store, or it was reaped). The agent registers its full local state again at once.
 * - `unavailable`: no answer, a timeout, 5xx, 408 or 429. The agent retries with backoff.
 * - `invalid_options`: the agent's own options are wrong (raised before any request).
 */
export type AgentErrorKind = 'unauthorized' | 'rejected' | 'lost' | 'unavailable' | 'invalid_options';

/** Codes the SDK gives errors that did not come from the control plane. */
export type AgentOwnCode =
  | 'PORTICO_ERR_AGENT_INVALID_OPTIONS'
  | 'PORTICO_ERR_AGENT_UNREACHABLE'
  | 'PORTICO_ERR_AGENT_UNEXPECTED_RESPONSE'
  | 'PORTICO_ERR_AGENT_STOPPED'
  | 'PORTICO_ERR_BUS_UNAVAILABLE'
  | 'PORTICO_ERR_BUS_INVALID_MESSAGE';

export interface AgentErrorOptions {
  kind: AgentErrorKind;
  /** The control plane's `PORTICO_ERR_*` code from the error body, or one of the SDK's own. */
  code: string;
  /** The HTTP status, when the control plane answered. */
  statusCode?: number;
  /** The control plane's `details`, e.g. the fields at fault. */
  details?: unknown;
  cause?: unknown;
}

/** The one error type the SDK raises. */
export class AgentError extends Error {
  readonly kind: AgentErrorKind;
  readonly code: string;
  readonly statusCode: number | undefined;
  readonly details: unknown;

  constructor(message: string, options: AgentErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.kind = options.kind;
    this.code = options.code;
    this.statusCode = options.statusCode;
    this.details = options.details;
  }

  /** True when retrying cannot help: the agent stops rather than loop. */
  get fatal(): boolean {
    return this.kind === 'unauthorized' || this.kind === 'rejected' || this.kind === 'invalid_options';
  }
}

export function isAgentError(value: unknown): value is AgentError {
  return value instanceof AgentError;
}
