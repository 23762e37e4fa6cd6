import { type Kysely } from 'kysely';
import { PorticoError } from '../../errors.js';
import { type NewToken, type TokenRecord, type TokenRepository } from '../store.js';
import { type Database } from './database.js';
import { type RepositoryContext, guarded } from './repository-context.js';
import { toEpochMillis, toNumber, toTokenRecord } from './row-mapping.js';

/** `TokenRepository` over kysely, for SQLite and PostgreSQL alike. */
export class KyselyTokenRepository implements TokenRepository {
  readonly #context: RepositoryContext;

  constructor(context: RepositoryContext) {
    this.#context = context;
  }

  async create(token: NewToken): Promise<TokenRecord> {
    return guarded(this.#context, async (db) => {
      // ON CONFLICT DO NOTHING rather than catching the unique violation: on PostgreSQL a failed
      // statement aborts the surrounding transaction, so a caller inside `transaction()` could not carry
      // on after a taken name, while on SQLite it could. This keeps both dialects alike.
      const row = await db
        .insertInto('tokens')
        .values({
          id: token.id,
          name: token.name,
          role: token.role,
          hash: token.hash,
          prefix: token.prefix,
          created_at: toEpochMillis(token.createdAt ?? new Date()),
          created_by: token.createdBy,
          services: token.services === undefined || token.services === null ? null : JSON.stringify(token.services),
        })
        .onConflict((conflict) => conflict.column('name').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (row === undefined) {
        throw new PorticoError('PORTICO_ERR_TOKEN_NAME_TAKEN', {
          message: `A token named "${token.name}" exists already.`,
          details: { name: token.name },
        });
      }
      return toTokenRecord(row);
    });
  }

  async findByHash(hash: string): Promise<TokenRecord | undefined> {
    return guarded(this.#context, async (db) => {
      const row = await db.selectFrom('tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
      return row === undefined ? undefined : toTokenRecord(row);
    });
  }

  async get(id: string): Promise<TokenRecord | undefined> {
    return guarded(this.#context, async (db) => {
      const row = await db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? undefined : toTokenRecord(row);
    });
  }

  async list(): Promise<TokenRecord[]> {
    return guarded(this.#context, async (db) => {
      const rows = await db.selectFrom('tokens').selectAll().orderBy('created_at').orderBy('id').execute();
      return rows.map(toTokenRecord);
    });
  }

  async count(): Promise<number> {
    return guarded(this.#context, async (db) => {
      const { count } = await db
        .selectFrom('tokens')
        .select((eb) => eb.fn.countAll<number | string>().as('count'))
        .executeTakeFirstOrThrow();
      return toNumber(count);
    });
  }

  async remove(id: string): Promise<TokenRecord> {
    return guarded(this.#context, (db) =>
      inTransaction(db, async (trx) => {
        if (this.#context.dialect === 'postgres') {
          // Under READ COMMITTED two transactions deleting the two last admins would each count the
          // other's row and both commit. Locking every admin row first makes them queue: the second
          // re-reads after the first commits and sees one admin left. SQLite needs no lock: it has one
          // writer at a time, and the conditional DELETE below is a single statement.
          await trx.selectFrom('tokens').select('id').where('role', '=', 'admin').forUpdate().execute();
        }
        // One conditional DELETE decides and deletes at once, and writes nothing when it refuses, so a
        // refusal inside a caller's transaction leaves that transaction intact.
        const deleted = await trx
          .deleteFrom('tokens')
          .where('id', '=', id)
          .where((eb) =>
            eb.or([
              eb('role', '!=', 'admin'),
              eb(
                eb.selectFrom('tokens').select((inner) => inner.fn.countAll().as('admins')).where('role', '=', 'admin'),
                '>',
                1,
              ),
            ]),
          )
          .returningAll()
          .executeTakeFirst();
        if (deleted !== undefined) return toTokenRecord(deleted);

        const existing = await trx.selectFrom('tokens').select('id').where('id', '=', id).executeTakeFirst();
        if (existing === undefined) {
          throw new PorticoError('PORTICO_ERR_TOKEN_NOT_FOUND', { message: `No token has the id "${id}".`, details: { id } });
        }
        throw new PorticoError('PORTICO_ERR_TOKEN_LAST_ADMIN', { details: { id } });
      }),
    );
  }
}

/** Run `work` in a transaction, or in the caller's one when the repository is already bound to one. */
async function inTransaction<T>(db: Kysely<Database>, work: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db) : db.transaction().execute(work);
}
