import { type Instance } from '../../registry/registry.js';
import { type RegistryRepository, type RegistryWrite, type StoredRegistry } from '../store.js';
import { type RepositoryContext, guarded } from './repository-context.js';
import { toNumber } from './row-mapping.js';

const INDEX = 'index';

/** Rows per multi-row statement: 4 parameters each stays far below SQLite's and PostgreSQL's parameter limits. */
const ROWS_PER_STATEMENT = 500;

/** Dates inside an instance document are ISO strings; these are the fields that hold them. */
const DATE_FIELDS = new Set(['registeredAt', 'since', 'statusSince', 'lastResultAt', 'ttlExpiresAt']);

function reviveDates(key: string, value: unknown): unknown {
  return DATE_FIELDS.has(key) && typeof value === 'string' ? new Date(value) : value;
}

/** `RegistryRepository` over kysely: one JSON document per instance, and the index in `registry_state`. A group of changes is a few multi-row statements. */
export class KyselyRegistryRepository implements RegistryRepository {
  readonly #context: RepositoryContext;

  constructor(context: RepositoryContext) {
    this.#context = context;
  }

  async load(): Promise<StoredRegistry> {
    return guarded(this.#context, async (db) => {
      const rows = await db.selectFrom('registry_instances').select('doc').orderBy('id').execute();
      const state = await db.selectFrom('registry_state').select('value').where('name', '=', INDEX).executeTakeFirst();
      return {
        index: state === undefined ? 0 : toNumber(state.value),
        instances: rows.map((row) => JSON.parse(row.doc, reviveDates) as Instance),
      };
    });
  }

  async write(changes: RegistryWrite): Promise<void> {
    await guarded(this.#context, async (db) => {
      for (let at = 0; at < changes.save.length; at += ROWS_PER_STATEMENT) {
        const rows = changes.save.slice(at, at + ROWS_PER_STATEMENT).map((instance) => ({
          id: instance.id,
          service: instance.service,
          doc: JSON.stringify(instance),
          modify_index: instance.modifyIndex,
        }));
        await db
          .insertInto('registry_instances')
          .values(rows)
          .onConflict((conflict) =>
            conflict.column('id').doUpdateSet((eb) => ({
              service: eb.ref('excluded.service'),
              doc: eb.ref('excluded.doc'),
              modify_index: eb.ref('excluded.modify_index'),
            })),
          )
          .execute();
      }
      for (let at = 0; at < changes.remove.length; at += ROWS_PER_STATEMENT) {
        await db.deleteFrom('registry_instances').where('id', 'in', changes.remove.slice(at, at + ROWS_PER_STATEMENT)).execute();
      }
      await this.#setIndex(changes.index);
    });
  }

  async #setIndex(index: number): Promise<void> {
    await this.#context
      .db()
      .insertInto('registry_state')
      .values({ name: INDEX, value: index })
      .onConflict((conflict) => conflict.column('name').doUpdateSet({ value: index }))
      .execute();
  }
}
