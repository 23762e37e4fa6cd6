import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import { PorticoError } from '../../errors.js';
import { type StoreDialect } from '../kysely/repository-context.js';
import { tokensAndAudit } from './0001-tokens-and-audit.js';
import { registry } from './0002-registry.js';
import { gatewayRoutes } from './0003-gateway-routes.js';
import { messageTopology } from './0004-message-topology.js';

/** Every migration, by name; kysely applies them in name order, each once. */
function storeMigrations(dialect: StoreDialect): Record<string, Migration> {
  return {
    '0001_tokens_and_audit': tokensAndAudit(dialect),
    '0002_registry': registry(),
    '0003_gateway_routes': gatewayRoutes(),
    '0004_message_topology': messageTopology(),
  };
}

export interface StoreMigratorOptions {
  dialect: StoreDialect;
  /** PostgreSQL schema holding kysely's bookkeeping tables (the store's tables follow `search_path`). */
  schema?: string;
}

/** A kysely `Migrator` over the in-code migrations, with its bookkeeping tables in `schema`. */
export function createStoreMigrator<DB>(db: Kysely<DB>, options: StoreMigratorOptions): Migrator {
  const provider: MigrationProvider = { getMigrations: () => Promise.resolve(storeMigrations(options.dialect)) };
  return new Migrator({
    db,
    provider,
    ...(options.schema === undefined ? {} : { migrationTableSchema: options.schema }),
  });
}

/**
 * Apply every pending migration (kysely takes a lock, so concurrent starts apply each one once).
 * @param mapError the store's driver-error mapping: a store that cannot be reached is reported as such
 *   rather than as a failed migration.
 * @throws PorticoError `PORTICO_ERR_STORE_UNAVAILABLE`, `PORTICO_ERR_STORE_MIGRATION_FAILED`.
 */
export async function migrateToLatest(migrator: Migrator, mapError: (error: unknown) => PorticoError): Promise<void> {
  const { error, results } = await migrator.migrateToLatest();
  if (error === undefined) return;
  const mapped = mapError(error);
  if (mapped.code === 'PORTICO_ERR_STORE_UNAVAILABLE') throw mapped;
  const failed = results?.find((result) => result.status === 'Error')?.migrationName;
  const reason = error instanceof Error ? error.message : 'see the cause';
  throw new PorticoError('PORTICO_ERR_STORE_MIGRATION_FAILED', {
    message:
      failed === undefined ? `The store's migrations could not be run: ${reason}` : `Migration ${failed} failed: ${reason}`,
    cause: error,
  });
}

/** Names of the applied migrations, in the order they were applied. */
export async function appliedMigrationNames(migrator: Migrator): Promise<string[]> {
  // Unordered migrations are not allowed, so name order is the order of application.
  const migrations = await migrator.getMigrations();
  return migrations.filter((migration) => migration.executedAt !== undefined).map((migration) => migration.name);
}
