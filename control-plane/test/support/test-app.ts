import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { SYSTEM_PRINCIPAL, TokenService } from '../../src/auth/token-service.js';
import { RedisProbe } from '../../src/broker/redis-probe.js';
import { BusConnection } from '../../src/messaging/bus-connection.js';
import { DeadLetters } from '../../src/messaging/dead-letters.js';
import { MessagePublisher } from '../../src/messaging/message-publisher.js';
import { QueueAdmin } from '../../src/messaging/queue-admin.js';
import { EmbeddedRegistryBackend } from '../../src/registry/backends/embedded-registry-backend.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { type Role } from '../../src/store/store.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { startRedisServer } from './redis-server.js';

export interface TestApp {
  app: FastifyInstance;
  /** The Redis the app's readiness probe uses. */
  redisUrl: string;
  store: SqliteStore;
  tokens: TokenService;
  broker: RedisProbe;
  registry: EmbeddedRegistryBackend;
  /** Secret of an admin token made for the test. */
  adminToken: string;
  /** Every line the app logged, as written. */
  logLines: string[];
  /** A fresh token of that role (an agent's for `services`, default `['test-service']`); returns its secret. */
  tokenFor(role: Role, services?: string[]): Promise<string>;
  /** Rows in the tokens and audit tables: "nothing was written" means these did not move. */
  counts(): Promise<{ tokens: number; audit: number }>;
  close(): Promise<void>;
}

/** The real app over a real SQLite file and a real Redis, driven with `inject()`. */
export async function createTestApp(options: { redisUrl: string; bodyLimit?: number }): Promise<TestApp> {
  const dir = await mkdtemp(join(tmpdir(), 'portico-api-'));
  const store = new SqliteStore({ filename: join(dir, 'portico.db') });
  await store.start();
  const tokens = new TokenService(store);
  const registry = new EmbeddedRegistryBackend({ store, reapIntervalMs: 50 });
  await registry.start();
  const broker = new RedisProbe(options.redisUrl);
  // The message bus as the admin API sees it; event subscribers from the store's topology, as in main.ts.
  const bus = new BusConnection({ url: options.redisUrl });
  const deadLetters = new DeadLetters({ bus, audit: store.audit });
  const subscribersOf = async (type: string) => (await store.topology.list()).filter((s) => s.messageType === type).map((s) => s.service);
  const messaging = { queues: new QueueAdmin({ bus, audit: store.audit, deadLetters }), deadLetters, messages: new MessagePublisher({ bus, audit: store.audit, subscribersOf }) };
  const logLines: string[] = [];
  const logger = createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } });
  const app = await buildApp({ store, registry, broker, metrics: new Metrics(), logger, messaging, bodyLimit: options.bodyLimit });
  await app.ready();
  const adminToken = (await tokens.create(SYSTEM_PRINCIPAL, { name: `admin-${dir.slice(-6)}`, role: 'admin' })).secret;
  let n = 0;
  return {
    app,
    redisUrl: options.redisUrl,
    store,
    tokens,
    broker,
    registry,
    adminToken,
    logLines,
    tokenFor: async (role, services) =>
      (await tokens.create(SYSTEM_PRINCIPAL, { name: `${role}-${++n}`, role, ...(role === 'agent' ? { services: services ?? ['test-service'] } : {}) })).secret,
    counts: async () => ({
      tokens: await store.tokens.count(),
      audit: (await store.audit.list({ limit: 1_000_000 })).length,
    }),
    close: async () => {
      await app.close();
      await registry.close();
      await broker.close();
      await bus.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

/**
 * The test app for a whole test file, over a Redis of its own: started before the file's tests and
 * closed after them. Use the returned object in tests (not at the top level: it is empty until then).
 */
export function useTestApp(options: { bodyLimit?: number } = {}): TestApp {
  let current: TestApp | undefined;
  let stopRedis: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const redis = await startRedisServer();
    stopRedis = () => redis.stop();
    current = await createTestApp({ redisUrl: redis.url, ...options });
  });
  afterAll(async () => {
    await current?.close();
    await stopRedis?.();
  });
  return new Proxy({} as TestApp, {
    get: (_target, key) => {
      if (current === undefined) throw new Error('useTestApp(): the app exists only inside tests and hooks');
      return Reflect.get(current, key) as unknown;
    },
  });
}

/** `useTestApp()`, listening on a free port of 127.0.0.1 (for clients that need a real socket, such as SSE); `base()` is its URL. */
export function useListeningTestApp(options: { bodyLimit?: number } = {}): { t: TestApp; base: () => string } {
  const t = useTestApp(options);
  let base: string | undefined;
  beforeAll(async () => {
    base = await t.app.listen({ port: 0, host: '127.0.0.1' });
  });
  return {
    t,
    base: () => {
      if (base === undefined) throw new Error('useListeningTestApp(): the app listens only inside tests and hooks');
      return base;
    },
  };
}
