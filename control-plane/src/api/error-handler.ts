import { type FastifyError, type FastifyInstance } from 'fastify';
import { type ErrorCode, PorticoError } from '../errors.js';

/** One problem found in a request, as sent in `details`. */
export interface RequestProblem {
  /** Where: `body`, `body/role`, `querystring/limit`, ... */
  location: string;
  problem: string;
}

export interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Fastify's own error codes for requests it could not parse, mapped onto Portico's catalogue. */
const FRAMEWORK_ERRORS: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'PORTICO_ERR_REQUEST_MALFORMED_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'PORTICO_ERR_REQUEST_MALFORMED_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PORTICO_ERR_REQUEST_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'PORTICO_ERR_REQUEST_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'PORTICO_ERR_REQUEST_INVALID',
};

/** A readable sentence for one schema violation, naming the field at fault. */
export function describeValidationIssue(context: string, issue: ValidationIssue): RequestProblem {
  const location = context + issue.instancePath;
  switch (issue.keyword) {
    case 'additionalProperties':
      return { location, problem: `unknown field "${String(issue.params.additionalProperty)}"` };
    case 'required':
      return { location, problem: `missing required field "${String(issue.params.missingProperty)}"` };
    case 'type':
      return { location, problem: `must be of type ${String(issue.params.type)}` };
    case 'enum': {
      const allowed = issue.params.allowedValues;
      return {
        location,
        problem: Array.isArray(allowed) ? `must be one of: ${allowed.map(String).join(', ')}` : 'is not an allowed value',
      };
    }
    default:
      return { location, problem: issue.message ?? `fails the "${issue.keyword}" rule` };
  }
}

/** Any error thrown while serving a request, as the `PorticoError` a client is told about. */
export function toPorticoError(
  error: FastifyError & { validation?: ValidationIssue[]; validationContext?: string },
  bodyLimit: number,
): PorticoError {
  if (error instanceof PorticoError) return error;
  if (Array.isArray(error.validation)) {
    const problems = error.validation.map((issue) => describeValidationIssue(error.validationContext ?? 'request', issue));
    return new PorticoError('PORTICO_ERR_REQUEST_INVALID', {
      message: `Invalid request: ${problems.map((p) => `${p.location} ${p.problem}`).join('; ')}.`,
      details: problems,
    });
  }
  const mapped = error.code === undefined ? undefined : FRAMEWORK_ERRORS[error.code];
  if (mapped === 'PORTICO_ERR_REQUEST_TOO_LARGE') {
    return new PorticoError(mapped, {
      message: `The request body is larger than the limit of ${bodyLimit} bytes.`,
      details: { limitBytes: bodyLimit },
      cause: error,
    });
  }
  if (mapped !== undefined) return new PorticoError(mapped, { message: `${new PorticoError(mapped).message} ${error.message}`, cause: error });
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new PorticoError('PORTICO_ERR_REQUEST_INVALID', { message: error.message, cause: error });
  }
  return new PorticoError('PORTICO_ERR_INTERNAL', { cause: error });
}

/**
 * Every error leaves the API in one shape (`{ code, message, statusCode, details? }`) with a stable
 * `PORTICO_ERR_*` code. Internal failures are logged with their cause and never described to clients.
 */
export function installErrorHandling(app: FastifyInstance, options: { bodyLimit: number }): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const portico = toPorticoError(error, options.bodyLimit);
    if (portico.statusCode >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: portico.code, statusCode: portico.statusCode }, portico.message);
    return reply.code(portico.statusCode).type('application/json').send(portico.toJSON());
  });

  app.setNotFoundHandler((request, reply) => {
    const error = new PorticoError('PORTICO_ERR_REQUEST_NOT_FOUND', { message: `No route ${request.method} ${request.url.split('?')[0] ?? ''}.` });
    return reply.code(error.statusCode).send(error.toJSON());
  });
}
