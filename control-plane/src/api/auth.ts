import { type FastifyInstance, type FastifyRequest } from 'fastify';
import { isPermission, type Permission, roleHasPermission } from '../auth/permissions.js';
import { type Principal, type TokenService } from '../auth/token-service.js';
import { PorticoError } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set on every request under `/api/v1`. */
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** What the caller's role must allow. Required on every route under `/api/v1`. */
    permission?: Permission;
  }
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** The secret a request presents, if any. */
function presentedSecret(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  return BEARER.exec(header)?.[1];
}

/** The principal behind a request that passed authentication (every route under `/api/v1`). */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === undefined) throw new PorticoError('PORTICO_ERR_INTERNAL', { message: 'Route served without authentication.' });
  return request.principal;
}

/**
 * Authentication and authorisation for a scope (the admin API). Installed on the scope, not per
 * route, so no route in it can be reached without a valid token; and every route must declare the
 * permission it needs, or registering it fails at start-up.
 */
export function installAuth(scope: FastifyInstance, tokens: TokenService): void {
  scope.addHook('onRoute', (route) => {
    if (!isPermission(route.config?.permission)) {
      throw new Error(`Route ${String(route.method)} ${route.url} must declare config.permission.`);
    }
  });

  scope.addHook('onRequest', async (request, reply) => {
    const secret = presentedSecret(request);
    if (secret === undefined) {
      void reply.header('www-authenticate', 'Bearer realm="portico"');
      throw new PorticoError('PORTICO_ERR_AUTH_MISSING_TOKEN');
    }
    const principal = await tokens.authenticate(secret);
    if (principal === undefined) {
      void reply.header('www-authenticate', 'Bearer realm="portico", error="invalid_token"');
      throw new PorticoError('PORTICO_ERR_AUTH_INVALID_TOKEN');
    }
    request.principal = principal;
    // Unknown paths under the scope have no permission: they fall through to a 404 for any valid token.
    const permission = request.routeOptions.config.permission;
    if (permission !== undefined && !roleHasPermission(principal.role, permission)) {
      throw new PorticoError('PORTICO_ERR_AUTH_FORBIDDEN', {
        message: `The role "${principal.role}" may not do this (it needs "${permission}").`,
        details: { role: principal.role, permission },
      });
    }
  });
}
