import { type Job, type Queue } from 'bullmq';
import { type Redis } from 'ioredis';
import { SERVICE_NAME_PATTERN } from '@portico/sdk/bus/envelope';
import { deadLetterQueue, QUEUE_PREFIX, queueService } from '@portico/sdk/bus/queues';
import { type Principal } from '../auth/token-service.js';
import { PorticoError } from '../errors.js';
import { type AuditRepository } from '../store/store.js';
import { type BusConnection } from './bus-connection.js';
import { type DeadLetters, type ReplayedDeadLetter } from './dead-letters.js';

/** The states a job listing can ask for; `dead` lists the queue's dead-letter queue (`<queue>.dlq`). */
export const JOB_LIST_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'dead'] as const;
export type JobListState = (typeof JOB_LIST_STATES)[number];

/** The states `portico_queue_jobs` reports. */
export type QueueJobCounts = Record<JobListState, number>;

/** One service queue as an operator sees it. */
export interface QueueSummary {
  name: string;
  service: string;
  counts: {
    /** Jobs waiting for a worker (prioritised ones included), whether or not the queue is paused. */
    waiting: number;
    active: number;
    delayed: number;
    failed: number;
    completed: number;
    /** Present only while the queue is paused: the waiting jobs the pause holds back. */
    paused?: number;
  };
  /** Dead letters waiting in `<queue>.dlq` for an operator. */
  deadLetters: number;
  rates: QueueRates;
  /** How long ago the oldest waiting job was added, or null when none waits. */
  oldestWaitingAgeMs: number | null;
  /** Workers connected to the queue (BullMQ names each worker's connection; read from CLIENT LIST). */
  consumers: number;
}

/**
 * Jobs finished per minute. With `source: 'metrics'` the figures are BullMQ's own queue metrics for the
 * last whole minute, which exist when the queue's workers record them (the `metrics` worker option);
 * otherwise (`source: 'finished-jobs'`) they count the jobs that finished in the last 60 seconds and are
 * still kept in the completed and failed sets, so jobs removed on completion are not counted.
 */
export interface QueueRates {
  completedPerMinute: number;
  failedPerMinute: number;
  source: 'metrics' | 'finished-jobs';
}

/** A job as the admin API shows it. */
export interface JobView {
  id: string;
  /** The message type (the job's name), or `malformed` for a dead letter that held no message. */
  name: string;
  state: JobListState;
  /** The envelope, or for `dead` the `DeadLetter`. */
  data: unknown;
  attemptsMade: number;
  failedReason: string | null;
  createdAt: string;
  processedAt: string | null;
  finishedAt: string | null;
}

export interface JobPage {
  queue: string;
  state: JobListState;
  /** Jobs in that state in all. */
  total: number;
  offset: number;
  limit: number;
  jobs: JobView[];
}

/** Where a job to act on is looked for: the queue itself or its dead-letter queue. */
export type JobLocation = 'queue' | 'dlq';

/** What a retry did: a failed job moved back to waiting, or a dead letter replayed as a new job. */
export interface RetryOutcome {
  queue: string;
  id: string;
  outcome: 'retried' | 'replayed';
  /** The id of the job now waiting: `id` for a retried job, the new job's for a replayed dead letter. */
  jobId: string;
}

export interface QueueAdminOptions {
  bus: BusConnection;
  audit: AuditRepository;
  deadLetters: DeadLetters;
}

const MINUTE_MS = 60_000;
const SCAN_COUNT = 1_000;

/** The BullMQ types listed for each state (ordered so the next job to matter comes first). */
const LISTING: Record<Exclude<JobListState, 'dead'>, { type: 'waiting' | 'active' | 'delayed' | 'failed' | 'completed'; oldestFirst: boolean }> = {
  waiting: { type: 'waiting', oldestFirst: true },
  active: { type: 'active', oldestFirst: true },
  delayed: { type: 'delayed', oldestFirst: true },
  failed: { type: 'failed', oldestFirst: false },
  completed: { type: 'completed', oldestFirst: false },
};

/**
 * The service queues (`<service>_service_queue`) as operators see them, over BullMQ: counts, rates and
 * consumers, jobs by state, and the actions (retry a failed job, remove a job). Dead letters are
 * `DeadLetters`' business; a retry or removal of an id in the dead-letter queue is handed to it.
 * Every action is written to the audit log after it succeeded.
 */
export class QueueAdmin {
  readonly #bus: BusConnection;
  readonly #audit: AuditRepository;
  readonly #deadLetters: DeadLetters;

  constructor(options: QueueAdminOptions) {
    this.#bus = options.bus;
    this.#audit = options.audit;
    this.#deadLetters = options.deadLetters;
  }

  /**
   * Every service queue with BullMQ keys in Redis (its own or its dead-letter queue's), by name.
   * @throws PorticoError `PORTICO_ERR_MESSAGING_UNAVAILABLE`.
   */
  list(): Promise<QueueSummary[]> {
    return this.#bus.run(async (redis) => {
      const names = await serviceQueues(redis);
      return Promise.all(names.map((name) => this.#summary(redis, name)));
    });
  }

  /**
   * Job counts of every service queue by state, `dead` included (for `portico_queue_jobs`).
   * @throws PorticoError `PORTICO_ERR_MESSAGING_UNAVAILABLE`.
   */
  jobCounts(): Promise<Array<{ queue: string; counts: QueueJobCounts }>> {
    return this.#bus.run(async (redis) => {
      const names = await serviceQueues(redis);
      return Promise.all(
        names.map(async (name) => {
          const [counts, dead] = await Promise.all([
            this.#bus.queue(name).getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'),
            this.#bus.queue(deadLetterQueue(name)).getWaitingCount(),
          ]);
          return {
            queue: name,
            counts: {
              waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
              active: counts.active ?? 0,
              delayed: counts.delayed ?? 0,
              failed: counts.failed ?? 0,
              completed: counts.completed ?? 0,
              dead,
            },
          };
        }),
      );
    });
  }

  /**
   * One page of a queue's jobs in `state`, the next to matter first: waiting, active and delayed
   * oldest (or soonest due) first; failed, completed and dead newest first.
   * @throws PorticoError `PORTICO_ERR_QUEUE_NOT_FOUND`, `PORTICO_ERR_MESSAGING_UNAVAILABLE`.
   */
  jobs(name: string, state: JobListState, page: { limit: number; offset: number }): Promise<JobPage> {
    return this.#bus.run(async (redis) => {
      await requireQueue(redis, name);
      const end = page.offset + page.limit - 1;
      let jobs: Job[];
      let total: number;
      if (state === 'dead') {
        const dlq = this.#bus.queue(deadLetterQueue(name));
        [jobs, total] = await Promise.all([dlq.getJobs(['waiting'], page.offset, end, false), dlq.getWaitingCount()]);
      } else {
        const { type, oldestFirst } = LISTING[state];
        const queue = this.#bus.queue(name);
        [jobs, total] = await Promise.all([queue.getJobs([type], page.offset, end, oldestFirst), queue.getJobCountByTypes(type)]);
      }
      return { queue: name, state, total, offset: page.offset, limit: page.limit, jobs: jobs.map((job) => jobView(job, state)) };
    });
  }

  /**
   * Retry a job: a failed job in the queue goes back to waiting (its attempts counted afresh); otherwise
   * a dead letter with that id is replayed (see `DeadLetters.replayOne`). `from` restricts the look-up
   * to one of the two. Audited as `queue.job.retry` or `queue.dead_letter.replay`.
   * @throws PorticoError `PORTICO_ERR_QUEUE_NOT_FOUND`, `PORTICO_ERR_QUEUE_JOB_NOT_FOUND`,
   *   `PORTICO_ERR_QUEUE_JOB_NOT_FAILED` (the job exists but is not failed),
   *   `PORTICO_ERR_QUEUE_DEAD_LETTER_MALFORMED`, `PORTICO_ERR_MESSAGING_UNAVAILABLE`.
   */
  async retry(actor: Principal, name: string, id: string, from?: JobLocation): Promise<RetryOutcome> {
    const outcome = await this.#bus.run(async (redis): Promise<RetryOutcome | { state: string } | undefined> => {
      await requireQueue(redis, name);
      let found: { state: string } | undefined;
      if (from !== 'dlq') {
        const job = await this.#bus.queue(name).getJob(id);
        if (job !== undefined) {
          const state = await job.getState();
          if (state === 'failed') {
            try {
              await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
            } catch (error) {
              if (!isJobStateError(error)) throw error;
              throw notFailed(name, id, 'it stopped being failed meanwhile', error);
            }
            return { queue: name, id, outcome: 'retried', jobId: id };
          }
          found = { state };
        }
      }
      if (from !== 'queue') {
        const replayed: ReplayedDeadLetter | undefined = await this.#deadLetters.replayOne(name, id);
        if (replayed !== undefined) return { queue: name, id, outcome: 'replayed', jobId: replayed.jobId };
      }
      return found;
    });
    if (outcome === undefined) throw jobNotFound(name, id, from);
    if (!('outcome' in outcome)) throw notFailed(name, id, `it is ${outcome.state}`);
    await this.#audit.append({
      actorId: actor.id,
      actorName: actor.name,
      action: outcome.outcome === 'retried' ? 'queue.job.retry' : 'queue.dead_letter.replay',
      target: `queue:${name}`,
      details: outcome.outcome === 'retried' ? { jobId: id } : { deadLetterId: id, jobId: outcome.jobId, replayed: 1 },
    });
    return outcome;
  }

  /**
   * Remove a job. Without `from`, a dead letter with that id is discarded when there is one (the
   * original job of a dead letter is usually still kept as completed, and it is the dead letter an
   * operator means); otherwise the queue's job is removed, unless a worker is processing it.
   * Audited as `queue.dead_letter.discard` or `queue.job.remove`.
   * @throws PorticoError `PORTICO_ERR_QUEUE_NOT_FOUND`, `PORTICO_ERR_QUEUE_JOB_NOT_FOUND`,
   *   `PORTICO_ERR_QUEUE_JOB_ACTIVE`, `PORTICO_ERR_MESSAGING_UNAVAILABLE`.
   */
  async remove(actor: Principal, name: string, id: string, from?: JobLocation): Promise<{ removedFrom: JobLocation; state: string }> {
    const removed = await this.#bus.run(async (redis): Promise<{ removedFrom: JobLocation; state: string } | undefined> => {
      await requireQueue(redis, name);
      if (from !== 'queue' && (await this.#deadLetters.discardOne(name, id))) return { removedFrom: 'dlq', state: 'dead' };
      if (from === 'dlq') return undefined;
      const job = await this.#bus.queue(name).getJob(id);
      if (job === undefined) return undefined;
      const state = await job.getState();
      if (state === 'active') throw active(name, id);
      try {
        await job.remove();
      } catch (error) {
        // A worker took it between the two calls: its lock keeps it.
        if (isJobStateError(error)) throw active(name, id, error);
        throw error;
      }
      return { removedFrom: 'queue', state };
    });
    if (removed === undefined) throw jobNotFound(name, id, from);
    await this.#audit.append({
      actorId: actor.id,
      actorName: actor.name,
      action: removed.removedFrom === 'dlq' ? 'queue.dead_letter.discard' : 'queue.job.remove',
      target: `queue:${name}`,
      details: removed.removedFrom === 'dlq' ? { deadLetterId: id } : { jobId: id, state: removed.state },
    });
    return removed;
  }

  async #summary(redis: Redis, name: string): Promise<QueueSummary> {
    const queue = this.#bus.queue(name);
    const [counts, paused, deadLetters, rates, oldest, consumers] = await Promise.all([
      queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'),
      queue.isPaused(),
      this.#bus.queue(deadLetterQueue(name)).getWaitingCount(),
      queueRates(redis, queue),
      queue.getJobs(['waiting'], 0, 0, true),
      queue.getWorkersCount(),
    ]);
    const waiting = (counts.waiting ?? 0) + (counts.prioritized ?? 0);
    const oldestJob = oldest[0];
    return {
      name,
      service: queueService(name) as string,
      counts: {
        waiting,
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        failed: counts.failed ?? 0,
        completed: counts.completed ?? 0,
        ...(paused ? { paused: waiting } : {}),
      },
      deadLetters,
      rates,
      oldestWaitingAgeMs: oldestJob === undefined ? null : Math.max(0, Date.now() - oldestJob.timestamp),
      consumers,
    };
  }
}

/** Whether `name` is a service queue's name: `<service>_service_queue` with a valid service name. */
export function isServiceQueue(name: string): boolean {
  const service = queueService(name);
  return service !== undefined && SERVICE_NAME_PATTERN.test(service);
}

/**
 * The service queues that have BullMQ keys: every queue gets a `meta` hash with its first job, so one
 * SCAN for `bull:*:meta` finds them all, a dead-letter queue standing for its queue.
 */
async function serviceQueues(redis: Redis): Promise<string[]> {
  const names = new Set<string>();
  const head = `${QUEUE_PREFIX}:`;
  const tail = ':meta';
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${head}*${tail}`, 'COUNT', SCAN_COUNT);
    cursor = next;
    for (const key of keys) {
      const queue = key.slice(head.length, -tail.length);
      const base = queue.endsWith('.dlq') ? queue.slice(0, -'.dlq'.length) : queue;
      if (isServiceQueue(base)) names.add(base);
    }
  } while (cursor !== '0');
  return [...names].sort();
}

/** @throws PorticoError `PORTICO_ERR_QUEUE_NOT_FOUND` unless `name` is a service queue with keys in Redis. */
async function requireQueue(redis: Redis, name: string): Promise<void> {
  if (isServiceQueue(name) && (await redis.exists(`${QUEUE_PREFIX}:${name}:meta`, `${QUEUE_PREFIX}:${deadLetterQueue(name)}:meta`)) > 0) return;
  throw new PorticoError('PORTICO_ERR_QUEUE_NOT_FOUND', {
    message: isServiceQueue(name)
      ? `No queue "${name}" in Redis: no message has been sent to it yet.`
      : `"${name}" is not a service queue: service queues are named <service>_service_queue.`,
    details: { queue: name },
  });
}

/** See `QueueRates`. */
async function queueRates(redis: Redis, queue: Queue): Promise<QueueRates> {
  const [completed, failed] = await Promise.all([queue.getMetrics('completed', 0, 0), queue.getMetrics('failed', 0, 0)]);
  const now = Date.now();
  if (completed.meta.prevTS > 0 || failed.meta.prevTS > 0) {
    return { completedPerMinute: lastWholeMinute(completed, now), failedPerMinute: lastWholeMinute(failed, now), source: 'metrics' };
  }
  const since = now - MINUTE_MS;
  const [completedCount, failedCount] = await Promise.all([
    redis.zcount(`${QUEUE_PREFIX}:${queue.name}:completed`, since, '+inf'),
    redis.zcount(`${QUEUE_PREFIX}:${queue.name}:failed`, since, '+inf'),
  ]);
  return { completedPerMinute: completedCount, failedPerMinute: failedCount, source: 'finished-jobs' };
}

/**
 * The count of the last whole minute from BullMQ's metrics. Workers push a minute's count only when a
 * job finishes in a later minute, and `meta` holds the minute in progress (from `prevTS`, `count - prevCount`
 * so far): the last whole minute is that one when it has just ended, the newest point when the minute in
 * progress is this one, and nothing when no job finished since.
 */
function lastWholeMinute(metrics: Awaited<ReturnType<Queue['getMetrics']>>, now: number): number {
  const current = Math.floor(now / MINUTE_MS);
  const recorded = Math.floor(metrics.meta.prevTS / MINUTE_MS);
  if (recorded === current) return metrics.data[0] ?? 0;
  if (recorded === current - 1) return Math.max(0, metrics.meta.count - metrics.meta.prevCount);
  return 0;
}

function iso(ms: number | undefined): string | null {
  return ms === undefined || ms === null || !Number.isFinite(ms) || ms <= 0 ? null : new Date(ms).toISOString();
}

function jobView(job: Job, state: JobListState): JobView {
  return {
    id: String(job.id),
    name: job.name,
    state,
    data: job.data as unknown,
    attemptsMade: job.attemptsMade,
    failedReason: job.failedReason === undefined || job.failedReason === '' ? null : job.failedReason,
    createdAt: iso(job.timestamp) ?? new Date(0).toISOString(),
    processedAt: iso(job.processedOn),
    finishedAt: iso(job.finishedOn),
  };
}

/** BullMQ refuses to move or remove a job in the wrong state (or locked by a worker) with a plain Error naming it. */
function isJobStateError(error: unknown): boolean {
  return error instanceof Error && /is not in the|locked|could not be removed|Missing key|not in the (failed|completed) state/i.test(error.message);
}

function jobNotFound(name: string, id: string, from: JobLocation | undefined): PorticoError {
  const where = from === 'queue' ? `"${name}"` : from === 'dlq' ? `"${deadLetterQueue(name)}"` : `"${name}" or its dead-letter queue`;
  return new PorticoError('PORTICO_ERR_QUEUE_JOB_NOT_FOUND', { message: `No job "${id}" in ${where}.`, details: { queue: name, id } });
}

function notFailed(name: string, id: string, why: string, cause?: unknown): PorticoError {
  return new PorticoError('PORTICO_ERR_QUEUE_JOB_NOT_FAILED', {
    message: `Job "${id}" of "${name}" cannot be retried: ${why}. Only a failed job or a dead letter can be retried.`,
    details: { queue: name, id },
    cause,
  });
}

function active(name: string, id: string, cause?: unknown): PorticoError {
  return new PorticoError('PORTICO_ERR_QUEUE_JOB_ACTIVE', {
    message: `Job "${id}" of "${name}" is being processed by a worker; remove it once it has finished.`,
    details: { queue: name, id },
    cause,
  });
}
