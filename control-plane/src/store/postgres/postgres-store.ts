import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { type Database } from '../kysely/database.js';
import { KyselyStore } from '../kysely/kysely-store.js';

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database?...`. The password never appears in errors. */
  connectionString: string;
  /**
   * Schema holding every table, the migration bookkeeping included; created if missing. Without it,
   * the connection's default `search_path` decides (usually `public`).
   */
  schema?: string;
  /** Most connections the pool opens (default 10). */
  poolSize?: number;
  /** How long to wait for a new connection before giving up (default 10 000 ms). */
  connectionTimeoutMs?: number;
}

const DEFAULT_POOL_SIZE = 10;
const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000;

/**
 * The scale-out store: PostgreSQL through a pg pool this store owns. Several control planes may share
 * one database: migrations take kysely's advisory lock, and removing an admin token locks the admin
 * rows first.
 */
export class PostgresStore extends KyselyStore {
  readonly #options: PostgresStoreOptions;

  constructor(options: PostgresStoreOptions) {
    super({
      dialect: 'postgres',
      description: describeServer(options.connectionString),
      ...(options.schema === undefined ? {} : { migrationSchema: options.schema }),
    });
    this.#options = options;
  }

  protected override open(): Promise<Kysely<Database>> {
    const pool = new pg.Pool(poolConfig(this.#options));
    // An idle pooled connection that loses its server is reported as a pool 'error' event, which would
    // crash the process if nobody listened. The pool drops that connection; the next query that cannot
    // be served fails and is mapped like any other.
    pool.on('error', () => undefined);
    return Promise.resolve(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }));
  }

  protected override async prepare(db: Kysely<Database>): Promise<void> {
    const schema = this.#options.schema;
    if (schema === undefined) return super.prepare(db);
    // Look before creating: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the
    // schema exists, and a deployment may have made the schema for a less privileged role.
    const found = await sql<{ found: number }>`select 1 as found from pg_namespace where nspname = ${schema}`.execute(db);
    if (found.rows.length > 0) return;
    try {
      await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
    } catch (error) {
      // Two control planes starting at once may both get here; the slower one's IF NOT EXISTS can
      // still hit the catalogue's unique index. The schema exists then, which is all that was wanted.
      if (this.mapError(error).code !== 'PORTICO_ERR_STORE_CONFLICT') throw error;
    }
  }
}

function poolConfig(options: PostgresStoreOptions): pg.PoolConfig {
  const config: pg.PoolConfig = {
    connectionString: options.connectionString,
    max: options.poolSize ?? DEFAULT_POOL_SIZE,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS,
  };
  if (options.schema === undefined) return config;

  // search_path as a startup option applies from the connection's first statement, with no extra round
  // trip and no window in which a pooled connection could query the default schema.
  const searchPath = `-c search_path=${escapeStartupOption(quoteIdentifier(options.schema))}`;
  const url = parseUrl(options.connectionString);
  const existing = url?.searchParams.get('options');
  if (url === undefined || existing === null || existing === undefined) return { ...config, options: searchPath };
  // pg lets an `options` parameter in the connection string replace the pool's; fold it in instead.
  url.searchParams.delete('options');
  return { ...config, connectionString: url.toString(), options: `${existing} ${searchPath}` };
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The server splits startup options on whitespace; a backslash makes the next character literal. */
function escapeStartupOption(value: string): string {
  return value.replace(/[\\\s]/g, (character) => `\\${character}`);
}

/** `PostgreSQL at host:port (database name)`: enough to find the server, and never the password. */
function describeServer(connectionString: string): string {
  const url = parseUrl(connectionString);
  if (url === undefined) return 'PostgreSQL';
  const host = url.searchParams.get('host') ?? (url.hostname || process.env.PGHOST || 'localhost');
  const port = url.port || url.searchParams.get('port') || process.env.PGPORT || '5432';
  const database = safeDecode(url.pathname.replace(/^\//, ''));
  return `PostgreSQL at ${host}:${port}${database === '' ? '' : ` (database ${database})`}`;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function parseUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}
