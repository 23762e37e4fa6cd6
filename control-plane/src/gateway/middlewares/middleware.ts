import { type GatewayRequest, type GatewayResponse } from '../gateway-http.js';
import { type RouteMatch } from '../route-table.js';

/** One request as the middlewares of its route see it. */
export interface MiddlewareContext {
  readonly req: GatewayRequest;
  readonly res: GatewayResponse;
  readonly match: RouteMatch;
  /** Headers to add to the request the instance gets, as `[name, value, ...]` (e.g. the verified consumer). */
  readonly upstreamHeaders: string[];
  /** Request headers (lower case) not to forward (e.g. the API key). */
  readonly droppedHeaders: string[];
  /** Headers to add to the response the client gets (e.g. CORS). */
  readonly responseHeaders: string[];
  /** Who the request is from, once an authentication middleware has said (rate limits key on it). */
  consumer: string | undefined;
  /** Told of the instance's answer as it streams to the client (the cache keeps a copy). */
  readonly observers: ResponseObserver[];
}

/** Sees an instance's answer go by: its head, each chunk of its body, its end (only a complete one). */
export interface ResponseObserver {
  start(statusCode: number, headers: readonly string[]): void;
  data(chunk: Buffer): void;
  end(): void;
}

/**
 * A step of a route's request path (Traefik's model): it either answers the request itself (a refusal,
 * a preflight) or calls `next` to go on towards the instance. It never throws into the request path.
 */
export interface Middleware {
  readonly name: string;
  handle(context: MiddlewareContext, next: () => void): void;
}

/** Run `middlewares` in order, then `done` if every one of them went on. */
export function runMiddlewares(middlewares: readonly Middleware[], context: MiddlewareContext, done: () => void): void {
  let at = 0;
  const next = (): void => {
    const middleware = middlewares[at++];
    if (middleware === undefined) done();
    else middleware.handle(context, next);
  };
  next();
}
