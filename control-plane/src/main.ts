/**
 * The composition root: configuration → adapters → start. The only file that picks adapters.
 * `npm start` runs this file: the control plane, with its gateway in the same process.
 * `npm run gateway` runs it as `main.js gateway`: the gateway alone (the data plane), following a
 * control plane's registry and routes (`PORTICO_GATEWAY_CONTROL_PLANE`) or Consul (`PORTICO_CONSUL_ADDR`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import packageJson from '../package.json' with { type: 'json' };
import { buildApp } from './api/app.js';
import { buildGatewayApp } from './api/gateway-app.js';
import { TokenService } from './auth/token-service.js';
import { checkEvictionPolicy } from './broker/eviction-policy.js';
import { ensureRedis } from './broker/private-redis.js';
import { RedisProbe } from './broker/redis-probe.js';
import { loadConfig } from './config/load.js';
import { type PorticoConfig } from './config/schema.js';
import { PorticoError } from './errors.js';
import { Gateway, type GatewayOptions } from './gateway/gateway.js';
import { ControlPlaneRegistrySource } from './gateway/providers/control-plane-registry-source.js';
import { ControlPlaneRouteSource } from './gateway/providers/control-plane-route-source.js';
import { type SourceStatus } from './gateway/providers/gateway-source.js';
import { RegistryBackendSource } from './gateway/providers/registry-backend-source.js';
import { RouteService } from './gateway/route-service.js';
import { BusConnection } from './messaging/bus-connection.js';
import { DeadLetters } from './messaging/dead-letters.js';
import { MessagePublisher } from './messaging/message-publisher.js';
import { QueueAdmin } from './messaging/queue-admin.js';
import { ConsulRegistryBackend } from './registry/backends/consul-registry-backend.js';
import { EmbeddedRegistryBackend } from './registry/backends/embedded-registry-backend.js';
import { HealthChecker } from './registry/health/health-checker.js';
import { type RegistryBackend } from './registry/registry-backend.js';
import { PostgresStore } from './store/postgres/postgres-store.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';
import { type Store } from './store/store.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import { Metrics } from './telemetry/metrics.js';

function createStore(config: PorticoConfig): Store {
  return config.databaseUrl === undefined
    ? new SqliteStore({ filename: join(config.dataDir, 'portico.db') })
    : new PostgresStore({ connectionString: config.databaseUrl });
}

function createRegistry(config: PorticoConfig, store: Store, logger: Logger): RegistryBackend {
  if (config.consul.addr !== undefined) {
    return new ConsulRegistryBackend({ addr: config.consul.addr, token: config.consul.token, auditLog: store.audit, logger });
  }
  return new EmbeddedRegistryBackend({ store, logger, createScheduler: (onResult) => new HealthChecker({ onResult, logger }) });
}

/** The services that consume the event type `type`, by the message topology in the store. */
async function subscribersOf(store: Store, type: string): Promise<string[]> {
  return (await store.topology.list()).filter((subscription) => subscription.messageType === type).map((subscription) => subscription.service);
}

/** The gateway's certificate and key, when configured. @throws PorticoError `PORTICO_ERR_CONFIG_INVALID` when unreadable. */
function readGatewayTls(config: PorticoConfig): { cert: Buffer; key: Buffer } | undefined {
  if (config.gatewayTlsCert === undefined || config.gatewayTlsKey === undefined) return undefined;
  const read = (path: string, variable: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new PorticoError('PORTICO_ERR_CONFIG_INVALID', { message: `${variable}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`, cause: error });
    }
  };
  return { cert: read(config.gatewayTlsCert, 'PORTICO_GATEWAY_TLS_CERT'), key: read(config.gatewayTlsKey, 'PORTICO_GATEWAY_TLS_KEY') };
}

/** Listen, turning a taken or forbidden port into a message that names the variable to change. */
async function listenOn<T>(variable: string, host: string, port: number, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      const why = code === 'EADDRINUSE' ? 'is in use' : code === 'EACCES' ? 'may not be bound by this user' : 'is not an address of this machine';
      throw new PorticoError('PORTICO_ERR_CONFIG_INVALID', { message: `${host}:${port} ${why}: choose another with ${variable} (or PORTICO_HOST).`, cause: error });
    }
    throw error;
  }
}

function printFirstAdminToken(secret: string): void {
  const rule = '='.repeat(72);
  process.stdout.write(
    [
      rule,
      'Portico made the first admin token. It is shown this once:',
      '',
      `    ${secret}`,
      '',
      'Portico keeps only its hash. Send it as "Authorization: Bearer <token>"',
      'to /api/v1, and make named tokens for people and agents with',
      'POST /api/v1/tokens. To choose it yourself, set PORTICO_ADMIN_TOKEN',
      'before the first start.',
      rule,
      '',
    ].join('\n'),
  );
}

/** Close whatever was opened, newest first; failures are logged, never thrown. */
type Closer = { name: string; close: () => Promise<void> };

async function closeAll(closers: Closer[], logger: Logger): Promise<void> {
  for (const closer of closers.reverse()) {
    try {
      await closer.close();
    } catch (error) {
      logger.warn({ err: error, part: closer.name }, 'closing failed');
    }
  }
}

type Mode = 'control-plane' | 'gateway';

const USAGE = 'usage: main.js            the control plane, its gateway in the same process (npm start)\n       main.js gateway    the gateway alone, following a control plane or Consul (npm run gateway)\n';

/** What this process is told to be: nothing (the control plane) or `gateway`. */
function modeOf(args: readonly string[]): Mode | undefined {
  if (args.length === 0) return 'control-plane';
  if (args.length === 1 && args[0] === 'gateway') return 'gateway';
  return undefined;
}

async function start(): Promise<void> {
  const mode = modeOf(process.argv.slice(2));
  if (mode === undefined) {
    process.stderr.write(`portico: unknown command "${process.argv.slice(2).join(' ')}"\n${USAGE}`);
    process.exit(64); // EX_USAGE
  }

  let config: Readonly<PorticoConfig>;
  try {
    config = loadConfig({ mode });
  } catch (error) {
    if (error instanceof PorticoError) {
      process.stderr.write(`portico: ${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }

  const logger = createLogger({ level: config.logLevel, service: mode === 'gateway' ? 'portico-gateway' : 'portico-control-plane' });
  const closers: Closer[] = [];
  let stopping = false;

  const stop = async (reason: string, exitCode: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, 'shutting down');
    const force = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown took too long; exiting now');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    await closeAll(closers, logger);
    logger.info('stopped');
    process.exit(exitCode);
  };

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      void stop(signal, 0);
    });
  }

  try {
    if (mode === 'gateway') await startGatewayAlone(config, logger, closers, () => stopping);
    else await startControlPlane(config, logger, closers);
  } catch (error) {
    if (error instanceof PorticoError) {
      logger.fatal({ code: error.code, err: error.cause }, error.message);
      process.stderr.write(`portico: ${error.message}\n`);
    } else {
      logger.fatal({ err: error }, 'start-up failed');
    }
    // A setting that cannot work (a taken port, a refused token) is a configuration error: EX_CONFIG.
    await stop('start-up failed', error instanceof PorticoError && error.code === 'PORTICO_ERR_CONFIG_INVALID' ? 78 : 1);
  }
}

/** The control plane: store, Redis, registry, admin and Consul-compatible APIs, and the gateway in process. */
async function startControlPlane(config: Readonly<PorticoConfig>, logger: Logger, closers: Closer[]): Promise<void> {
  if (config.gatewayControlPlane !== undefined || config.gatewayToken !== undefined) {
    logger.warn('PORTICO_GATEWAY_CONTROL_PLANE and PORTICO_GATEWAY_TOKEN are read only by "main.js gateway" (npm run gateway); the control plane ignores them');
  }
  const store = createStore(config);
  closers.push({ name: 'store', close: () => store.close() });
  await store.start();

  const redis = await ensureRedis({ url: config.redisUrl, isDefault: config.redisUrlIsDefault, dataDir: config.dataDir, logger });
  closers.push({ name: 'redis', close: () => redis.stop() });
  const broker = new RedisProbe(redis.url);
  closers.push({ name: 'redis probe', close: () => broker.close() });

  // The control plane's own view of the message bus (queue admin, operators' messages), failing fast.
  const bus = new BusConnection({ url: redis.url, logger });
  closers.push({ name: 'message bus', close: () => bus.close() });
  try {
    await bus.run((client) => checkEvictionPolicy({ redis: client, url: redis.url, production: config.env === 'production', logger }));
  } catch (error) {
    // A policy that evicts, in production, stops the start; a Redis away at this moment does not (/readyz says so).
    if (error instanceof PorticoError && error.code === 'PORTICO_ERR_CONFIG_INVALID') throw error;
    logger.warn({ err: error }, 'Redis did not answer: its maxmemory-policy was not checked (it must be "noeviction")');
  }

  const registry = createRegistry(config, store, logger);
  closers.push({ name: 'registry', close: () => registry.close() });
  await registry.start();

  const firstAdmin = await new TokenService(store).ensureFirstAdmin(config.adminToken);
  if (firstAdmin.generatedSecret !== undefined) printFirstAdminToken(firstAdmin.generatedSecret);
  else if (firstAdmin.created) logger.info('first admin token created from PORTICO_ADMIN_TOKEN');

  const metrics = new Metrics();
  const routes = new RouteService(store);
  const deadLetters = new DeadLetters({ bus, audit: store.audit });
  const messaging = {
    queues: new QueueAdmin({ bus, audit: store.audit, deadLetters }),
    deadLetters,
    // An event's subscribers are the services the message topology says consume its type.
    messages: new MessagePublisher({ bus, audit: store.audit, subscribersOf: (type) => subscribersOf(store, type) }),
  };
  const app = await buildApp({ store, registry, broker, metrics, logger, routes, messaging, bodyLimit: config.bodyLimit, version: packageJson.version });
  // Closed first on shutdown: stop accepting, finish in-flight requests, then release the rest.
  closers.push({ name: 'http', close: () => app.close() });
  await listenOn('PORTICO_PORT', config.host, config.port, () => app.listen({ host: config.host, port: config.port }));
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;

  // The data plane, on its own port: nothing but proxied requests are served there.
  // Its own Redis connection (shared rate limits) fails fast: a limit check never queues behind an outage.
  const gatewayRedis = new Redis(redis.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
  gatewayRedis.on('error', (error) => logger.debug({ err: error }, 'gateway redis connection error'));
  closers.push({ name: 'gateway redis', close: async () => void (await gatewayRedis.quit().catch(() => gatewayRedis.disconnect())) });
  const gateway = await startGateway(config, { redis: gatewayRedis, registry, routes, metrics, logger }, closers);
  logger.info(
    {
      url: `http://${config.host}:${port}`,
      gateway,
      store: store.dialect,
      registry: registry.kind,
      redis: redis.private ? 'private' : 'external',
    },
    'control plane listening',
  );
}

/**
 * The gateway alone (`main.js gateway`): the data plane on PORTICO_GATEWAY_PORT, and only `/healthz`,
 * `/readyz` and `/metrics` on PORTICO_PORT. No store, no migrations, no private redis-server, no admin
 * or Consul-compatible API. The registry comes from Consul when PORTICO_CONSUL_ADDR is set, otherwise
 * from the control plane at PORTICO_GATEWAY_CONTROL_PLANE; the explicit routes from that control plane
 * (without one, only the discovery rule routes). Redis only for `rateLimit.store: redis`.
 */
async function startGatewayAlone(config: Readonly<PorticoConfig>, logger: Logger, closers: Closer[], stopping: () => boolean): Promise<void> {
  const metrics = new Metrics();
  const controlPlane =
    config.gatewayControlPlane === undefined || config.gatewayToken === undefined ? undefined : { controlPlane: config.gatewayControlPlane, token: config.gatewayToken, logger };

  let registry: RegistryBackendSource | ControlPlaneRegistrySource;
  if (config.consul.addr !== undefined) {
    // Consul's read side: the gateway never writes, so no audit log (and no store) is needed.
    registry = new RegistryBackendSource(new ConsulRegistryBackend({ addr: config.consul.addr, token: config.consul.token, logger }));
  } else if (controlPlane !== undefined) {
    registry = new ControlPlaneRegistrySource(controlPlane);
  } else {
    // loadConfig({ mode: 'gateway' }) refuses this already; said again so the types need no cast.
    throw new PorticoError('PORTICO_ERR_CONFIG_INVALID', { message: 'PORTICO_GATEWAY_CONTROL_PLANE (or PORTICO_CONSUL_ADDR) must be set for the gateway to run on its own.' });
  }
  closers.push({ name: 'registry', close: () => registry.close() });
  const routes = controlPlane === undefined ? undefined : new ControlPlaneRouteSource(controlPlane);
  if (routes !== undefined) closers.push({ name: 'routes', close: () => routes.close() });

  const sources: Record<string, () => SourceStatus> = { registry: () => registry.status() };
  if (routes !== undefined) sources.routes = () => routes.status();
  const app = await buildGatewayApp({ metrics, logger, sources });
  closers.push({ name: 'http', close: () => app.close() });
  await listenOn('PORTICO_PORT', config.host, config.port, () => app.listen({ host: config.host, port: config.port }));
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;

  const source = config.consul.addr !== undefined ? `consul ${config.consul.addr}` : `control plane ${config.gatewayControlPlane ?? ''}`;
  logger.info({ url: `http://${config.host}:${port}`, registry: source, routes: routes === undefined ? 'none' : 'control plane' }, 'gateway loading its registry and routes');
  // The gateway port opens once there is something to route by; /readyz says what it waits for.
  await Promise.all([registry.start(), routes?.start()]);
  if (stopping()) return;

  // Redis only for routes with `rateLimit.store: redis`: connected when such a route appears, and failing
  // fast (no offline queue), so a limit check never waits on an outage: the route fails open instead.
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
  redis.on('error', (error) => logger.debug({ err: error }, 'gateway redis connection error'));
  closers.push({ name: 'gateway redis', close: async () => void (await redis.quit().catch(() => redis.disconnect())) });
  if (routes !== undefined) {
    const connectWhenNeeded = async () => {
      const needed = (await routes.list()).some((route) => route.middlewares.rateLimit?.store === 'redis');
      if (needed && redis.status === 'wait') {
        logger.info({ redis: config.redisUrl.replace(/\/\/[^@/]*@/, '//***@') }, 'a route keeps its rate limit in Redis: connecting');
        redis.connect().catch((error: unknown) => logger.warn({ err: error }, 'Redis does not answer: rate limits kept in Redis let requests pass until it does'));
      }
    };
    routes.subscribe(() => void connectWhenNeeded());
    await connectWhenNeeded();
  }

  const gateway = await startGateway(config, { redis, registry, routes, metrics, logger }, closers);
  logger.info(
    { url: `http://${config.host}:${port}`, gateway, registry: source, routes: routes === undefined ? 'none' : 'control plane' },
    'gateway listening',
  );
}

/** The data plane on its own port (nothing but proxied requests are served there); returns its URL. */
async function startGateway(
  config: Readonly<PorticoConfig>,
  parts: Pick<GatewayOptions, 'redis' | 'registry' | 'routes' | 'logger'> & { metrics: Metrics },
  closers: Closer[],
): Promise<string> {
  const { metrics, routes, ...rest } = parts;
  const gateway = new Gateway({
    ...rest,
    ...(routes === undefined ? {} : { routes }),
    metricsRegistry: metrics.registry,
    requestTimeoutMs: config.gatewayTimeoutMs,
    connectTimeoutMs: config.gatewayConnectTimeoutMs,
    maxConcurrentPerService: config.gatewayMaxConcurrent,
    tls: readGatewayTls(config),
  });
  closers.push({ name: 'gateway', close: () => gateway.close() });
  const address = await listenOn('PORTICO_GATEWAY_PORT', config.host, config.gatewayPort, () => gateway.listen({ host: config.host, port: config.gatewayPort }));
  return `${config.gatewayTlsCert === undefined ? 'http' : 'https'}://${config.host}:${address.port}`;
}

process.on('unhandledRejection', (reason) => {
  process.stderr.write(`portico: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
  process.exit(1);
});

await start();
