/**
 * What the bus's tests share: a service's own database (kysely over better-sqlite3, as the sample
 * services have, or over PostgreSQL), BullMQ reads, and polling.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { afterEach } from 'vitest';
import { createTestSchema } from '../../../../control-plane/test/support/postgres.js';
import { startRedisServer, type TestRedis } from '../../../../control-plane/test/support/redis-server.js';
import { MessageBus, type MessageBusOptions } from '../../src/bus/index.js';
import { withStatementCache } from '../../src/bus/sqlite-statements.js';

export { startRedisServer, type TestRedis };

/** A service's tables besides the bus's: the effects its handlers apply. */
export interface ServiceTables {
  effects: { message_id: string; service: string; type: string; applied_at: string };
  products: { sku: string; available: number };
}

export interface ServiceDatabase {
  db: Kysely<ServiceTables>;
  /** Where it lives: the SQLite file, or the PostgreSQL schema. */
  file: string;
  close(): Promise<void>;
}

/** The databases a service may keep its data (and the bus's tables) in. */
export type Dialect = 'sqlite' | 'postgres';

/** A database of a service's own, with its `effects` and `products` tables: SQLite in a temp directory, or a PostgreSQL schema of its own. */
export async function serviceDatabase(name: string, dir?: string, dialect: Dialect = 'sqlite'): Promise<ServiceDatabase> {
  if (dialect === 'postgres') return postgresServiceDatabase();
  const own = dir === undefined;
  const at = dir ?? (await mkdtemp(join(tmpdir(), `portico-bus-${name}-`)));
  const file = join(at, `${name}.sqlite`);
  const sqlite = new Database(file);
  sqlite.pragma('journal_mode = WAL');
  // What a service on SQLite runs with: WAL commits without an fsync each (durable across a crash of the process).
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  // As a service should open it: each query prepared once (see `withStatementCache`).
  const db = new Kysely<ServiceTables>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  await createServiceTables(db);
  return {
    db,
    file,
    close: async () => {
      await db.destroy();
      if (own) await rm(at, { recursive: true, force: true });
    },
  };
}

async function postgresServiceDatabase(): Promise<ServiceDatabase> {
  const schema = await createTestSchema();
  const pool = new pg.Pool({ connectionString: schema.connectionString, options: `-c search_path=${schema.schema}`, max: 5 });
  const db = new Kysely<ServiceTables>({ dialect: new PostgresDialect({ pool }) });
  await createServiceTables(db);
  return {
    db,
    file: schema.schema,
    close: async () => {
      await db.destroy();
      await schema.drop();
    },
  };
}

async function createServiceTables(db: Kysely<ServiceTables>): Promise<void> {
  await db.schema
    .createTable('effects')
    .ifNotExists()
    .addColumn('message_id', 'text', (col) => col.notNull())
    .addColumn('service', 'text', (col) => col.notNull())
    .addColumn('type', 'text', (col) => col.notNull())
    .addColumn('applied_at', 'text', (col) => col.notNull())
    .execute();
  await db.schema
    .createTable('products')
    .ifNotExists()
    .addColumn('sku', 'text', (col) => col.primaryKey())
    .addColumn('available', 'integer', (col) => col.notNull())
    .execute();
}

/** Poll `check` until it returns true or `timeoutMs` passes; the message says what was awaited. */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A BullMQ queue handle for reading (or writing) a queue's jobs in a test; closing it closes its connection. */
export function queueHandle(name: string, url: string): Queue {
  const connection = new Redis(url, { maxRetriesPerRequest: 1 });
  connection.on('error', () => undefined);
  const queue = new Queue(name, { connection });
  queue.on('error', () => undefined);
  const close = queue.close.bind(queue);
  queue.close = async () => {
    await close();
    connection.disconnect();
  };
  return queue;
}

/**
 * A TCP relay in front of Redis that can cut the connection in the middle of a command stream: after
 * `cutAfter(n)`, the next `n` bytes from the client reach Redis, then every connection is closed and
 * no new one is accepted (so a client cannot send its commands again elsewhere).
 */
export interface CuttingProxy {
  url: string;
  /** Bytes from clients relayed to Redis so far. */
  readonly sent: number;
  cutAfter(bytes: number): void;
  close(): Promise<void>;
}

export async function cuttingProxy(redisPort: number): Promise<CuttingProxy> {
  const sockets = new Set<Socket>();
  let sent = 0;
  let remaining: number | undefined;
  let cut = false;
  const server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = connect(redisPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      if (cut) return;
      if (remaining !== undefined && chunk.length >= remaining) {
        const last = chunk.subarray(0, remaining);
        sent += last.length;
        cut = true;
        server.close();
        // What got through reaches Redis before the connection ends; then nothing more does.
        upstream.end(last, () => {
          for (const socket of sockets) socket.destroy();
        });
        client.destroy();
        return;
      }
      if (remaining !== undefined) remaining -= chunk.length;
      sent += chunk.length;
      upstream.write(chunk);
    });
    client.on('close', () => upstream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    get sent() {
      return sent;
    },
    cutAfter: (bytes) => {
      remaining = bytes;
    },
    close: async () => {
      cut = true;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What a test opened, closed after it, last first; with helpers that open and register in one step. */
export interface TestResources {
  /** Run `close` after the test, before what was added earlier (`last`: after everything). */
  add: (close: () => Promise<unknown>, options?: { last?: boolean }) => void;
  /** A `redis-server` of the test's own (see `startRedisServer`), stopped after the test. */
  redis: (options?: Parameters<typeof startRedisServer>[0]) => Promise<TestRedis>;
  /** A service database (see `serviceDatabase`), closed after the test. */
  database: (name: string, dir?: string, dialect?: Dialect) => Promise<ServiceDatabase>;
  /** A temp directory, removed after the test. */
  tempDir: () => Promise<string>;
  /** A message bus (not started), closed after the test. */
  bus: (options: MessageBusOptions) => MessageBus;
}

/** Call at a test file's top level: each test's resources are released after it (an `afterEach`). */
export function useTestResources(): TestResources {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const add = (close: () => Promise<unknown>, options: { last?: boolean } = {}) => {
    if (options.last === true) cleanups.unshift(close);
    else cleanups.push(close);
  };
  return {
    add,
    redis: async (options = {}) => {
      const server = await startRedisServer(options);
      add(() => server.stop());
      return server;
    },
    database: async (name, dir, dialect) => {
      const db = await serviceDatabase(name, dir, dialect);
      add(() => db.close());
      return db;
    },
    tempDir: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'portico-bus-test-'));
      add(() => rm(dir, { recursive: true, force: true }));
      return dir;
    },
    bus: (options) => {
      const bus = new MessageBus(options);
      add(() => bus.close());
      return bus;
    },
  };
}
