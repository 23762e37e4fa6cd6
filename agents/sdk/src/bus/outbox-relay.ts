import { PostgresAdapter } from 'kysely';
import { Backoff } from '../backoff.js';
import { type Logger } from '../logger.js';
import { type BusDatabase, busTables, storedTime } from './bus-tables.js';
import { addDeliveries, type Delivery, type QueueFor } from './deliveries.js';
import { serviceQueue } from './queues.js';
import { type TopologySource } from './topology.js';
import { withTimeout } from './with-timeout.js';

export interface OutboxRelayOptions {
  db: BusDatabase;
  /** The BullMQ queue of each name, over the producer's connection. */
  queueFor: QueueFor;
  topology: TopologySource;
  logger: Logger;
  /** Rows read at a time (default 500); they go to Redis in transactions of up to 100 messages. */
  batchSize?: number;
  /** How often the outbox is read when nothing wakes the relay (rows written by another process), default 1 s. */
  pollMs?: number;
  /** A send taking longer counts as failed and is tried again (default 5 s); a late success is deduplicated. */
  sendTimeoutMs?: number;
  /** Called with the type of each message handed to Redis, and the number of queues it went to. */
  onSent?: (type: string, queues: number) => void;
  /** Delays between attempts while Redis cannot be reached (default 100 ms doubling to 5 s, jittered); `retryNow` ends one early. */
  retry?: { initialMs: number; maxMs: number };
}

/**
 * Inbox rows are kept this long: a message delivered again later than this would be applied again.
 * BullMQ redelivers within minutes (stalls, retries); a week covers a dead letter replayed late.
 */
const KEEP_PROCESSED_MS = 7 * 24 * 3_600_000;
const PRUNE_EVERY_MS = 60_000;

/**
 * Moves the outbox to Redis: reads rows in id (creation) order, adds each message to its queues — an
 * event to every subscriber's queue, a command to its service's — each message in one Redis transaction
 * (`addDeliveries`), then deletes the rows. While Redis is away it retries with capped, jittered backoff, and
 * publishing goes on locally; when Redis returns it catches up. A batch whose outcome was hidden (a
 * timeout, a crash before the rows were deleted) is sent again: each job id is the message id, so
 * BullMQ keeps one copy, and consumers' inboxes skip a message they have already applied.
 */
export class OutboxRelay {
  readonly #options: Required<Omit<OutboxRelayOptions, 'onSent'>> & Pick<OutboxRelayOptions, 'onSent'>;
  readonly #backoff: Backoff;
  #running: Promise<void> | undefined;
  #closed = false;
  /** The sleep in progress: a poll (ended by `wake`) or a backoff (ended by `retryNow`); `close` ends either. */
  #sleeping: { done: () => void; backoff: boolean } | undefined;
  #woken = false;
  #prunedAt = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(options: OutboxRelayOptions) {
    this.#options = { batchSize: 500, pollMs: 1_000, sendTimeoutMs: 5_000, retry: { initialMs: 100, maxMs: 5_000 }, ...options };
    this.#backoff = new Backoff(this.#options.retry);
  }

  start(): void {
    this.#running ??= this.#run();
  }

  /** Rows were written: read the outbox now rather than at the next poll. */
  wake(): void {
    this.#woken = true;
    if (this.#sleeping?.backoff === false) this.#sleeping.done();
  }

  /** Redis is back (its connection is ready again): end a backoff now rather than when it runs out. */
  retryNow(): void {
    if (this.#sleeping?.backoff === true) this.#sleeping.done();
  }

  /** Resolves once the outbox has been found empty after this call (for tests and shutdown). */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      this.wake();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#sleeping?.done();
    await this.#running;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      let sent: number;
      try {
        sent = await this.#sendBatch();
        this.#backoff.reset();
      } catch (error) {
        const delay = this.#backoff.next();
        if (this.#backoff.attempts === 1 || this.#backoff.attempts % 20 === 0) {
          this.#options.logger.warn({ err: error, retryInMs: Math.round(delay) }, 'the outbox relay cannot reach Redis; messages stay in the outbox until it can');
        }
        // Not cut short by new rows (each publish wakes the relay): by Redis coming back, or `close`.
        await this.#sleep(delay, true);
        continue;
      }
      // A full batch, or anyone waiting for the outbox to be found empty: read again at once.
      if (sent === this.#options.batchSize || (sent > 0 && this.#idleWaiters.length > 0)) continue;
      if (sent === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
      await this.#prune();
      if (!this.#woken) await this.#sleep(this.#options.pollMs);
    }
  }

  /**
   * One batch: read, send, delete. Returns the rows sent. On PostgreSQL the rows are locked while they
   * are sent (`FOR UPDATE SKIP LOCKED`, in one transaction with their deletion), so the relays of
   * several replicas of a service share the outbox instead of each sending every row. On SQLite (one
   * writer at a time) a transaction held across the send would stall the service's own writes, so the
   * rows are read and deleted apart; two relays over one SQLite file would send some rows twice (BullMQ
   * and the inboxes keep that harmless).
   */
  async #sendBatch(): Promise<number> {
    this.#woken = false;
    const { db } = this.#options;
    if (db.getExecutor().adapter instanceof PostgresAdapter) {
      // The topology first (it may wait for the control plane): never with rows locked and a transaction open.
      await this.#options.topology.ready();
      return db.transaction().execute((trx) => this.#sendRows(trx, true));
    }
    return this.#sendRows(db, false);
  }

  async #sendRows(db: BusDatabase, lock: boolean): Promise<number> {
    const { topology, batchSize, queueFor } = this.#options;
    const outbox = busTables(db);
    let select = outbox.selectFrom('portico_outbox').select(['id', 'kind', 'type', 'target', 'envelope']).orderBy('id').limit(batchSize);
    if (lock) select = select.forUpdate().skipLocked();
    const rows = await select.execute();
    if (rows.length === 0) return 0;
    await topology.ready();
    const deliveries: Delivery[] = [];
    const counts: [string, number][] = [];
    for (const row of rows) {
      const services = row.kind === 'command' ? [row.target as string] : topology.subscribers(row.type);
      // The envelope goes as the outbox keeps it, JSON: it is not read back.
      for (const service of services) deliveries.push({ queue: serviceQueue(service), id: row.id, type: row.type, data: row.envelope });
      counts.push([row.type, services.length]);
    }
    await withTimeout(addDeliveries(queueFor, deliveries), this.#options.sendTimeoutMs, 'adding the outbox batch to Redis');
    await outbox
      .deleteFrom('portico_outbox')
      .where(
        'id',
        'in',
        rows.map((row) => row.id),
      )
      .execute();
    for (const [type, queues] of counts) this.#options.onSent?.(type, queues);
    return rows.length;
  }

  async #prune(): Promise<void> {
    const now = Date.now();
    if (now - this.#prunedAt < PRUNE_EVERY_MS) return;
    this.#prunedAt = now;
    try {
      await busTables(this.#options.db)
        .deleteFrom('portico_inbox')
        .where('processed_at', '<', storedTime(new Date(now - KEEP_PROCESSED_MS)))
        .execute();
    } catch (error) {
      this.#options.logger.warn({ err: error }, 'pruning the inbox failed');
    }
  }

  /** Wait `ms`, or less: until `close`, and until `wake` (a poll) or `retryNow` (a `backoff`). */
  #sleep(ms: number, backoff = false): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#sleeping = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#sleeping = { done, backoff };
    });
  }

}
