import { type SqliteDatabase, type SqliteStatement } from 'kysely';

/** Distinct SQL texts kept prepared by default: far more than a service or the control plane issues. */
export const STATEMENT_CACHE_SIZE = 256;

/**
 * A better-sqlite3 database for kysely's `SqliteDialect` that prepares each SQL text once. kysely
 * prepares every query anew, and preparing costs about as much as running a small query. A
 * better-sqlite3 statement can be run again and again, and kysely runs one query at a time on its one
 * connection (a streamed query holds it until its rows are read), so one prepared statement per SQL
 * text serves every execution. SQLite prepares a cached statement again by itself when the schema
 * changes under it. Past `size` texts the cache starts over.
 *
 * ```ts
 * const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: withStatementCache(new Database(file)) }) });
 * ```
 */
export function withStatementCache(database: SqliteDatabase, size = STATEMENT_CACHE_SIZE): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => {
      cache.clear();
      return database.close();
    },
    prepare: (sql) => {
      let statement = cache.get(sql);
      if (statement === undefined) {
        if (cache.size >= size) cache.clear();
        statement = database.prepare(sql);
        cache.set(sql, statement);
      }
      return statement;
    },
  };
}
