import { type Kysely, type Migration } from 'kysely';

/**
 * `0003_gateway_routes`: the gateway's explicit routes. Each is one JSON document (`doc`) beside the
 * columns that are looked up or must be unique; the unique constraint is named so that `mapStoreError`
 * recognises a taken name on PostgreSQL.
 */
export function gatewayRoutes(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('gateway_routes')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('doc', 'text', (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .addUniqueConstraint('gateway_routes_name_unique', ['name'])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('gateway_routes').execute();
    },
  };
}
