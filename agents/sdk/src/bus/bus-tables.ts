import { type Kysely, sql } from 'kysely';

/**
 * The bus's two tables in a service's own database (SQLite or PostgreSQL, through kysely), so they are
 * written in the same transactions as the service's own data:
 *
 *   portico_outbox  a message published or sent inside a transaction, until the relay has added it to
 *                   Redis and deleted it. UUIDv7 ids sort by creation, so the relay sends in order; the
 *                   table holds only what is still to send, so reading it in id order needs no other index.
 *   portico_inbox   the id of every message whose handler committed: a redelivery finds it and is skipped.
 */
export interface BusTables {
  portico_outbox: {
    id: string;
    /** `event` or `command`. */
    kind: string;
    type: string;
    /** The service a command goes to; null for an event. */
    target: string | null;
    /** The envelope, JSON. */
    envelope: string;
    created_at: string;
  };
  portico_inbox: {
    message_id: string;
    type: string;
    processed_at: string;
  };
}

/** A kysely instance over any database whose tables include the bus's. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the service's own tables are its business
export type BusDatabase = Kysely<any>;

/**
 * Create the bus's tables and indexes if they are missing (idempotent; safe from several processes at
 * once, as replicas starting together on a fresh database are).
 */
export async function ensureBusTables(db: BusDatabase): Promise<void> {
  const tables = db as unknown as Kysely<BusTables>;
  await createIfMissing(() =>
    tables.schema
      .createTable('portico_outbox')
      .ifNotExists()
      .addColumn('id', 'varchar(36)', (col) => col.primaryKey())
      .addColumn('kind', 'varchar(16)', (col) => col.notNull())
      .addColumn('type', 'varchar(128)', (col) => col.notNull())
      .addColumn('target', 'varchar(63)')
      .addColumn('envelope', 'text', (col) => col.notNull())
      .addColumn('created_at', 'varchar(32)', (col) => col.notNull())
      .execute(),
  );
  await createIfMissing(() =>
    tables.schema
      .createTable('portico_inbox')
      .ifNotExists()
      .addColumn('message_id', 'varchar(36)', (col) => col.primaryKey())
      .addColumn('type', 'varchar(128)', (col) => col.notNull())
      .addColumn('processed_at', 'varchar(32)', (col) => col.notNull())
      .execute(),
  );
  await createIfMissing(() => tables.schema.createIndex('portico_inbox_processed_at').ifNotExists().on('portico_inbox').column('processed_at').execute());
}

/**
 * Run a `CREATE … IF NOT EXISTS`, taking "it exists" for success. PostgreSQL's `IF NOT EXISTS` does not
 * cover two sessions creating the same table at the same moment: the later one fails with a unique
 * violation on the catalogue (23505) or "already exists" (42P07, 42710) once the first has committed.
 */
async function createIfMissing(create: () => Promise<unknown>): Promise<void> {
  try {
    await create();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code !== '23505' && code !== '42P07' && code !== '42710') throw error;
  }
}

/** Nothing but the tables, typed, over the service's database. */
export function busTables<DB>(db: Kysely<DB>): Kysely<BusTables> {
  return db as unknown as Kysely<BusTables>;
}

/** `now` as stored: ISO 8601, which sorts as time does. */
export function storedTime(now: Date = new Date()): string {
  return now.toISOString();
}

/** `count(*)` portable across SQLite and PostgreSQL (which returns a string for bigint). */
export const countAll = sql<number | string>`count(*)`;
