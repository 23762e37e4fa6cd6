import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { Gauge } from 'prom-client';
import { PorticoError } from '../errors.js';
import { type SourceStatus } from '../gateway/providers/gateway-source.js';
import { type Metrics } from '../telemetry/metrics.js';
import { installErrorHandling } from './error-handler.js';
import { healthRoutes, type ReadinessCheck } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';

/** What the HTTP surface of `portico gateway` needs. */
export interface GatewayAppDeps {
  metrics: Metrics;
  logger: FastifyBaseLogger;
  /** What the gateway follows, by name (`registry`, `routes`), with how current it is. */
  sources: Record<string, () => SourceStatus>;
}

/**
 * A source as `/readyz` judges it: not ready until its first whole state is loaded; ready after that,
 * also while it reconnects (the gateway routes by the last known state, which beats routing nothing),
 * with a note saying so.
 */
function sourceCheck(name: string, status: () => SourceStatus): ReadinessCheck {
  return async () => {
    const current = status();
    if (!current.loaded) {
      throw new PorticoError('PORTICO_ERR_GATEWAY_SOURCE_UNAVAILABLE', { message: `The gateway has not loaded its ${name} yet: ${current.reason ?? 'loading'}.` });
    }
    if (!current.live) return `serving the last known ${name}: ${current.reason ?? 'reconnecting'}`;
    return undefined;
  };
}

/**
 * The HTTP surface of the gateway when it runs on its own (`portico gateway`), on `PORTICO_PORT`:
 * `/healthz`, `/readyz` and `/metrics` (with `portico_gateway_source_up{source}`), and nothing else. No admin API and no Consul-compatible API
 * (both 404): those belong to the control plane. It does not listen: `main.ts` does.
 */
export async function buildGatewayApp(deps: GatewayAppDeps): Promise<FastifyInstance> {
  let shuttingDown = false;
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });
  installErrorHandling(app, { bodyLimit: 1024 });
  app.addHook('preClose', async () => {
    shuttingDown = true;
  });
  const sources = Object.entries(deps.sources);
  new Gauge({
    name: 'portico_gateway_source_up',
    help: 'Whether the gateway follows its source now (1), or routes by the last known state or has none yet (0).',
    labelNames: ['source'] as const,
    registers: [deps.metrics.registry],
    collect() {
      for (const [name, status] of sources) this.set({ source: name }, status().live ? 1 : 0);
    },
  });
  const checks = Object.fromEntries(Object.entries(deps.sources).map(([name, status]) => [name, sourceCheck(name, status)]));
  await app.register(healthRoutes, { checks, isShuttingDown: () => shuttingDown });
  await app.register(metricsRoutes, { metrics: deps.metrics });
  return app;
}
