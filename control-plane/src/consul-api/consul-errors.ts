/**
 * Errors on `/v1` in Consul's style: a plain-text body and Consul's status codes (403 for every ACL
 * problem, 500 for an unknown datacenter), opening with the words Consul uses, which clients match on
 * ("ACL not found", "Permission denied", "does not have associated TTL"). Portico's error code follows
 * in parentheses, then Portico's own explanation:
 *
 *     Permission denied (PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN): The token "ci" may not ...
 */

import { type FastifyError, type FastifyInstance } from 'fastify';
import { describeValidationIssue } from '../api/error-handler.js';
import { type ErrorCode, PorticoError } from '../errors.js';

interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

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

/** Fastify's own errors for bodies it could not take. */
const FRAMEWORK_ERRORS: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'PORTICO_ERR_REQUEST_MALFORMED_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'PORTICO_ERR_REQUEST_MALFORMED_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PORTICO_ERR_REQUEST_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'PORTICO_ERR_REQUEST_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'PORTICO_ERR_REQUEST_INVALID',
};

/** Any error thrown while serving `/v1`, as a `PorticoError`. */
export function asPorticoError(error: FastifyError & { validation?: ValidationIssue[]; validationContext?: string }, bodyLimit: number): PorticoError {
  if (error instanceof PorticoError) return error;
  if (Array.isArray(error.validation)) {
    const problems = error.validation.map((issue) => describeValidationIssue(error.validationContext ?? 'request', issue));
    return new PorticoError('PORTICO_ERR_REQUEST_INVALID', { message: `${problems.map((p) => `${p.location} ${p.problem}`).join('; ')}.`, details: problems });
  }
  const mapped = error.code === undefined ? undefined : FRAMEWORK_ERRORS[error.code];
  if (mapped === 'PORTICO_ERR_REQUEST_TOO_LARGE') {
    return new PorticoError(mapped, { message: `The request body is larger than the limit of ${bodyLimit} bytes.`, cause: error });
  }
  if (mapped !== undefined) return new PorticoError(mapped, { message: `${new PorticoError(mapped).message} ${error.message}`, cause: error });
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new PorticoError('PORTICO_ERR_REQUEST_INVALID', { message: error.message, cause: error });
  }
  return new PorticoError('PORTICO_ERR_INTERNAL', { cause: error });
}

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
    const portico = asPorticoError(error, options.bodyLimit);
    const { status, text } = consulErrorResponse(portico);
    if (status >= 500 && portico.code !== 'PORTICO_ERR_CONSUL_UNKNOWN_DATACENTER') request.log.error({ err: error }, 'consul api request failed');
    else request.log.info({ code: portico.code, statusCode: status }, portico.message);
    return reply.code(status).type('text/plain; charset=utf-8').send(text);
  });
}
