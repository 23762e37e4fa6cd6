/**
 * Errors on `/v1` in Consul's style: a plain-text body and Consul's status codes (403 for every ACL
 * problem, 500 for an unknown datacenter), opening with the words Consul uses, which clients match on
 * ("ACL not found", "Permission denied", "does not have associated TTL"). Portico's error code follows
 * in parentheses, then Portico's own explanation:
 *
 *     Permission denied (PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN): The token "ci" may not ...
 */

import { type FastifyError, type FastifyInstance } from 'fastify';
import { toPorticoError } from '../api/error-handler.js';
import { type ErrorCode, type PorticoError } from '../errors.js';

/** How Consul would answer each error: its status, and the words its message starts with. */
interface ConsulStyle {
  status?: number;
  reason: (error: PorticoError) => string;
}

function detail(error: PorticoError, key: string): string | undefined {
  const value: unknown = typeof error.details === 'object' && error.details !== null ? (error.details as Record<string, unknown>)[key] : undefined;
  return typeof value === 'string' ? value : undefined;
}

const STYLES: Partial<Record<ErrorCode, ConsulStyle>> = {
  PORTICO_ERR_REQUEST_INVALID: { reason: () => 'Bad request' },
  PORTICO_ERR_REQUEST_MALFORMED_JSON: { reason: () => 'Request decode failed' },
  PORTICO_ERR_REQUEST_TOO_LARGE: { reason: () => 'Request body too large' },
  PORTICO_ERR_REQUEST_UNSUPPORTED_MEDIA_TYPE: { reason: () => 'Unsupported media type' },
  PORTICO_ERR_REQUEST_NOT_FOUND: { reason: () => 'Unsupported endpoint' },
  PORTICO_ERR_REQUEST_METHOD_NOT_ALLOWED: { reason: () => 'Method not allowed' },
  PORTICO_ERR_AUTH_MISSING_TOKEN: { status: 403, reason: () => 'ACL not found' },
  PORTICO_ERR_AUTH_INVALID_TOKEN: { status: 403, reason: () => 'ACL not found' },
  PORTICO_ERR_AUTH_FORBIDDEN: { reason: () => 'Permission denied' },
  PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN: { reason: () => 'Permission denied' },
  PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND: {
    reason: (error) => {
      const id = detail(error, 'instanceId');
      return id === undefined ? 'Unknown service ID' : `Unknown service ID "${id}"`;
    },
  },
  PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND: {
    reason: (error) => `CheckID "${detail(error, 'checkId') ?? ''}" does not have associated TTL`,
  },
  PORTICO_ERR_REGISTRY_INVALID_CHECK: { reason: () => 'Invalid check' },
  PORTICO_ERR_REGISTRY_CHECK_ID_TAKEN: { reason: () => 'Invalid check' },
  PORTICO_ERR_CONSUL_UNKNOWN_DATACENTER: { status: 500, reason: () => 'No path to datacenter' },
};

/** The status and plain-text body Consul's style gives an error. */
export function consulErrorResponse(error: PorticoError): { status: number; text: string } {
  const style = STYLES[error.code];
  const reason = style?.reason(error) ?? (error.statusCode >= 500 ? 'Internal error' : 'Bad request');
  return { status: style?.status ?? error.statusCode, text: `${reason} (${error.code}): ${error.message}` };
}

/**
 * Answer every error in `scope` Consul's way. Set on the `/v1` scope, it replaces the admin API's
 * JSON error handler there only (Fastify encapsulation), including for bodies that fail to parse.
 */
export function installConsulErrorHandling(scope: FastifyInstance, options: { bodyLimit: number }): void {
  scope.setErrorHandler((error: FastifyError, request, reply) => {
    const portico = toPorticoError(error, options.bodyLimit);
    const { status, text } = consulErrorResponse(portico);
    if (status >= 500 && portico.code !== 'PORTICO_ERR_CONSUL_UNKNOWN_DATACENTER') request.log.error({ err: error }, 'consul api request failed');
    else request.log.info({ code: portico.code, statusCode: status }, portico.message);
    return reply.code(status).type('text/plain; charset=utf-8').send(text);
  });
}
