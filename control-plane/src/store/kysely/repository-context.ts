import { type Kysely } from 'kysely';
import { type PorticoError } from '../../errors.js';
import { type Store } from '../store.js';
import { type Database } from './database.js';

export type StoreDialect = Store['dialect'];

/** What a kysely repository needs from the store that made it. */
export interface RepositoryContext {
  readonly dialect: StoreDialect;
  /**
   * The database, or the transaction the repository is bound to. Throws a `PorticoError` when the
   * store is not started or already closed.
   */
  db(): Kysely<Database>;
  /** The store's driver-error mapping (`mapStoreError` naming this store). */
  mapError(error: unknown): PorticoError;
}

/** Run `op` against the context's database, mapping whatever it throws to a `PorticoError`. */
export async function guarded<T>(context: RepositoryContext, op: (db: Kysely<Database>) => Promise<T>): Promise<T> {
  try {
    return await op(context.db());
  } catch (error) {
    throw context.mapError(error);
  }
}
