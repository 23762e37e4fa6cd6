import { type Kysely, type Migrator, sql } from 'kysely';
import { PorticoError } from '../../errors.js';
import { appliedMigrationNames, createStoreMigrator, migrateToLatest } from '../migrations/store-migrations.js';
import { type AuditRepository, type RegistryRepository, type RouteRepository, type Store, type StoreSession, type TokenRepository, type TopologyRepository } from '../store.js';
import { type Database } from './database.js';
import { KyselyAuditRepository } from './kysely-audit-repository.js';
import { KyselyRegistryRepository } from './kysely-registry-repository.js';
import { KyselyRouteRepository } from './kysely-route-repository.js';
import { KyselyTokenRepository } from './kysely-token-repository.js';
import { KyselyTopologyRepository } from './kysely-topology-repository.js';
import { mapStoreError } from './map-store-error.js';
import { type RepositoryContext, type StoreDialect } from './repository-context.js';

export interface KyselyStoreOptions {
  dialect: StoreDialect;
  /** Names the store in error messages, e.g. `SQLite database /data/portico.db`. Never a secret. */
  description: string;
  /** PostgreSQL schema for the migration bookkeeping tables; `undefined` for the default. */
  migrationSchema?: string;
}

interface OpenDatabase {
  db: Kysely<Database>;
  migrator: Migrator;
}

/**
 * The `Store` both adapters share: repositories, transactions, migrations and lifecycle over a
 * `Kysely<Database>`. An adapter supplies only how to open that instance (`open`) and anything to do
 * on the fresh connection before migrating (`prepare`); it owns the driver connection, which
 * `Kysely.destroy()` closes.
 */
export abstract class KyselyStore implements Store {
  readonly dialect: StoreDialect;
  readonly tokens: TokenRepository;
  readonly audit: AuditRepository;
  readonly registry: RegistryRepository;
  readonly routes: RouteRepository;
  readonly topology: TopologyRepository;

  readonly #description: string;
  readonly #migrationSchema: string | undefined;
  #open: OpenDatabase | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  protected constructor(options: KyselyStoreOptions) {
    this.dialect = options.dialect;
    this.#description = options.description;
    this.#migrationSchema = options.migrationSchema;
    const session = this.#session(() => this.#database().db);
    this.tokens = session.tokens;
    this.audit = session.audit;
    this.registry = session.registry;
    this.routes = session.routes;
    this.topology = session.topology;
  }

  /** Create the `Kysely` instance over a new driver connection (or pool). Called once, by `start()`. */
  protected abstract open(): Promise<Kysely<Database>>;

  /**
   * Work on the freshly opened database before migrations run (PostgreSQL creates its schema). The
   * default runs one query, so an unreachable store fails here, as `PORTICO_ERR_STORE_UNAVAILABLE`.
   */
  protected async prepare(db: Kysely<Database>): Promise<void> {
    await sql`select 1`.execute(db);
  }

  /** `mapStoreError`, naming this store. */
  protected mapError(error: unknown): PorticoError {
    return mapStoreError(error, this.#description);
  }

  async start(): Promise<void> {
    if (this.#closing !== undefined) throw this.#closedError();
    // Concurrent and repeated calls share one start; a failed start may be retried.
    this.#starting ??= this.#start().catch((error: unknown) => {
      this.#starting = undefined;
      throw error;
    });
    return this.#starting;
  }

  async transaction<T>(work: (session: StoreSession) => Promise<T>): Promise<T> {
    const { db } = this.#database();
    let workFailed = false;
    let workError: unknown;
    try {
      return await db.transaction().execute(async (trx) => {
        try {
          return await work(this.#session(() => trx));
        } catch (error) {
          workFailed = true;
          workError = error;
          throw error;
        }
      });
    } catch (error) {
      // The caller's own error comes back as it was thrown; only begin, commit or rollback failing
      // is the driver's, and mapped.
      if (workFailed && error === workError) throw error;
      throw this.mapError(error);
    }
  }

  async ping(): Promise<void> {
    const { db } = this.#database();
    try {
      await sql`select 1`.execute(db);
    } catch (error) {
      const mapped = this.mapError(error);
      if (mapped.code === 'PORTICO_ERR_STORE_UNAVAILABLE') throw mapped;
      throw new PorticoError('PORTICO_ERR_STORE_UNAVAILABLE', {
        message: `${this.#description} did not answer: ${mapped.message}`,
        cause: error,
      });
    }
  }

  async appliedMigrations(): Promise<string[]> {
    const { migrator } = this.#database();
    try {
      return await appliedMigrationNames(migrator);
    } catch (error) {
      throw this.mapError(error);
    }
  }

  async close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #start(): Promise<void> {
    let db: Kysely<Database>;
    try {
      db = await this.open();
    } catch (error) {
      throw this.mapError(error);
    }
    try {
      await this.prepare(db);
      const migrator = createStoreMigrator(db, {
        dialect: this.dialect,
        ...(this.#migrationSchema === undefined ? {} : { schema: this.#migrationSchema }),
      });
      await migrateToLatest(migrator, (error) => this.mapError(error));
      this.#open = { db, migrator };
    } catch (error) {
      await db.destroy().catch(() => undefined);
      throw this.mapError(error);
    }
  }

  async #close(): Promise<void> {
    await this.#starting?.catch(() => undefined);
    const open = this.#open;
    this.#open = undefined;
    if (open === undefined) return;
    try {
      await open.db.destroy();
    } catch (error) {
      throw this.mapError(error);
    }
  }

  #database(): OpenDatabase {
    if (this.#closing !== undefined) throw this.#closedError();
    if (this.#open === undefined) {
      throw new PorticoError('PORTICO_ERR_STORE_UNAVAILABLE', {
        message: `${this.#description} is not open: call start() first.`,
      });
    }
    return this.#open;
  }

  #closedError(): PorticoError {
    return new PorticoError('PORTICO_ERR_STORE_UNAVAILABLE', { message: `${this.#description} is closed.` });
  }

  #session(db: () => Kysely<Database>): StoreSession {
    const context: RepositoryContext = {
      dialect: this.dialect,
      db,
      mapError: (error) => this.mapError(error),
    };
    return {
      tokens: new KyselyTokenRepository(context),
      audit: new KyselyAuditRepository(context),
      registry: new KyselyRegistryRepository(context),
      routes: new KyselyRouteRepository(context),
      topology: new KyselyTopologyRepository(context),
    };
  }
}
