import { type Kysely, sql } from 'kysely';
import { type Subscription, type SubscriptionReplacement, type TopologyRepository } from '../store.js';
import { type Database } from './database.js';
import { type RepositoryContext, guarded } from './repository-context.js';
import { toEpochMillis, toNumber } from './row-mapping.js';

type SubscriptionRow = { service: string; message_type: string; declared_at: number | string };

/** Rows per multi-row insert: 3 parameters each stays far below SQLite's and PostgreSQL's parameter limits. */
const ROWS_PER_STATEMENT = 500;

/**
 * First key of the PostgreSQL advisory lock `replace` takes (`'topo'` in ASCII), so its locks never
 * meet another feature's; the second key is the service name's hash.
 */
const TOPOLOGY_LOCK_CLASS = 0x746f706f;

function toSubscription(row: SubscriptionRow): Subscription {
  return { service: row.service, messageType: row.message_type, declaredAt: new Date(toNumber(row.declared_at)) };
}

// Sorted here rather than by ORDER BY: PostgreSQL orders text by the database's collation, SQLite by
// bytes, and the contract promises one order on both.
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function bySubscription(a: Subscription, b: Subscription): number {
  return byCodePoint(a.service, b.service) || byCodePoint(a.messageType, b.messageType);
}

/** `TopologyRepository` over kysely: one row per (service, message type). */
export class KyselyTopologyRepository implements TopologyRepository {
  readonly #context: RepositoryContext;

  constructor(context: RepositoryContext) {
    this.#context = context;
  }

  async list(): Promise<Subscription[]> {
    return guarded(this.#context, async (db) => (await db.selectFrom('topology_subscriptions').selectAll().execute()).map(toSubscription).sort(bySubscription));
  }

  async ofService(service: string): Promise<Subscription[]> {
    return guarded(this.#context, (db) => selectService(db, service));
  }

  async replace(service: string, messageTypes: readonly string[], declaredAt: Date): Promise<SubscriptionReplacement> {
    return guarded(this.#context, (db) =>
      inTransaction(db, async (trx) => {
        if (this.#context.dialect === 'postgres') {
          // Under READ COMMITTED two replacements of one service would each delete the rows they saw
          // and insert their own, leaving the union of both sets (or a key violation). The lock makes
          // them queue; the second reads after the first commits. SQLite has one writer at a time.
          await sql`select pg_advisory_xact_lock(${TOPOLOGY_LOCK_CLASS}::int4, hashtext(${service}))`.execute(trx);
        }
        const before = await selectService(trx, service);
        const wanted = [...new Set(messageTypes)].sort(byCodePoint);
        if (wanted.length === before.length && wanted.every((type, i) => before[i]?.messageType === type)) {
          return { before, after: before, changed: false };
        }
        await trx.deleteFrom('topology_subscriptions').where('service', '=', service).execute();
        const at = toEpochMillis(declaredAt);
        for (let start = 0; start < wanted.length; start += ROWS_PER_STATEMENT) {
          const rows = wanted.slice(start, start + ROWS_PER_STATEMENT).map((type) => ({ service, message_type: type, declared_at: at }));
          await trx.insertInto('topology_subscriptions').values(rows).execute();
        }
        const after = wanted.map((type) => ({ service, messageType: type, declaredAt: new Date(at) }));
        return { before, after, changed: true };
      }),
    );
  }

  async removeService(service: string): Promise<Subscription[]> {
    return guarded(this.#context, async (db) =>
      (await db.deleteFrom('topology_subscriptions').where('service', '=', service).returningAll().execute()).map(toSubscription).sort(bySubscription),
    );
  }
}

async function selectService(db: Kysely<Database>, service: string): Promise<Subscription[]> {
  const rows = await db.selectFrom('topology_subscriptions').selectAll().where('service', '=', service).execute();
  return rows.map(toSubscription).sort(bySubscription);
}

/** Run `work` in a transaction, or in the caller's one when the repository is already bound to one. */
async function inTransaction<T>(db: Kysely<Database>, work: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db) : db.transaction().execute(work);
}
