import { type ErrorCode } from '../../../errors.js';
import { type TLSSocket } from 'node:tls';
import { forwardRequestHeaders } from '../../forward-headers.js';
import { type Middleware, type MiddlewareContext } from '../middleware.js';

export interface AggregatePart {
  /** The key of this part's answer in the combined object. */
  name: string;
  service: string;
  /** The path asked of the service (the request's query string is added). */
  path: string;
}

export interface AggregateConfig {
  parts: AggregatePart[];
  /** How long each part may take (default: the route's timeout, else the gateway's). */
  timeoutMs?: number;
}

/** What asking one service for one path came to. */
export type PartAnswer = { ok: true; status: number; contentType: string; body: string } | { ok: false; code: ErrorCode; message: string; status?: number };

/** Asks a service through the gateway's own balancing and pools. */
export type ServiceCaller = (service: string, pathAndQuery: string, headers: string[], timeoutMs: number) => Promise<PartAnswer>;

/**
 * Response aggregation: a GET on the route asks every part's service in parallel and answers one JSON
 * object, each part's answer under its name (parsed when it is JSON). A part that fails, answers an
 * error status or times out is `null` in the object and described under `errors`, and the others are
 * still returned: 200 when any part succeeded, 502 when none did. Other methods go on to the route's
 * service.
 */
export function create(config: AggregateConfig, deps: { call: ServiceCaller; defaultTimeoutMs: number }): Middleware {
  return {
    name: 'aggregate',
    handle(context: MiddlewareContext, next: () => void): void {
      const { req, res, match } = context;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        next();
        return;
      }
      const at = match.path.indexOf('?');
      const query = at < 0 ? '' : match.path.slice(at);
      const timeoutMs = config.timeoutMs ?? match.timeoutMs ?? deps.defaultTimeoutMs;
      const headers = forwardRequestHeaders(req.rawHeaders, {
        remoteAddress: req.socket.remoteAddress ?? '',
        proto: (req.socket as TLSSocket).encrypted === true ? 'https' : 'http',
        prefix: '',
        drop: [...context.droppedHeaders, 'accept', 'content-length'],
      });
      headers.push(...context.upstreamHeaders, 'accept', 'application/json');
      void Promise.all(config.parts.map((part) => deps.call(part.service, `${part.path}${query}`, headers, timeoutMs))).then((answers) => {
        const data: Record<string, unknown> = {};
        const errors: Record<string, { code: string; message: string; status?: number }> = {};
        answers.forEach((answer, i) => {
          const { name } = config.parts[i] as AggregatePart;
          if (answer.ok && answer.status < 400) {
            data[name] = answer.contentType.includes('json') ? safeJson(answer.body) : answer.body;
          } else {
            data[name] = null;
            errors[name] = answer.ok
              ? { code: 'PORTICO_ERR_GATEWAY_PART_FAILED' satisfies ErrorCode, message: `"${config.parts[i]?.service}" answered ${answer.status}.`, status: answer.status }
              : { code: answer.code, message: answer.message, ...(answer.status === undefined ? {} : { status: answer.status }) };
          }
        });
        const failed = Object.keys(errors).length;
        const body = JSON.stringify(failed === 0 ? data : { ...data, errors });
        res.writeHead(failed === config.parts.length ? 502 : 200, ['content-type', 'application/json; charset=utf-8', 'content-length', String(Buffer.byteLength(body)), ...context.responseHeaders]);
        res.end(req.method === 'HEAD' ? undefined : body);
      });
    },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
