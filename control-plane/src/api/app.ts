import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import { type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { TokenService } from '../auth/token-service.js';
import { consulApi } from '../consul-api/consul-api.js';
import { PorticoError } from '../errors.js';
import { RouteService } from '../gateway/route-service.js';
import { type DeadLetters } from '../messaging/dead-letters.js';
import { type MessagePublisher } from '../messaging/message-publisher.js';
import { type QueueAdmin } from '../messaging/queue-admin.js';
import { registerQueueMetrics } from '../messaging/queue-metrics.js';
import { TopologyService } from '../messaging/topology-service.js';
import { type RegistryBackend } from '../registry/registry-backend.js';
import { RegistryService } from '../registry/registry-service.js';
import { type Store } from '../store/store.js';
import { type Metrics } from '../telemetry/metrics.js';
import { installAuth } from './auth.js';
import { installErrorHandling } from './error-handler.js';
import { auditRoutes } from './routes/audit.js';
import { gatewayRouteEventRoutes } from './routes/gateway-route-events.js';
import { gatewayRouteRoutes } from './routes/gateway-routes.js';
import { healthRoutes } from './routes/health.js';
import { meRoutes } from './routes/me.js';
import { messageRoutes } from './routes/messages.js';
import { metricsRoutes } from './routes/metrics.js';
import { queueRoutes } from './routes/queues.js';
import { registryRoutes } from './routes/registry.js';
import { tokenRoutes } from './routes/tokens.js';
import { topologyEventRoutes } from './routes/topology-events.js';
import { topologyRoutes } from './routes/topology.js';
import { ErrorResponse } from './schemas/common.js';
import { createValidatorCompiler } from './validation.js';

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** What the HTTP surface needs; `main.ts` builds these from the configuration, tests from their own parts. */
export interface AppDeps {
  store: Store;
  /** The registry's backend (embedded or Consul), started. */
  registry: RegistryBackend;
  /** Redis as seen by readiness: resolves when it answers. */
  broker: { ping(): Promise<void> };
  metrics: Metrics;
  logger: FastifyBaseLogger;
  /** The gateway's explicit routes; share it with the gateway so changes apply at once (default: one over `store`). */
  routes?: RouteService;
  /**
   * The message bus as operators see it (`/api/v1/queues`, `/api/v1/messages`, `portico_queue_jobs`).
   * Without it those routes are not served.
   */
  messaging?: { queues: QueueAdmin; deadLetters: DeadLetters; messages: MessagePublisher };
  /** Largest request body accepted, in bytes (default 1 MiB). */
  bodyLimit?: number;
  version?: string;
}

/**
 * The control plane's HTTP app: health, metrics, OpenAPI and the admin API under `/api/v1`.
 * It does not listen: `main.ts` does, and tests call `inject()`.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const bodyLimit = deps.bodyLimit ?? DEFAULT_BODY_LIMIT;
  let shuttingDown = false;

  const app = Fastify({
    loggerInstance: deps.logger,
    bodyLimit,
    // Per-request lines at info would drown the log under agent heartbeats; see the onResponse hook.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(createValidatorCompiler());
  installErrorHandling(app, { bodyLimit });
  app.addSchema(ErrorResponse);

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Portico admin API',
        version: deps.version ?? '0.0.0',
        description: 'Every route under /api/v1 takes "Authorization: Bearer <token>". Errors carry a stable PORTICO_ERR_* code.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });

  app.addHook('onResponse', async (request, reply) => {
    // The route template, never the raw URL, keeps label cardinality bounded.
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route, status_code: String(reply.statusCode) };
    deps.metrics.httpRequests.inc(labels);
    deps.metrics.httpRequestDuration.observe(labels, reply.elapsedTime / 1000);
    request.log.debug({ method: request.method, url: request.url, statusCode: reply.statusCode, ms: reply.elapsedTime }, 'request completed');
  });
  app.addHook('preClose', async () => {
    shuttingDown = true;
  });

  await app.register(healthRoutes, {
    checks: {
      store: () => deps.store.ping(),
      redis: () => deps.broker.ping(),
      registry: async () => {
        const status = deps.registry.status();
        if (status.stale) throw new PorticoError('PORTICO_ERR_REGISTRY_UNAVAILABLE', { message: `The registry serves stale state: ${status.reason ?? 'its source cannot be reached'}.` });
      },
    },
    isShuttingDown: () => shuttingDown,
  });
  await app.register(metricsRoutes, { metrics: deps.metrics });
  if (deps.messaging !== undefined) registerQueueMetrics(deps.metrics.registry, deps.messaging.queues);
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const tokens = new TokenService(deps.store);
  const registry = new RegistryService(deps.registry);
  const routes = deps.routes ?? new RouteService(deps.store);
  const topology = new TopologyService(deps.store);
  await app.register(consulApi, { registry, tokens });
  await app.register(
    async (api) => {
      installAuth(api, tokens);
      api.setNotFoundHandler((request) => {
        throw new PorticoError('PORTICO_ERR_REQUEST_NOT_FOUND', { message: `No route ${request.method} ${request.url.split('?')[0] ?? ''}.` });
      });
      await api.register(meRoutes);
      await api.register(tokenRoutes, { tokens });
      await api.register(auditRoutes, { audit: deps.store.audit });
      await api.register(registryRoutes, { registry });
      await api.register(gatewayRouteRoutes, { routes });
      await api.register(gatewayRouteEventRoutes, { routes });
      if (deps.messaging !== undefined) {
        await api.register(queueRoutes, { queues: deps.messaging.queues, deadLetters: deps.messaging.deadLetters });
        await api.register(messageRoutes, { messages: deps.messaging.messages });
      }
      await api.register(topologyRoutes, { topology });
      await api.register(topologyEventRoutes, { topology });
    },
    { prefix: '/api/v1' },
  );

  return app;
}
