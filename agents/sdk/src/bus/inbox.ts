import { type Kysely, type Transaction } from 'kysely';
import { type BusDatabase, busTables, storedTime } from './bus-tables.js';
import { type Envelope } from './envelope.js';

/** Runs one message's handler inside the inbox's transaction; the caller's `handler` with its context. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the service's own schema
export type InboxWork = (trx: Transaction<any>) => Promise<unknown>;

interface Pending {
  envelope: Envelope;
  work: InboxWork;
  resolve: (applied: boolean) => void;
  reject: (error: unknown) => void;
}

/** Messages applied in one transaction at most. */
const GROUP_LIMIT = 100;

/**
 * Applies messages at most once, with the service's own database: each message's handler runs in a
 * transaction that also records its id in `portico_inbox`, and a message whose id is there already is
 * skipped. Deliveries that arrive together (a worker handles up to its concurrency at once) are
 * applied in one transaction, each behind a savepoint: a handler that throws rolls back only its own
 * message, and one commit covers the group. Nothing is reported applied before the commit, so a
 * message is acknowledged to BullMQ only once its effect is durable. Handlers of one group run one
 * after another.
 */
export class Inbox {
  readonly #db: BusDatabase;
  #queue: Pending[] = [];
  #flushing = false;

  constructor(db: BusDatabase) {
    this.#db = db;
  }

  /** Apply `envelope` with `work`; resolves true once committed, false when it had been applied before; rejects with the handler's error. */
  apply(envelope: Envelope, work: InboxWork): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ envelope, work, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        // Let the deliveries of this turn of the event loop join the group.
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const group = this.#queue.splice(0, GROUP_LIMIT);
      await this.#applyGroup(group);
    }
    this.#flushing = false;
  }

  async #applyGroup(group: Pending[]): Promise<void> {
    const outcomes: ({ applied: boolean } | { error: unknown })[] = [];
    try {
      const trx = await (this.#db as Kysely<unknown>).startTransaction().execute();
      try {
        for (const [i, pending] of group.entries()) {
          const savepoint = `m${i}`;
          const inner = await trx.savepoint(savepoint).execute();
          try {
            const inserted = await busTables(inner)
              .insertInto('portico_inbox')
              .values({ message_id: pending.envelope.id, type: pending.envelope.type, processed_at: storedTime() })
              .onConflict((conflict) => conflict.column('message_id').doNothing())
              .executeTakeFirst();
            const applied = Number(inserted.numInsertedOrUpdatedRows ?? 0) > 0;
            if (applied) await pending.work(inner);
            await inner.releaseSavepoint(savepoint).execute();
            outcomes.push({ applied });
          } catch (error) {
            await inner.rollbackToSavepoint(savepoint).execute();
            await inner.releaseSavepoint(savepoint).execute();
            outcomes.push({ error });
          }
        }
        await trx.commit().execute();
      } catch (error) {
        await trx.rollback().execute().catch(() => undefined);
        throw error;
      }
    } catch (error) {
      // The transaction itself failed (the database, not a handler): none of the group was applied.
      for (const pending of group) pending.reject(error);
      return;
    }
    group.forEach((pending, i) => {
      const outcome = outcomes[i] as { applied: boolean } | { error: unknown };
      if ('error' in outcome) pending.reject(outcome.error);
      else pending.resolve(outcome.applied);
    });
  }
}
