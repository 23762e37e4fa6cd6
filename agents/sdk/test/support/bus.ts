/**
 * What the bus's tests share: a service's own SQLite database (kysely over better-sqlite3, as the
 * sample services have), BullMQ reads, and polling.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Kysely, SqliteDialect } from 'kysely';

export { startRedisServer, type TestRedis } from '../../../../control-plane/test/support/redis-server.js';

/** A service's tables besides the bus's: the effects its handlers apply. */
export interface ServiceTables {
  effects: { message_id: string; service: string; type: string; applied_at: string };
  products: { sku: string; available: number };
}

export interface ServiceDatabase {
  db: Kysely<ServiceTables>;
  file: string;
  close(): Promise<void>;
}

/** A SQLite database of a service's own in a temp directory, with its `effects` and `products` tables. */
export async function serviceDatabase(name: string, dir?: string): Promise<ServiceDatabase> {
  const own = dir === undefined;
  const at = dir ?? (await mkdtemp(join(tmpdir(), `portico-bus-${name}-`)));
  const file = join(at, `${name}.sqlite`);
  const sqlite = new Database(file);
  sqlite.pragma('journal_mode = WAL');
  // What a service on SQLite runs with: WAL commits without an fsync each (durable across a crash of the process).
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<ServiceTables>({ dialect: new SqliteDialect({ database: sqlite }) });
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
  return {
    db,
    file,
    close: async () => {
      await db.destroy();
      if (own) await rm(at, { recursive: true, force: true });
    },
  };
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
