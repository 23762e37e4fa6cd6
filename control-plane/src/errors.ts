/**
 * The error catalogue. Every error Portico reports to a caller is defined here, once: a stable code
 * (`PORTICO_ERR_<AREA>_<WHAT>`), the HTTP status it maps to, whether retrying may help, and a default
 * message. Adapters map driver failures onto these codes (keeping the original as `cause`), so a caller
 * sees the same error whichever store, registry or broker sits behind the port.
 */

export interface ErrorDefinition {
  readonly status: number;
  readonly message: string;
  readonly retryable: boolean;
}

const define = (status: number, message: string, retryable = false): ErrorDefinition => ({
  status,
  message,
  retryable,
});

export const ErrorCatalogue = {
  // Requests: what a client sent could not be accepted as it is.
  PORTICO_ERR_REQUEST_INVALID: define(400, 'The request does not match the expected schema.'),
  PORTICO_ERR_REQUEST_MALFORMED_JSON: define(400, 'The request body is not valid JSON.'),
  PORTICO_ERR_REQUEST_TOO_LARGE: define(413, 'The request body is larger than the limit.'),
  PORTICO_ERR_REQUEST_UNSUPPORTED_MEDIA_TYPE: define(415, 'The request body has a content type that is not supported.'),
  PORTICO_ERR_REQUEST_NOT_FOUND: define(404, 'No such route.'),
  PORTICO_ERR_REQUEST_METHOD_NOT_ALLOWED: define(405, 'That method is not allowed on this route.'),

  // Authentication and authorisation.
  PORTICO_ERR_AUTH_MISSING_TOKEN: define(401, 'A bearer token is required: send "Authorization: Bearer <token>".'),
  PORTICO_ERR_AUTH_INVALID_TOKEN: define(401, 'The bearer token is not valid: it is unknown or has been revoked.'),
  PORTICO_ERR_AUTH_FORBIDDEN: define(403, 'This token\'s role may not do that.'),

  // Tokens.
  PORTICO_ERR_TOKEN_NOT_FOUND: define(404, 'No token has that id.'),
  PORTICO_ERR_TOKEN_NAME_TAKEN: define(409, 'A token with that name exists already.'),
  PORTICO_ERR_TOKEN_LAST_ADMIN: define(409, 'The last admin token cannot be deleted: create another admin token first.'),

  // Registry.
  PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND: define(404, 'No instance has that id.'),
  PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND: define(404, 'No check has that id.'),
  PORTICO_ERR_REGISTRY_SERVICE_NOT_FOUND: define(404, 'No service has that name.'),
  PORTICO_ERR_REGISTRY_INVALID_CHECK: define(400, 'The health check is not valid.'),
  PORTICO_ERR_REGISTRY_CHECK_ID_TAKEN: define(409, 'Another instance has a check with that id.'),
  PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN: define(403, 'This token may not register or change instances of that service.'),
  PORTICO_ERR_REGISTRY_UNAVAILABLE: define(503, 'The registry\'s source cannot be reached.', true),

  // Store.
  PORTICO_ERR_STORE_UNAVAILABLE: define(503, 'The store cannot be reached.', true),
  PORTICO_ERR_STORE_CONFLICT: define(409, 'The change conflicts with existing data.'),
  PORTICO_ERR_STORE_FAILED: define(500, 'The store failed to carry out the operation.'),
  PORTICO_ERR_STORE_MIGRATION_FAILED: define(500, 'A store migration failed.'),

  // Broker (Redis).
  PORTICO_ERR_BROKER_UNAVAILABLE: define(503, 'Redis cannot be reached.', true),

  // Queues and messages (admin API over BullMQ).
  PORTICO_ERR_QUEUE_NOT_FOUND: define(404, 'No service queue has that name.'),
  PORTICO_ERR_QUEUE_JOB_NOT_FOUND: define(404, 'Neither the queue nor its dead-letter queue holds a job with that id.'),
  PORTICO_ERR_QUEUE_JOB_NOT_FAILED: define(409, 'Only a failed job or a dead letter can be retried.'),
  PORTICO_ERR_QUEUE_JOB_ACTIVE: define(409, 'A worker is processing the job; it cannot be removed until it finishes.'),
  PORTICO_ERR_QUEUE_DEAD_LETTER_MALFORMED: define(409, 'The dead letter holds no message to replay; it can only be discarded.'),
  PORTICO_ERR_MESSAGING_UNAVAILABLE: define(503, 'Redis, which carries the messages, cannot be reached.', true),

  // Configuration (reported at start-up, never over HTTP).
  PORTICO_ERR_CONFIG_INVALID: define(500, 'The configuration is not valid.'),

  // Gateway routes (admin API).
  PORTICO_ERR_ROUTE_NOT_FOUND: define(404, 'No route has that id.'),
  PORTICO_ERR_ROUTE_NAME_TAKEN: define(409, 'A route with that name exists already.'),
  PORTICO_ERR_ROUTE_CONFLICT: define(409, 'Another route matches the same requests (same host, path prefix and a method in common).'),

  // Message topology (admin API).
  PORTICO_ERR_TOPOLOGY_INVALID_TYPE: define(400, 'A message type is not valid (letters, digits, ".", "_" and "-", up to 128, starting with a letter or digit) or is listed more than once.'),
  PORTICO_ERR_TOPOLOGY_TOO_MANY_TYPES: define(400, 'A service may consume at most 256 message types.'),
  PORTICO_ERR_TOPOLOGY_SERVICE_NOT_FOUND: define(404, 'That service consumes no message types.'),
  PORTICO_ERR_TOPOLOGY_SERVICE_FORBIDDEN: define(403, 'This token may not declare the message types of that service.'),

  // Gateway (answers on the gateway port, in the same JSON shape).
  PORTICO_ERR_GATEWAY_BAD_PATH: define(400, 'The request path cannot be routed safely.'),
  PORTICO_ERR_GATEWAY_SERVICE_NOT_FOUND: define(404, 'No service by that name is routed here.'),
  PORTICO_ERR_GATEWAY_NO_HEALTHY_INSTANCE: define(503, 'The service has no instance passing its health checks.', true),
  PORTICO_ERR_GATEWAY_UPSTREAM_UNREACHABLE: define(502, 'No instance of the service could be reached.', true),
  PORTICO_ERR_GATEWAY_UPSTREAM_TIMEOUT: define(504, 'The service did not answer in time.', true),
  PORTICO_ERR_GATEWAY_UPSTREAM_FAILED: define(502, 'The service\'s answer broke off.', true),
  PORTICO_ERR_GATEWAY_CIRCUIT_OPEN: define(503, 'The service is failing; the gateway is not sending it requests for a while.', true),
  PORTICO_ERR_GATEWAY_OVERLOADED: define(503, 'The service has as many requests in flight as it may have.', true),
  PORTICO_ERR_GATEWAY_UNAUTHORIZED: define(401, 'This route needs valid credentials.'),
  PORTICO_ERR_GATEWAY_RATE_LIMITED: define(429, 'Too many requests: slow down and retry after the time given.', true),
  PORTICO_ERR_GATEWAY_CORS_REJECTED: define(403, 'That origin may not call this route.'),
  PORTICO_ERR_GATEWAY_PART_FAILED: define(502, 'A service an aggregating route asks answered with an error.', true),
  PORTICO_ERR_GATEWAY_SOURCE_UNAVAILABLE: define(503, 'The gateway has not loaded its registry or routes from their source yet.', true),

  // Lifecycle.
  PORTICO_ERR_SERVER_SHUTTING_DOWN: define(503, 'The control plane is shutting down.', true),
  PORTICO_ERR_INTERNAL: define(500, 'An unexpected error occurred.'),

  // Consul-compatible API.
  PORTICO_ERR_CONSUL_UNKNOWN_DATACENTER: define(400, 'Portico serves one datacenter, "dc1"; there is no path to any other.'),
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ErrorCatalogue;

export interface PorticoErrorOptions {
  /** A message more specific than the catalogue's default, e.g. naming the field at fault. */
  message?: string;
  /** Structured detail a client can act on (the fields at fault, the limit exceeded). */
  details?: unknown;
  /** The underlying failure (a driver error), kept for logs; never sent to clients. */
  cause?: unknown;
}

/** The one error type Portico throws across its own boundaries. */
export class PorticoError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly retryable: boolean;
  readonly details: unknown;

  constructor(code: ErrorCode, options: PorticoErrorOptions = {}) {
    const definition = ErrorCatalogue[code];
    super(options.message ?? definition.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PorticoError';
    this.code = code;
    this.statusCode = definition.status;
    this.retryable = definition.retryable;
    this.details = options.details;
  }

  /** The body sent to an HTTP client: code, message, status and details; never the cause or a stack. */
  toJSON(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message, statusCode: this.statusCode };
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}

/** The JSON shape of every error response. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  statusCode: number;
  details?: unknown;
}

export function isPorticoError(value: unknown): value is PorticoError {
  return value instanceof PorticoError;
}
