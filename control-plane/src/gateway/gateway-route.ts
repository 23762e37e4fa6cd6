import { PorticoError } from '../errors.js';
import { SERVICE_NAME_PATTERN } from '../registry/registry.js';
import { type BalancerKind } from './balancers/balancer.js';
import { type RouteMiddlewares } from './middlewares/pipeline.js';
import { normaliseRequestPath } from './request-path.js';

/** What an operator says about an explicit route (`/api/v1/routes`). */
export interface RouteSpec {
  /** Unique, `^[a-z0-9][a-z0-9-]{0,62}$`; the `route` label of the gateway's metrics. */
  name: string;
  /** Requests whose normalised path is this prefix or below it (at a segment boundary) match. */
  pathPrefix: string;
  /** Only requests for this host (case-insensitive, port ignored); `null`: any host. */
  host: string | null;
  /** Only these methods; `null`: any method. */
  methods: string[] | null;
  /** The service the requests go to. */
  service: string;
  /** Forward the path without `pathPrefix` (`/shop/catalog/items` → `/items` for prefix `/shop/catalog`). */
  stripPrefix: boolean;
  /** Per attempt, how long the instance may take to start answering; `null`: `PORTICO_GATEWAY_TIMEOUT`. */
  timeoutMs: number | null;
  balancer: BalancerKind;
  /** What the route's requests go through before an instance (CORS, API keys, rate limits). */
  middlewares: RouteMiddlewares;
  /** The route's own resilience settings; what is left out follows the gateway's defaults. */
  resilience: RouteResilience;
}

/**
 * How a route's requests are protected, when they should differ from the gateway's defaults. A route
 * with a bulkhead or breaker setting gets its own guard (counted apart from the service's other routes),
 * so one busy or failing route cannot close a service for the rest.
 */
export interface RouteResilience {
  /** Retries after a connection failure, each on another instance (idempotent requests only); default 2. */
  retries?: number;
  /** Requests in flight through this route at most; more get `503 PORTICO_ERR_GATEWAY_OVERLOADED`. */
  maxConcurrent?: number;
  /** The route's circuit breaker (the gateway's: 50 % of at least 20 requests in 10 s, open for 5 s). */
  circuitBreaker?: { failureRatio?: number; minimumRequests?: number; openMs?: number };
}

/** Does the route need a guard (bulkhead, breaker) of its own? */
export function hasOwnGuard(resilience: RouteResilience): boolean {
  return resilience.maxConcurrent !== undefined || resilience.circuitBreaker !== undefined;
}

/** A stored route. */
export interface GatewayRoute extends RouteSpec {
  id: string;
  createdAt: Date;
  updatedAt: Date;
}

export const ROUTE_NAME_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';
const ROUTE_NAME = new RegExp(ROUTE_NAME_PATTERN);
const SERVICE_NAME = new RegExp(SERVICE_NAME_PATTERN);
const HOST = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
const METHOD = /^[A-Z]{1,20}$/;

function invalid(location: string, problem: string): PorticoError {
  return new PorticoError('PORTICO_ERR_REQUEST_INVALID', { message: `Invalid route: ${location} ${problem}.`, details: [{ location: `body/${location}`, problem }] });
}

/**
 * Check a route and put it in its canonical form: the prefix normalised as the gateway normalises
 * request paths (and without a trailing slash), the host in lower case, methods upper-cased, sorted and
 * unique. @throws PorticoError `PORTICO_ERR_REQUEST_INVALID` naming the field.
 */
export function canonicalRoute(spec: RouteSpec): RouteSpec {
  if (!ROUTE_NAME.test(spec.name)) throw invalid('name', `must match ${ROUTE_NAME_PATTERN}`);
  if (!SERVICE_NAME.test(spec.service)) throw invalid('service', `must match ${SERVICE_NAME_PATTERN}`);
  const normalised = normaliseRequestPath(spec.pathPrefix);
  if (!normalised.ok || normalised.query !== '' || !spec.pathPrefix.startsWith('/')) throw invalid('pathPrefix', 'must be a path starting with "/", without a query');
  const pathPrefix = normalised.path.length > 1 ? normalised.path.replace(/\/$/, '') : normalised.path;
  if (pathPrefix !== spec.pathPrefix.replace(/(.)\/$/, '$1')) throw invalid('pathPrefix', `must be written in normal form (here: "${pathPrefix}")`);
  const host = spec.host === null ? null : spec.host.toLowerCase();
  if (host !== null && !HOST.test(host)) throw invalid('host', 'must be a host name without a port');
  let methods: string[] | null = null;
  if (spec.methods !== null) {
    methods = [...new Set(spec.methods.map((method) => method.toUpperCase()))].sort();
    if (methods.length === 0 || !methods.every((method) => METHOD.test(method))) throw invalid('methods', 'must be one or more HTTP method names');
  }
  if (spec.timeoutMs !== null && !(spec.timeoutMs > 0)) throw invalid('timeout', 'must be a positive duration');
  return { ...spec, pathPrefix, host, methods, middlewares: canonicalMiddlewares(spec.middlewares), resilience: canonicalResilience(spec.resilience) };
}

function canonicalResilience(resilience: RouteResilience): RouteResilience {
  const { retries, maxConcurrent, circuitBreaker } = resilience;
  if (retries !== undefined && !(Number.isInteger(retries) && retries >= 0 && retries <= 5)) throw invalid('resilience/retries', 'must be a whole number from 0 to 5');
  if (maxConcurrent !== undefined && !(Number.isInteger(maxConcurrent) && maxConcurrent >= 1)) throw invalid('resilience/maxConcurrent', 'must be a whole number, at least 1');
  if (circuitBreaker !== undefined) {
    const { failureRatio, minimumRequests, openMs } = circuitBreaker;
    if (failureRatio !== undefined && !(failureRatio > 0 && failureRatio <= 1)) throw invalid('resilience/circuitBreaker/failureRatio', 'must be more than 0 and at most 1');
    if (minimumRequests !== undefined && !(Number.isInteger(minimumRequests) && minimumRequests >= 1)) {
      throw invalid('resilience/circuitBreaker/minimumRequests', 'must be a whole number, at least 1');
    }
    if (openMs !== undefined && !(openMs >= 100 && openMs <= 600_000)) throw invalid('resilience/circuitBreaker/openFor', 'must be a duration from 100ms to 10m');
  }
  return resilience;
}

/** Would some request match both routes (same host and prefix, and a method in common)? */
export function routesOverlap(a: RouteSpec, b: RouteSpec): boolean {
  if (a.pathPrefix !== b.pathPrefix || a.host !== b.host) return false;
  if (a.methods === null || b.methods === null) return true;
  return a.methods.some((method) => (b.methods as string[]).includes(method));
}

const ORIGIN = /^https?:\/\/[^/\s?#]+$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Asymmetric algorithms only: a shared secret has no place in a JWKS an identity provider publishes. */
const JWT_ALGORITHMS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);

function canonicalMiddlewares(middlewares: RouteMiddlewares): RouteMiddlewares {
  const out: RouteMiddlewares = {};
  const { cors, apiKey, jwt, rateLimit, cache, aggregate } = middlewares;
  if (cors !== undefined) {
    if (cors.origins.length === 0 || !cors.origins.every((origin) => origin === '*' || ORIGIN.test(origin))) {
      throw invalid('middlewares/cors/origins', 'must list "*" or origins such as "https://shop.example"');
    }
    if (cors.origins.includes('*') && cors.credentials === true) throw invalid('middlewares/cors/credentials', 'cannot be true with origin "*"');
    out.cors = { ...cors, ...(cors.methods === undefined ? {} : { methods: cors.methods.map((method) => method.toUpperCase()) }) };
  }
  if (apiKey !== undefined) {
    if (apiKey.keys.length === 0) throw invalid('middlewares/apiKey/keys', 'must hold at least one key');
    if (!apiKey.keys.every((key) => SHA256_HEX.test(key.hash))) throw invalid('middlewares/apiKey/keys', 'must each be a key or its SHA-256 in hex');
    if (new Set(apiKey.keys.map((key) => key.hash)).size !== apiKey.keys.length) throw invalid('middlewares/apiKey/keys', 'must not repeat a key');
    if (apiKey.header !== undefined && !HEADER_NAME.test(apiKey.header)) throw invalid('middlewares/apiKey/header', 'must be a header name');
    out.apiKey = { ...apiKey, ...(apiKey.header === undefined ? {} : { header: apiKey.header.toLowerCase() }) };
  }
  if (jwt !== undefined) {
    if (jwt.issuer === '') throw invalid('middlewares/jwt/issuer', 'must not be empty');
    const audiences = Array.isArray(jwt.audience) ? jwt.audience : [jwt.audience];
    if (audiences.length === 0 || audiences.some((audience) => audience === '')) throw invalid('middlewares/jwt/audience', 'must name at least one audience');
    if (!/^https?:\/\/[^\s]+$/.test(jwt.jwksUrl) || !URL.canParse(jwt.jwksUrl)) throw invalid('middlewares/jwt/jwksUrl', 'must be an http(s) URL');
    if (jwt.algorithms !== undefined && (jwt.algorithms.length === 0 || jwt.algorithms.some((alg) => !JWT_ALGORITHMS.has(alg)))) {
      throw invalid('middlewares/jwt/algorithms', `must be some of ${[...JWT_ALGORITHMS].join(', ')}`);
    }
    if (jwt.claims !== undefined && Object.values(jwt.claims).some((header) => !HEADER_NAME.test(header))) throw invalid('middlewares/jwt/claims', 'must map claims to header names');
    out.jwt = jwt;
  }
  if (rateLimit !== undefined) {
    if (!(rateLimit.requestsPerSecond > 0)) throw invalid('middlewares/rateLimit/requestsPerSecond', 'must be more than 0');
    if (rateLimit.burst !== undefined && !(rateLimit.burst >= 1)) throw invalid('middlewares/rateLimit/burst', 'must be at least 1');
    const key = rateLimit.key ?? 'ip';
    if (!(key === 'ip' || key === 'consumer' || (key.startsWith('header:') && HEADER_NAME.test(key.slice(7))))) {
      throw invalid('middlewares/rateLimit/key', 'must be "ip", "consumer" or "header:<name>"');
    }
    out.rateLimit = { ...rateLimit, key, store: rateLimit.store ?? 'memory' };
  }
  if (cache !== undefined) {
    if (!(cache.ttlSeconds > 0)) throw invalid('middlewares/cache/ttlSeconds', 'must be more than 0');
    if (cache.maxEntries !== undefined && !(cache.maxEntries >= 1)) throw invalid('middlewares/cache/maxEntries', 'must be at least 1');
    if (cache.maxBodyBytes !== undefined && !(cache.maxBodyBytes >= 1)) throw invalid('middlewares/cache/maxBodyBytes', 'must be at least 1');
    out.cache = cache;
  }
  if (aggregate !== undefined) {
    if (aggregate.parts.length === 0) throw invalid('middlewares/aggregate/parts', 'must hold at least one part');
    if (new Set(aggregate.parts.map((part) => part.name)).size !== aggregate.parts.length) throw invalid('middlewares/aggregate/parts', 'must have distinct names');
    for (const part of aggregate.parts) {
      if (part.name === '' || part.name === 'errors') throw invalid('middlewares/aggregate/parts', 'names must not be empty nor "errors"');
      if (!SERVICE_NAME.test(part.service)) throw invalid('middlewares/aggregate/parts', `services must match ${SERVICE_NAME_PATTERN}`);
      const normalised = normaliseRequestPath(part.path);
      if (!normalised.ok || normalised.query !== '' || normalised.path !== part.path) throw invalid('middlewares/aggregate/parts', 'paths must be normalised paths without a query');
    }
    if (aggregate.timeoutMs !== undefined && !(aggregate.timeoutMs > 0)) throw invalid('middlewares/aggregate/timeout', 'must be a positive duration');
    out.aggregate = aggregate;
  }
  return out;
}
