import { type Kysely, type Migration } from 'kysely';

/**
 * `0002_registry`: the embedded registry's state, and the services an agent token may manage.
 *
 * The registry keeps its working set in memory and writes each instance through as one JSON document
 * (`doc`): reads never touch the store, and a change is one upsert. `registry_state` holds the
 * registry's index, so it keeps growing across restarts (a blocking client must never see it go back).
 */
export function registry(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('registry_instances')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('service', 'text', (col) => col.notNull())
        .addColumn('doc', 'text', (col) => col.notNull())
        .addColumn('modify_index', 'bigint', (col) => col.notNull())
        .execute();
      await db.schema.createIndex('registry_instances_service_idx').on('registry_instances').column('service').execute();

      await db.schema
        .createTable('registry_state')
        .addColumn('name', 'text', (col) => col.primaryKey())
        .addColumn('value', 'bigint', (col) => col.notNull())
        .execute();

      // JSON array of service names; null: any service (roles other than `agent` ignore it).
      await db.schema.alterTable('tokens').addColumn('services', 'text').execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('tokens').dropColumn('services').execute();
      await db.schema.dropTable('registry_state').execute();
      await db.schema.dropTable('registry_instances').execute();
    },
  };
}
