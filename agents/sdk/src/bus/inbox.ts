import { CompiledQuery, type Transaction } from 'kysely';
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
 * applied in one transaction with one inbox statement and one commit; if a handler throws, the group
 * is rolled back and each of its messages applied alone, so a failure fails only its own message.
 * Nothing is reported applied before its commit, so a message is acknowledged to BullMQ only once its
 * effect is durable. Handlers of one group run one after another.
 */
export class Inbox {
  readonly #db: BusDatabase;
  #queue: Pending[] = [];
  #flushing = false;
  /** The inbox INSERT for each number of rows, built once: kysely's query building costs as much as SQLite's insert itself. */
  readonly #inserts = new Map<number, string>();

  readonly #settling: (() => void) | undefined;

  /** `settling`: called just before a group's messages are reported applied, in the same turn of the event loop as their acknowledgements. */
  constructor(db: BusDatabase, options: { settling?: () => void } = {}) {
    this.#db = db;
    this.#settling = options.settling;
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

  /**
   * One transaction for the group: the ids not seen before are recorded with one INSERT … RETURNING,
   * then their handlers run. If every handler succeeds, one commit applies them all. If one throws,
   * the group is rolled back and each message is applied again in a transaction of its own, so only
   * the failing one fails (its companions' handlers run twice; only the second run commits).
   */
  async #applyGroup(group: Pending[]): Promise<void> {
    if (group.length === 1) {
      await this.#applyAlone(group[0] as Pending);
      return;
    }
    let results: boolean[];
    try {
      results = await this.#db.transaction().execute(async (trx) => {
        const fresh = await this.#record(trx, group);
        const applied: boolean[] = [];
        for (const pending of group) {
          // An id twice in one group: the first runs it.
          const first = fresh.delete(pending.envelope.id);
          if (first) await pending.work(trx);
          applied.push(first);
        }
        return applied;
      });
    } catch {
      // A handler threw (or the database did): one transaction each, so only that message fails.
      for (const pending of group) await this.#applyAlone(pending);
      return;
    }
    this.#settling?.();
    group.forEach((pending, i) => pending.resolve(results[i] as boolean));
  }

  async #applyAlone(pending: Pending): Promise<void> {
    try {
      const applied = await this.#db.transaction().execute(async (trx) => {
        const fresh = await this.#record(trx, [pending]);
        if (fresh.size === 0) return false;
        await pending.work(trx);
        return true;
      });
      pending.resolve(applied);
    } catch (error) {
      pending.reject(error);
    }
  }

  /** Record the group's ids in the inbox; returns those that were not there (the messages to apply). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the service's own schema
  async #record(trx: Transaction<any>, group: readonly Pending[]): Promise<Set<string>> {
    const now = storedTime();
    const seen = new Set<string>();
    const rows = [];
    for (const { envelope } of group) {
      if (seen.has(envelope.id)) continue;
      seen.add(envelope.id);
      rows.push({ message_id: envelope.id, type: envelope.type, processed_at: now });
    }
    let insert = this.#inserts.get(rows.length);
    if (insert === undefined) {
      insert = busTables(this.#db).insertInto('portico_inbox').values(rows).onConflict((conflict) => conflict.column('message_id').doNothing()).returning('message_id').compile().sql;
      this.#inserts.set(rows.length, insert);
    }
    const parameters: string[] = [];
    for (const row of rows) parameters.push(row.message_id, row.type, row.processed_at);
    const { rows: inserted } = await trx.executeQuery<{ message_id: string }>(CompiledQuery.raw(insert, parameters));
    return new Set(inserted.map((row) => row.message_id));
  }
}
