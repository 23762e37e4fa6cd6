import { type Kysely, type Migration } from 'kysely';
import { type StoreDialect } from '../kysely/repository-context.js';

/**
 * `0001_tokens_and_audit`: API tokens and the audit log.
 *
 * Timestamps are int8 epoch milliseconds: SQLite has no timestamp type, and PostgreSQL's `timestamptz`
 * keeps microseconds, which a JS Date cannot. Integers round-trip exactly on both.
 *
 * Applied migrations never change; a later change to these tables is a new migration.
 */
export function tokensAndAudit(dialect: StoreDialect): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('tokens')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('role', 'text', (col) => col.notNull())
        .addColumn('hash', 'text', (col) => col.notNull())
        .addColumn('prefix', 'text', (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('created_by', 'text')
        // Named so that `mapStoreError` can recognise a taken name on PostgreSQL; the hash's unique
        // index is also the lookup index for `findByHash`.
        .addUniqueConstraint('tokens_name_unique', ['name'])
        .addUniqueConstraint('tokens_hash_unique', ['hash'])
        .execute();

      await db.schema
        .createTable('audit_log')
        .addColumn('id', dialect === 'sqlite' ? 'integer' : 'bigint', (col) =>
          // AUTOINCREMENT on SQLite so ids are never reused after the newest rows are deleted: audit
          // ids are paging cursors (`before`) and must only ever grow.
          dialect === 'sqlite' ? col.primaryKey().autoIncrement() : col.primaryKey().generatedAlwaysAsIdentity(),
        )
        .addColumn('at', 'bigint', (col) => col.notNull())
        .addColumn('actor_id', 'text')
        .addColumn('actor_name', 'text', (col) => col.notNull())
        .addColumn('action', 'text', (col) => col.notNull())
        .addColumn('target', 'text', (col) => col.notNull())
        .addColumn('details', 'text')
        .execute();

      // (action, id) serves `list({ action, before })` newest first without a sort.
      await db.schema.createIndex('audit_log_action_idx').on('audit_log').columns(['action', 'id']).execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('audit_log').execute();
      await db.schema.dropTable('tokens').execute();
    },
  };
}
