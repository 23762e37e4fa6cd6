import { type Kysely, type Migration } from 'kysely';

/**
 * `0004_message_topology`: which service consumes which message types. One row per (service, message
 * type); the primary key is also the index `ofService` reads by. `declared_at` is when the service's
 * current set was declared (every row of a service carries the same time).
 */
export function messageTopology(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('topology_subscriptions')
        .addColumn('service', 'text', (col) => col.notNull())
        .addColumn('message_type', 'text', (col) => col.notNull())
        .addColumn('declared_at', 'bigint', (col) => col.notNull())
        .addPrimaryKeyConstraint('topology_subscriptions_pkey', ['service', 'message_type'])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('topology_subscriptions').execute();
    },
  };
}
