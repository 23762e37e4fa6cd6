import { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { type TokenService } from '../auth/token-service.js';
import { PorticoError } from '../errors.js';
import { type RegistryService } from '../registry/registry-service.js';
import { agentRoutes } from './agent-routes.js';
import { BlockingQueries } from './blocking-query.js';
import { catalogRoutes } from './catalog-routes.js';
import { installConsulAuth } from './consul-auth.js';
import { installConsulErrorHandling } from './consul-errors.js';
import { consulNode } from './consul-mapping.js';
import { type ConsulRouteContext, refuseOtherMethods, sendJson } from './route-support.js';

/** What the Consul-compatible API serves from. */
export interface ConsulApiOptions {
  /** Every change goes through it (authorised, audited); reads go to its backend. */
  registry: RegistryService;
  /** Consul tokens are Portico tokens. */
  tokens: TokenService;
  /** The Consul node Portico presents itself as (default: this host's name, at 127.0.0.1). */
  node?: { name?: string; address?: string };
}

/**
 * Consul takes bodies whatever their `Content-Type` (python-consul sends none): every body in the
 * scope is read as JSON, with Fastify's guard against prototype poisoning. An empty body is no body.
 */
function installBodyParsing(scope: FastifyInstance): void {
  const parseJson = scope.getDefaultJsonParser('error', 'error');
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    void parseJson(request, text, (error, parsed) => {
      // Fastify's message speaks of a Content-Type the client may never have sent.
      if (error !== null) done(new PorticoError('PORTICO_ERR_REQUEST_MALFORMED_JSON', { message: 'The request body is not valid JSON.', cause: error }), undefined);
      else done(null, parsed);
    });
  });
}

/** `/v1/status/*`: where the (one) leader is. Open, as in Consul. */
async function statusRoutes(app: FastifyInstance, { node }: ConsulRouteContext): Promise<void> {
  const leader = `${node.address}:8300`;
  app.get('/status/leader', { config: { consulAccess: 'open' }, schema: { hide: true } }, async (_request, reply) => sendJson(reply, leader));
  refuseOtherMethods(app, '/status/leader', ['GET']);
  app.get('/status/peers', { config: { consulAccess: 'open' }, schema: { hide: true } }, async (_request, reply) => sendJson(reply, [leader]));
  refuseOtherMethods(app, '/status/peers', ['GET']);
}

/**
 * The Consul-compatible HTTP API (`/v1/...`) over the active registry backend, so that Consul clients
 * (python-consul, the `consul` npm client, Prometheus' `consul_sd`, Spring Cloud Consul) can register,
 * heartbeat and discover through Portico. It speaks Consul's JSON, status codes and plain-text errors,
 * and takes Consul's tokens (`X-Consul-Token`, `Authorization: Bearer`, `?token=`) as Portico tokens.
 * Its routes stay out of the admin API's OpenAPI document.
 */
export const consulApi: FastifyPluginAsync<ConsulApiOptions> = async (app, options) => {
  const context: ConsulRouteContext = {
    registry: options.registry,
    node: consulNode(options.node),
    blocking: new BlockingQueries(options.registry.backend),
  };
  // Long polls would hold a closing server open for up to ten minutes; they answer at once instead.
  app.addHook('preClose', async () => context.blocking.abortAll());

  await app.register(
    async (v1) => {
      installConsulErrorHandling(v1, { bodyLimit: app.initialConfig.bodyLimit ?? 1024 * 1024 });
      installBodyParsing(v1);
      installConsulAuth(v1, options.tokens);
      v1.setNotFoundHandler((request) => {
        throw new PorticoError('PORTICO_ERR_REQUEST_NOT_FOUND', {
          message: `Portico's Consul-compatible API has no ${request.method} ${request.url.split('?')[0] ?? ''}.`,
        });
      });
      await v1.register(agentRoutes, context);
      await v1.register(catalogRoutes, context);
      await v1.register(statusRoutes, context);
    },
    { prefix: '/v1' },
  );
};
