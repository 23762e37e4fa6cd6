import { sendError } from '../../respond.js';
import { type Middleware, type MiddlewareContext } from '../middleware.js';

export interface CorsConfig {
  /** Origins allowed (`https://shop.example`), or `*` for any. */
  origins: string[];
  /** Methods a preflight allows (default GET, HEAD, POST, PUT, PATCH, DELETE). */
  methods?: string[];
  /** Request headers a preflight allows (default: whatever the preflight asks for). */
  headers?: string[];
  /** Send `Access-Control-Allow-Credentials: true` (not with `*`). */
  credentials?: boolean;
  /** How long a browser may cache a preflight (default 600 s). */
  maxAgeSeconds?: number;
}

const DEFAULT_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

/**
 * CORS for a route: preflights (`OPTIONS` with `Access-Control-Request-Method`) are answered here and
 * never reach an instance; other requests from an allowed origin get the `Access-Control-Allow-*`
 * headers on their response. A preflight from an origin not allowed gets 403.
 */
export function create(config: CorsConfig): Middleware {
  const any = config.origins.includes('*');
  const allowed = new Set(config.origins);
  const methods = (config.methods ?? DEFAULT_METHODS).join(', ');
  const maxAge = String(config.maxAgeSeconds ?? 600);
  const allowOrigin = (origin: string) => (any && config.credentials !== true ? '*' : origin);
  return {
    name: 'cors',
    handle(context: MiddlewareContext, next: () => void): void {
      const { req, res } = context;
      const origin = req.headers.origin;
      const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
      if (origin === undefined || !(any || allowed.has(origin))) {
        if (preflight) {
          sendError(res, 'PORTICO_ERR_GATEWAY_CORS_REJECTED', `The origin ${origin ?? '(none)'} may not call this route.`);
          return;
        }
        next();
        return;
      }
      const vary = ['vary', 'Origin'];
      if (preflight) {
        const headers: Record<string, string> = {
          'access-control-allow-origin': allowOrigin(origin),
          'access-control-allow-methods': methods,
          'access-control-allow-headers': config.headers?.join(', ') ?? req.headers['access-control-request-headers'] ?? '',
          'access-control-max-age': maxAge,
          vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
          'content-length': '0',
        };
        if (config.credentials === true) headers['access-control-allow-credentials'] = 'true';
        res.writeHead(204, headers);
        res.end();
        return;
      }
      context.responseHeaders.push('access-control-allow-origin', allowOrigin(origin), ...vary);
      if (config.credentials === true) context.responseHeaders.push('access-control-allow-credentials', 'true');
      next();
    },
  };
}
