import { PorticoError } from '../errors.js';
import { SERVICE_NAME_PATTERN } from '../registry/registry.js';
import { type BalancerKind } from './balancers/balancer.js';
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
  return { ...spec, pathPrefix, host, methods };
}

/** Would some request match both routes (same host and prefix, and a method in common)? */
export function routesOverlap(a: RouteSpec, b: RouteSpec): boolean {
  if (a.pathPrefix !== b.pathPrefix || a.host !== b.host) return false;
  if (a.methods === null || b.methods === null) return true;
  return a.methods.some((method) => (b.methods as string[]).includes(method));
}
