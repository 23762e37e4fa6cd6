import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { withStatementCache } from '@portico/sdk/bus/sqlite-statements';
import { Kysely, SqliteDialect } from 'kysely';
import { type Database } from '../kysely/database.js';
import { KyselyStore } from '../kysely/kysely-store.js';

export interface SqliteStoreOptions {
  /** Path of the database file (its directory is created if missing), or `:memory:`. */
  filename: string;
}

/** How long a writer waits for another process's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5_000;

/**
 * The default store: one SQLite file, through better-sqlite3. The file is put in WAL mode, so readers
 * (a backup, the `sqlite3` shell) never block the control plane's writes. kysely runs every query on
 * the one connection this store owns, one at a time, so transactions here never interleave.
 */
export class SqliteStore extends KyselyStore {
  readonly #filename: string;

  constructor(options: SqliteStoreOptions) {
    super({ dialect: 'sqlite', description: `SQLite database ${options.filename}` });
    this.#filename = options.filename;
  }

  protected override async open(): Promise<Kysely<Database>> {
    const inMemory = this.#filename === ':memory:' || this.#filename === '';
    // The file holds token hashes and the audit log: only the owner may read the directory.
    if (!inMemory) await mkdir(dirname(resolve(this.#filename)), { recursive: true, mode: 0o700 });
    const database = new BetterSqlite3(this.#filename, { timeout: BUSY_TIMEOUT_MS });
    try {
      database.pragma('journal_mode = WAL');
      // WAL with synchronous=NORMAL: a commit is durable across a crash of the process, and only the last
      // moments before a power loss may be lost; FULL would fsync on every commit.
      database.pragma('synchronous = NORMAL');
      database.pragma('foreign_keys = ON');
      database.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    } catch (error) {
      database.close();
      throw error;
    }
    return new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
  }
}
