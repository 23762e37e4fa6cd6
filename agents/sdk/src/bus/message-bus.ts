import { type Context, context } from '@opentelemetry/api';
import { type Job, MetricsTime, Queue, Worker } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { type Registry } from 'prom-client';
import { CompiledQuery, type Kysely, type Transaction } from 'kysely';
import { AgentError } from '../agent-error.js';
import { Backoff } from '../backoff.js';
import { type Logger, silentLogger } from '../logger.js';
import { BusMetrics, type ProcessOutcome } from './bus-metrics.js';
import { type BusDatabase, busTables, ensureBusTables, storedTime } from './bus-tables.js';
import { type DeadLetter, type DeadLetterReason, type DeliveryAttempt } from './dead-letter.js';
import { addDeliveries, deliveriesOf } from './deliveries.js';
import { createEnvelope, type Envelope, MESSAGE_TYPE_PATTERN, type MessageKind, type ParsedEnvelope, parseEnvelope, SERVICE_NAME_PATTERN } from './envelope.js';
import { holdWritesForTick } from './hold-writes.js';
import { Inbox } from './inbox.js';
import { OutboxRelay } from './outbox-relay.js';
import { BACKOFF_TYPE, deadLetterQueue, serviceQueue } from './queues.js';
import { type TopologySource } from './topology.js';
import { endSpan, startProcessSpan, startSendSpan, type TraceFields, traceFieldsOf } from './tracing.js';
import { withTimeout } from './with-timeout.js';

/** How a message type is retried before it is dead-lettered. */
export interface RetryPolicy {
  /** Attempts in all, the first included (default 5). */
  attempts: number;
  /** The delay before the first retry, doubled for each one after (default 1 s), jittered. */
  delayMs: number;
  /** The longest delay (default 60 s). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, delayMs: 1_000, maxDelayMs: 60_000 };

/** What a handler gets besides the message. */
export interface MessageContext {
  /** With a database: the transaction the inbox row is written in. Write the message's effect in it. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the service's own schema
  trx: Transaction<any> | undefined;
  /** 1 for the first delivery attempt. */
  attempt: number;
  /** The queue it came from. */
  queue: string;
}

export type MessageHandler<P = unknown> = (message: Envelope<P>, context: MessageContext) => unknown;

export interface MessageBusOptions {
  /** This service's name: it consumes `<service>_service_queue` and is the `source` of what it sends. */
  service: string;
  /** Redis: a URL (`redis://127.0.0.1:6379`) or ioredis options. */
  redis: string | RedisOptions;
  /** Who consumes which event type. */
  topology: TopologySource;
  /**
   * The service's own database (kysely over SQLite or PostgreSQL). With it, `publish`/`send` write to a
   * transactional outbox (in the caller's transaction when given one) that a relay moves to Redis, so
   * publishing never fails for want of Redis; and each handler runs in a transaction with the inbox,
   * so a redelivered message is never applied twice. Without it, `publish`/`send` go to Redis at once
   * (and fail at once when Redis is away), and delivery is at-least-once.
   */
  database?: BusDatabase;
  /** Messages handled at once (default 10). */
  concurrency?: number;
  /** Retries of every message type without its own policy. */
  retry?: Partial<RetryPolicy>;
  /** A worker that stops renewing its lock (it died) loses its jobs after this long; they are delivered again (default 30 s). */
  lockDurationMs?: number;
  /** How often stalled jobs are looked for (default 30 s). */
  stalledIntervalMs?: number;
  /** The outbox relay: rows it reads at a time (500), how often it reads the outbox unprompted (1 s), its delays while Redis is away (100 ms doubling to 5 s). */
  relay?: { batchSize?: number; pollMs?: number; retry?: { initialMs: number; maxMs: number } };
  /** A prom-client registry (the service's `/metrics`) to count published and processed messages in. */
  metrics?: Registry;
  logger?: Logger;
}

export interface SendOptions {
  /** Write the outbox row in this transaction (the caller's own), so the message exists if and only if the transaction commits. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the service's own schema
  trx?: Transaction<any> | Kysely<any>;
  schemaVersion?: number;
  /** W3C trace context to carry (the sending span's). */
  traceparent?: string;
  tracestate?: string;
}

/** How long a send straight to Redis may take before it fails (no outbox: fail fast rather than queue). */
const DIRECT_SEND_TIMEOUT_MS = 2_000;
/** The longest `close` waits for Redis. */
const CLOSE_TIMEOUT_MS = 5_000;
/** BullMQ gives up on a job after this many stalls; a worker killed mid-job is one stall. */
const MAX_STALLED = 10;

/**
 * The service side of Portico's messaging, on BullMQ. A service consumes one queue,
 * `<service>_service_queue`, and handles the message types it registers with `on` (declared to the
 * topology at `start`). `publish` sends an event to every subscriber's queue in one atomic step
 * (choreography); `send` sends a command to one service's queue (orchestration). A handler that
 * throws is retried with jittered exponential backoff; after the type's last attempt the message goes
 * to `<queue>.dlq` with its error and attempts, as does a message that is not a valid envelope or that
 * this service has no handler for. The worker keeps going either way.
 */
export class MessageBus {
  readonly #options: MessageBusOptions;
  readonly #service: string;
  readonly #queueName: string;
  readonly #logger: Logger;
  readonly #handlers = new Map<string, { handler: MessageHandler; retry: RetryPolicy }>();
  readonly #retry: RetryPolicy;
  readonly #producer: Redis;
  /** The queues this service adds messages to (its own, its dead letters', other services'), by name, over the producer connection. */
  readonly #queues = new Map<string, Queue>();
  readonly #deadLetters: Queue;
  readonly #queue: Queue;
  readonly #metrics: BusMetrics | undefined;
  readonly #inbox: Inbox | undefined;
  #worker: Worker | undefined;
  #workerConnection: Redis | undefined;
  #relay: OutboxRelay | undefined;
  #declaring: Promise<void> | undefined;
  /** The outbox's INSERT, built once: kysely's query building costs as much as SQLite's insert itself. */
  #outboxInsert: string | undefined;
  #started = false;
  #closed = false;

  /** @throws AgentError `PORTICO_ERR_BUS_INVALID_MESSAGE` when `service` is not a valid service name. */
  constructor(options: MessageBusOptions) {
    if (!SERVICE_NAME_PATTERN.test(options.service)) throw invalid(`"${options.service}" is not a valid service name: letters, digits, "_", "." and "-", up to 63.`);
    this.#options = options;
    this.#service = options.service;
    this.#queueName = serviceQueue(options.service);
    this.#logger = options.logger ?? silentLogger;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#metrics = options.metrics === undefined ? undefined : new BusMetrics(options.metrics);
    // A group's acknowledgements (BullMQ completing each job) go to Redis in one write, not one each.
    this.#inbox = options.database === undefined ? undefined : new Inbox(options.database, { settling: () => holdWritesForTick(this.#workerConnection) });
    // Producers fail fast while Redis is away (BullMQ's guidance): no offline queue, one retry.
    this.#producer = connect(options.redis, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
    this.#producer.on('error', () => undefined);
    // Back from an outage: the relay sends what waited in the outbox now, not when its backoff runs out.
    this.#producer.on('ready', () => this.#relay?.retryNow());
    this.#deadLetters = this.#queueFor(deadLetterQueue(this.#queueName));
    this.#queue = this.#queueFor(this.#queueName);
  }

  get service(): string {
    return this.#service;
  }

  /** The queue this service consumes. */
  get queue(): string {
    return this.#queueName;
  }

  /**
   * Handle messages of `type` (an event this service subscribes to, or a command it accepts). Before `start`.
   * @throws AgentError `PORTICO_ERR_BUS_INVALID_MESSAGE` for a type a message cannot have, or a retry policy without at least one attempt.
   */
  on<P = unknown>(type: string, handler: MessageHandler<P>, retry?: Partial<RetryPolicy>): this {
    if (this.#started) throw new AgentError(`"${type}": handlers are registered before the bus starts`, { kind: 'invalid_options', code: 'PORTICO_ERR_AGENT_INVALID_OPTIONS' });
    if (!MESSAGE_TYPE_PATTERN.test(type)) throw invalid(`"${type}" is not a valid message type: letters, digits, ".", "_" and "-", up to 128.`);
    const policy = { ...this.#retry, ...retry };
    if (!(Number.isInteger(policy.attempts) && policy.attempts >= 1 && policy.delayMs >= 0 && policy.maxDelayMs >= policy.delayMs)) {
      throw invalid(`"${type}": a retry policy needs attempts ≥ 1 and 0 ≤ delayMs ≤ maxDelayMs (got ${JSON.stringify(policy)}).`);
    }
    this.#handlers.set(type, { handler: handler as MessageHandler, retry: policy });
    return this;
  }

  /** Create the outbox and inbox tables (with a database), declare the handled types, start consuming and relaying. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const { database } = this.#options;
    if (database !== undefined) {
      await ensureBusTables(database);
      this.#relay = new OutboxRelay({
        db: database,
        queueFor: this.#queueFor,
        topology: this.#options.topology,
        logger: this.#logger,
        ...this.#options.relay,
        onSent: (type) => this.#metrics?.published.inc({ type }),
      });
      this.#relay.start();
    }
    this.#declaring = this.#declare();
    if (this.#handlers.size > 0) this.#startWorker();
  }

  /**
   * Publish an event: every service subscribed to `type` gets it (this one too, if it subscribes).
   * With a database it is written to the outbox (in `options.trx` when given) and sent by the relay;
   * without one it is added to every subscriber's queue now, atomically, or the call fails
   * (`PORTICO_ERR_BUS_UNAVAILABLE`).
   */
  async publish<P>(type: string, payload: P, options: SendOptions = {}): Promise<Envelope<P>> {
    return this.#emit('event', type, payload, undefined, options);
  }

  /** Send a command to one service's queue; with a database, through the outbox as `publish` does. */
  async send<P>(service: string, type: string, payload: P, options: SendOptions = {}): Promise<Envelope<P>> {
    return this.#emit('command', type, payload, service, options);
  }

  /** Resolves once everything in the outbox has been handed to Redis (with a database; else at once). */
  async flushed(): Promise<void> {
    await this.#relay?.idle();
  }

  /**
   * Stop taking messages (those being handled finish), stop the relay, close the connections. While
   * Redis is away this does not wait for it for more than `CLOSE_TIMEOUT_MS`: what was in flight is
   * delivered again later (its lock lapses), and the outbox keeps what was not sent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closing = (async () => {
      await this.#worker?.close();
      await this.#relay?.close();
      await this.#declaring;
      await Promise.allSettled([...this.#queues.values()].map((queue) => queue.close()));
    })();
    try {
      await withTimeout(closing, CLOSE_TIMEOUT_MS, 'closing the message bus');
    } catch (error) {
      this.#logger.warn({ err: error }, 'the message bus closed without Redis: messages in flight will be delivered again');
    }
    this.#producer.disconnect();
    this.#workerConnection?.disconnect();
  }


  /**
   * A PRODUCER span around the send, whose trace context the envelope carries; unless the caller gave
   * the trace context to carry, in which case it goes as given.
   */
  async #emit<P>(kind: MessageKind, type: string, payload: P, target: string | undefined, options: SendOptions): Promise<Envelope<P>> {
    if (options.traceparent !== undefined) return this.#send(kind, type, payload, target, options, options);
    const span = startSendSpan(kind, type, target, this.#options.database !== undefined);
    try {
      const envelope = await this.#send(kind, type, payload, target, options, traceFieldsOf(span));
      span.setAttribute('messaging.message.id', envelope.id);
      endSpan(span);
      return envelope;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  }

  async #send<P>(kind: MessageKind, type: string, payload: P, target: string | undefined, options: SendOptions, trace: TraceFields): Promise<Envelope<P>> {
    let envelope: Envelope<P>;
    let serialized: string;
    try {
      envelope = createEnvelope({ kind, type, source: this.#service, payload, schemaVersion: options.schemaVersion, traceparent: trace.traceparent, tracestate: trace.tracestate });
      if (target !== undefined) createEnvelope({ kind, type, source: target, payload: null });
    } catch (error) {
      throw new AgentError((error as Error).message, { kind: 'invalid_options', code: 'PORTICO_ERR_BUS_INVALID_MESSAGE', cause: error });
    }
    try {
      serialized = JSON.stringify(envelope);
    } catch (error) {
      throw new AgentError(`"${type}": the payload cannot be written as JSON (${(error as Error).message})`, { kind: 'invalid_options', code: 'PORTICO_ERR_BUS_INVALID_MESSAGE', cause: error });
    }
    const { database } = this.#options;
    if (database !== undefined) {
      const row = { id: envelope.id, kind, type, target: target ?? null, envelope: serialized, created_at: envelope.time };
      // Compiled against the bus's database; the caller's transaction is one of that same database.
      this.#outboxInsert ??= busTables(database).insertInto('portico_outbox').values(row).compile().sql;
      await (options.trx ?? database).executeQuery(CompiledQuery.raw(this.#outboxInsert, Object.values(row)));
      this.#relay?.wake();
      return envelope;
    }
    const services = target !== undefined ? [target] : this.#options.topology.subscribers(type);
    try {
      await withTimeout(
        addDeliveries(this.#queueFor, deliveriesOf(envelope, services.map(serviceQueue), serialized)),
        DIRECT_SEND_TIMEOUT_MS,
        'adding the message to Redis',
      );
    } catch (error) {
      throw new AgentError(`"${type}" could not be sent: Redis cannot be reached (${(error as Error).message})`, { kind: 'unavailable', code: 'PORTICO_ERR_BUS_UNAVAILABLE', cause: error });
    }
    this.#metrics?.published.inc({ type });
    return envelope;
  }

  /** The queue `name` over the producer connection (one object per name, kept until `close`). */
  readonly #queueFor = (name: string): Queue => {
    let queue = this.#queues.get(name);
    if (queue === undefined) {
      queue = new Queue(name, { connection: this.#producer });
      queue.on('error', () => undefined);
      this.#queues.set(name, queue);
    }
    return queue;
  };

  /** Declare the handled types, retrying in the background while the topology cannot be reached. */
  async #declare(): Promise<void> {
    const backoff = new Backoff({ initialMs: 250, maxMs: 10_000 });
    for (;;) {
      try {
        await this.#options.topology.declare(this.#service, [...this.#handlers.keys()].sort());
        return;
      } catch (error) {
        if (error instanceof AgentError && error.fatal) {
          this.#logger.error({ err: error }, 'the topology refused the message types this service consumes');
          return;
        }
        this.#logger.warn({ err: error }, 'declaring the message types this service consumes failed; retrying');
      }
      if (this.#closed) return;
      await new Promise((resolve) => setTimeout(resolve, backoff.next()));
      if (this.#closed) return;
    }
  }

  #startWorker(): void {
    // Workers block on Redis: BullMQ requires `maxRetriesPerRequest: null` for them.
    const connection = (this.#workerConnection = connect(this.#options.redis, { maxRetriesPerRequest: null }));
    connection.on('error', () => undefined);
    this.#worker = new Worker(this.#queueName, (job) => this.#process(job), {
      connection,
      concurrency: this.#options.concurrency ?? 10,
      lockDuration: this.#options.lockDurationMs ?? 30_000,
      stalledInterval: this.#options.stalledIntervalMs ?? 30_000,
      maxStalledCount: MAX_STALLED,
      // BullMQ's per-minute completed/failed counts, which the control plane's queue view reads as rates.
      metrics: { maxDataPoints: MetricsTime.ONE_WEEK },
      settings: {
        backoffStrategy: (attemptsMade, type, _error, job) => {
          if (type !== BACKOFF_TYPE) return 0;
          const retry = this.#handlers.get(job?.name ?? '')?.retry ?? this.#retry;
          const ceiling = Math.min(retry.maxDelayMs, retry.delayMs * 2 ** Math.max(0, attemptsMade - 1));
          return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
        },
      },
    });
    this.#worker.on('error', (error) => this.#logger.warn({ err: error }, 'the message worker lost Redis; it reconnects'));
  }

  async #process(job: Job): Promise<void> {
    const started = performance.now();
    const { outcome, failure } = await this.#handle(job);
    if (this.#metrics !== undefined) {
      this.#metrics.processed.inc({ queue: this.#queueName, outcome });
      this.#metrics.processing.observe({ queue: this.#queueName }, (performance.now() - started) / 1_000);
    }
    // Thrown for BullMQ to deliver it again after the backoff.
    if (failure !== undefined) throw failure;
  }

  /**
   * Handle one delivery and say how it ended, with the failure when it is to be retried; in a CONSUMER
   * span (a child of the sender's), active while the handler runs.
   */
  async #handle(job: Job): Promise<{ outcome: ProcessOutcome; failure?: Error }> {
    const attempt = job.attemptsMade + 1;
    const parsed = parseEnvelope(job.data);
    const { span, context: active } = startProcessSpan(parsed.ok ? parsed.envelope : undefined, this.#queueName, attempt);
    try {
      const { outcome, failure, deadLetter } = await this.#handleParsed(job, parsed, attempt, active);
      span.setAttribute('portico.message.outcome', outcome);
      endSpan(span, failure ?? deadLetter);
      return failure === undefined ? { outcome } : { outcome, failure };
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  }

  async #handleParsed(job: Job, parsed: ParsedEnvelope, attempt: number, active: Context): Promise<{ outcome: ProcessOutcome; failure?: Error; deadLetter?: Error }> {
    if (!parsed.ok) {
      const error = new Error(`not a Portico message: ${parsed.problem}`);
      await this.#deadLetter(job, 'malformed', error, attempt);
      return { outcome: 'dead_lettered', deadLetter: error };
    }
    const { envelope } = parsed;
    const registered = this.#handlers.get(envelope.type);
    if (registered === undefined) {
      const error = new Error(`"${this.#service}" has no handler for "${envelope.type}"`);
      await this.#deadLetter(job, 'unhandled', error, attempt);
      return { outcome: 'dead_lettered', deadLetter: error };
    }
    try {
      return { outcome: (await this.#apply(envelope, registered.handler, attempt, active)) ? 'processed' : 'duplicate' };
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      if (attempt >= registered.retry.attempts) {
        await this.#deadLetter(job, 'failed', failure, attempt);
        return { outcome: 'dead_lettered', deadLetter: failure };
      }
      // Kept with the job, so the dead letter can list every attempt.
      await job.log(JSON.stringify({ attempt, error: failure.message, at: storedTime() } satisfies DeliveryAttempt));
      return { outcome: 'retried', failure };
    }
  }


  /**
   * Run the handler; with a database, through the inbox (in a transaction with the inbox row, and not
   * at all for a message already applied). Returns false for such a duplicate.
   */
  async #apply(envelope: Envelope, handler: MessageHandler, attempt: number, active: Context): Promise<boolean> {
    if (this.#inbox === undefined) {
      await context.with(active, () => handler(envelope, { trx: undefined, attempt, queue: this.#queueName }));
      return true;
    }
    // The inbox runs handlers in its own turn of the event loop: the delivery's context goes along.
    return this.#inbox.apply(envelope, async (trx) => context.with(active, () => handler(envelope, { trx, attempt, queue: this.#queueName })));
  }

  /** Move a message to the dead-letter queue, keeping its job id (so doing it twice keeps one). */
  async #deadLetter(job: Job, reason: DeadLetterReason, error: Error, attempts: number): Promise<void> {
    const jobId = job.id ?? 'unknown';
    let history: DeliveryAttempt[] = [];
    try {
      const { logs } = await this.#queue.getJobLogs(jobId);
      history = logs.flatMap((line) => {
        try {
          return [JSON.parse(line) as DeliveryAttempt];
        } catch {
          return [];
        }
      });
    } catch {
      // The history is a courtesy; the dead letter is not.
    }
    history.push({ attempt: attempts, error: error.message, at: storedTime() });
    const parsed = parseEnvelope(job.data);
    const letter: DeadLetter = {
      reason,
      queue: this.#queueName,
      jobId,
      ...(parsed.ok ? { envelope: parsed.envelope } : { raw: job.data as unknown }),
      error: { message: error.message, ...(error.stack === undefined ? {} : { stack: error.stack }) },
      attempts,
      history,
      deadAt: storedTime(),
    };
    await this.#deadLetters.add(parsed.ok ? parsed.envelope.type : 'malformed', letter, { jobId, removeOnComplete: false, removeOnFail: false });
    this.#logger.warn({ queue: this.#queueName, jobId, reason, attempts, err: error }, 'a message was moved to the dead-letter queue');
  }
}

function invalid(message: string): AgentError {
  return new AgentError(message, { kind: 'invalid_options', code: 'PORTICO_ERR_BUS_INVALID_MESSAGE' });
}

function connect(redis: string | RedisOptions, overrides: RedisOptions): Redis {
  return typeof redis === 'string' ? new Redis(redis, overrides) : new Redis({ ...redis, ...overrides });
}
