import { type FastifyInstance, type FastifyRequest } from 'fastify';
import { type Permission, roleHasPermission } from '../auth/permissions.js';
import { type TokenService } from '../auth/token-service.js';
import { PorticoError } from '../errors.js';
import { queryValue, type ConsulQuery } from './blocking-query.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Consul-compatible routes: what the caller's role must allow, or `open` for no token at all. */
    consulAccess?: Permission | 'open';
  }
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * The token a request presents, where Consul looks for one and in Consul's order: the `token` query
 * parameter (python-consul sends it there), then `X-Consul-Token`, then `Authorization: Bearer`.
 */
export function presentedToken(request: FastifyRequest): string | undefined {
  const fromQuery = queryValue(request.query as ConsulQuery, 'token');
  if (fromQuery !== undefined && fromQuery !== '') return fromQuery;
  const header = request.headers['x-consul-token'];
  const fromHeader = Array.isArray(header) ? header[0] : header;
  if (fromHeader !== undefined && fromHeader !== '') return fromHeader;
  const authorization = request.headers.authorization;
  return authorization === undefined ? undefined : BEARER.exec(authorization)?.[1];
}

/**
 * Take `?token=` out of the URL the request is logged with. The query was parsed already, so the
 * handlers still see it; the app's request log line never does.
 */
function redactQueryToken(request: FastifyRequest): void {
  const url = request.raw.url;
  const at = url?.indexOf('?') ?? -1;
  if (url === undefined || at < 0) return;
  const params = new URLSearchParams(url.slice(at + 1));
  if (!params.has('token')) return;
  params.set('token', 'redacted');
  request.raw.url = `${url.slice(0, at)}?${params.toString()}`;
}

/**
 * Authentication and authorisation for the Consul-compatible API, installed on its scope so that no
 * route in it can be reached without deciding who may call it (a route without `consulAccess` fails at
 * start-up). A missing or unknown token is Consul's 403 "ACL not found"; a role without the route's
 * permission its 403 "Permission denied". Which services an agent token may change is decided later,
 * by `RegistryService`.
 */
export function installConsulAuth(scope: FastifyInstance, tokens: TokenService): void {
  scope.addHook('onRoute', (route) => {
    if (route.config?.consulAccess === undefined) throw new Error(`Route ${String(route.method)} ${route.url} must declare config.consulAccess.`);
  });

  scope.addHook('onRequest', async (request) => {
    const secret = presentedToken(request);
    redactQueryToken(request);
    const access = request.routeOptions.config.consulAccess;
    if (request.is404 || access === undefined || access === 'open') return;
    if (secret === undefined) {
      throw new PorticoError('PORTICO_ERR_AUTH_MISSING_TOKEN', {
        message: 'No token was presented: send one in X-Consul-Token, as "Authorization: Bearer <token>", or as ?token=.',
      });
    }
    const principal = await tokens.authenticate(secret);
    if (principal === undefined) throw new PorticoError('PORTICO_ERR_AUTH_INVALID_TOKEN', { message: 'The token is unknown or has been revoked.' });
    request.principal = principal;
    if (!roleHasPermission(principal.role, access)) {
      throw new PorticoError('PORTICO_ERR_AUTH_FORBIDDEN', {
        message: `The role "${principal.role}" may not do this (it needs "${access}").`,
        details: { role: principal.role, permission: access },
      });
    }
  });
}
