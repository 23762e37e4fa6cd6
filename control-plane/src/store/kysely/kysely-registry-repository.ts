import { type Instance } from '../../registry/registry.js';
import { type RegistryRepository, type StoredRegistry } from '../store.js';
import { type RepositoryContext, guarded } from './repository-context.js';
import { toNumber } from './row-mapping.js';

const INDEX = 'index';

/** Dates inside an instance document are ISO strings; these are the fields that hold them. */
const DATE_FIELDS = new Set(['registeredAt', 'since', 'statusSince', 'lastResultAt', 'ttlExpiresAt']);

function reviveDates(key: string, value: unknown): unknown {
  return DATE_FIELDS.has(key) && typeof value === 'string' ? new Date(value) : value;
}

/** `RegistryRepository` over kysely: one JSON document per instance, and the index in `registry_state`. */
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

  async save(instance: Instance, index: number): Promise<void> {
    await guarded(this.#context, async (db) => {
      const doc = JSON.stringify(instance);
      await db
        .insertInto('registry_instances')
        .values({ id: instance.id, service: instance.service, doc, modify_index: instance.modifyIndex })
        .onConflict((conflict) => conflict.column('id').doUpdateSet({ service: instance.service, doc, modify_index: instance.modifyIndex }))
        .execute();
      await this.#setIndex(index);
    });
  }

  async remove(instanceId: string, index: number): Promise<void> {
    await guarded(this.#context, async (db) => {
      await db.deleteFrom('registry_instances').where('id', '=', instanceId).execute();
      await this.#setIndex(index);
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
