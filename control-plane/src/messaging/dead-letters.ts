import { type Job } from 'bullmq';
import { type DeadLetter } from '@portico/sdk/bus/dead-letter';
import { messageJobOptions } from '@portico/sdk/bus/deliveries';
import { type Envelope, parseEnvelope } from '@portico/sdk/bus/envelope';
import { deadLetterQueue, QUEUE_PREFIX } from '@portico/sdk/bus/queues';
import { type Principal } from '../auth/token-service.js';
import { PorticoError } from '../errors.js';
import { type AuditRepository } from '../store/store.js';
import { type BusConnection } from './bus-connection.js';

/** Dead letters replayed by one call at most; the answer says how many are left. */
export const REPLAY_BATCH = 1_000;
/** Dead letters one call looks at at most, replayed or skipped, so a queue full of malformed ones stays cheap. */
const REPLAY_EXAMINE_LIMIT = 10 * REPLAY_BATCH;
/** Jobs added in one round trip. */
const ADD_CHUNK = 100;

/** A dead letter put back in its queue as a new job. */
export interface ReplayedDeadLetter {
  /** The dead letter's id (the original job's, the message id). */
  deadLetterId: string;
  /** The new job's id: `<message id>-replay-<ms>`. */
  jobId: string;
}

/** A dead letter a replay left where it was, and why. */
export interface SkippedDeadLetter {
  id: string;
  problem: string;
}

/** What `POST /api/v1/queues/:name/dlq/replay` did. */
export interface ReplayReport {
  queue: string;
  /** How many were replayed (at most {@link REPLAY_BATCH}). */
  replayed: number;
  jobs: ReplayedDeadLetter[];
  /** Dead letters with no replayable message (malformed, or naming another queue): left in the dead-letter queue. */
  skipped: SkippedDeadLetter[];
  /** Ids asked for that are not in the dead-letter queue. */
  notFound: string[];
  /** Dead letters still in the dead-letter queue after the call, the skipped ones not counted: call again while this and `replayed` are above 0. */
  remaining: number;
}

export interface DeadLettersOptions {
  bus: BusConnection;
  audit: AuditRepository;
}

/**
 * The dead-letter queues (`<queue>.dlq`): ordinary BullMQ queues no worker consumes, whose jobs are
 * `DeadLetter`s keeping the original job's id. An operator replays them (the message goes back to its
 * queue) or discards them.
 *
 * A replay adds the envelope to the queue as a new job, `<message id>-replay-<ms>` (the original id may
 * still be kept there as a completed job, which would make BullMQ drop the add as a duplicate), with the
 * options every message job has, and only then removes the dead letter: a crash in between leaves the
 * message twice rather than nowhere, and consumers deduplicate by the envelope's id in their inbox.
 */
export class DeadLetters {
  readonly #bus: BusConnection;
  readonly #audit: AuditRepository;

  constructor(options: DeadLettersOptions) {
    this.#bus = options.bus;
    this.#audit = options.audit;
  }

  /**
   * Replay dead letters of `queue`: those named by `ids`, or else all, oldest first, up to
   * {@link REPLAY_BATCH} per call. Dead letters without a valid envelope are skipped and reported.
   * Audited as `queue.dlq.replay` with the counts.
   * @throws PorticoError `PORTICO_ERR_QUEUE_NOT_FOUND`, `PORTICO_ERR_MESSAGING_UNAVAILABLE`.
   */
  async replay(actor: Principal, queue: string, ids?: readonly string[]): Promise<ReplayReport> {
    const report = await this.#bus.run(async (redis) => {
      const exists = (await redis.exists(`${QUEUE_PREFIX}:${queue}:meta`, `${QUEUE_PREFIX}:${deadLetterQueue(queue)}:meta`)) > 0;
      if (!exists) throw new PorticoError('PORTICO_ERR_QUEUE_NOT_FOUND', { message: `No queue "${queue}" in Redis.`, details: { queue } });
      const dlq = this.#bus.queue(deadLetterQueue(queue));
      const notFound: string[] = [];
      const candidates: Job[] = [];
      if (ids !== undefined) {
        const unique = [...new Set(ids)];
        const jobs = await Promise.all(unique.map((id) => dlq.getJob(id)));
        jobs.forEach((job, i) => (job === undefined ? notFound.push(unique[i] as string) : candidates.push(job)));
      }
      const jobs: ReplayedDeadLetter[] = [];
      const skipped: SkippedDeadLetter[] = [];
      if (ids !== undefined) {
        await this.#replayJobs(queue, candidates, jobs, skipped, REPLAY_BATCH);
      } else {
        // Oldest first, page by page; a skipped one stays in the list, so the next page starts after it.
        let offset = 0;
        let examined = 0;
        while (jobs.length < REPLAY_BATCH && examined < REPLAY_EXAMINE_LIMIT) {
          const page = await dlq.getJobs(['waiting'], offset, offset + ADD_CHUNK - 1, true);
          if (page.length === 0) break;
          examined += page.length;
          const skippedBefore = skipped.length;
          await this.#replayJobs(queue, page, jobs, skipped, REPLAY_BATCH - jobs.length);
          offset += skipped.length - skippedBefore;
        }
      }
      const left = await dlq.getWaitingCount();
      return { queue, replayed: jobs.length, jobs, skipped, notFound, remaining: Math.max(0, left - skipped.length) };
    });
    await this.#audit.append({
      actorId: actor.id,
      actorName: actor.name,
      action: 'queue.dlq.replay',
      target: `queue:${queue}`,
      details: { replayed: report.replayed, skipped: report.skipped.length, notFound: report.notFound.length, remaining: report.remaining, ...(ids === undefined ? { all: true } : {}) },
    });
    return report;
  }

  /**
   * Replay the one dead letter `id` of `queue`, when there is one (for a retry; the caller audits it and
   * runs it inside `BusConnection.run`).
   * @returns undefined when `<queue>.dlq` holds no job `id`.
   * @throws PorticoError `PORTICO_ERR_QUEUE_DEAD_LETTER_MALFORMED` when it holds no replayable message.
   */
  async replayOne(queue: string, id: string): Promise<ReplayedDeadLetter | undefined> {
    const job = await this.#bus.queue(deadLetterQueue(queue)).getJob(id);
    if (job === undefined) return undefined;
    const jobs: ReplayedDeadLetter[] = [];
    const skipped: SkippedDeadLetter[] = [];
    await this.#replayJobs(queue, [job], jobs, skipped, 1);
    const problem = skipped[0];
    if (problem !== undefined) {
      throw new PorticoError('PORTICO_ERR_QUEUE_DEAD_LETTER_MALFORMED', {
        message: `Dead letter "${id}" of "${queue}" cannot be replayed: ${problem.problem}. Discard it instead.`,
        details: { queue, id, problem: problem.problem },
      });
    }
    return jobs[0];
  }

  /**
   * Discard the dead letter `id` of `queue` (the caller audits it and runs it inside `BusConnection.run`).
   * @returns whether there was one.
   */
  async discardOne(queue: string, id: string): Promise<boolean> {
    // Queue.remove answers 1 for an id it does not hold too: look first.
    const job = await this.#bus.queue(deadLetterQueue(queue)).getJob(id);
    if (job === undefined) return false;
    await job.remove();
    return true;
  }

  /** Add the messages of `deadLetters` (up to `max`) back to `queue`, then remove them from its dead-letter queue. */
  async #replayJobs(queue: string, deadLetters: readonly Job[], replayed: ReplayedDeadLetter[], skipped: SkippedDeadLetter[], max: number): Promise<void> {
    const ready: Array<{ deadLetterId: string; envelope: Envelope }> = [];
    for (const job of deadLetters) {
      if (ready.length >= max) break;
      const id = String(job.id);
      const checked = replayable(job.data, queue);
      if ('problem' in checked) skipped.push({ id, problem: checked.problem });
      else ready.push({ deadLetterId: id, envelope: checked.envelope });
    }
    const target = this.#bus.queue(queue);
    const dlq = this.#bus.queue(deadLetterQueue(queue));
    for (let i = 0; i < ready.length; i += ADD_CHUNK) {
      const chunk = ready.slice(i, i + ADD_CHUNK).map((entry) => ({ ...entry, jobId: `${entry.envelope.id}-replay-${Date.now()}` }));
      await target.addBulk(chunk.map(({ envelope, jobId }) => ({ name: envelope.type, data: envelope, opts: messageJobOptions(jobId) })));
      // Only once the messages are in the queue: a crash before this line duplicates, never loses.
      await Promise.all(chunk.map(({ deadLetterId }) => dlq.remove(deadLetterId)));
      for (const { deadLetterId, jobId } of chunk) replayed.push({ deadLetterId, jobId });
    }
  }
}

/** The envelope a dead letter's data holds, when it can go back to `queue`; else why not. */
function replayable(data: unknown, queue: string): { envelope: Envelope } | { problem: string } {
  if (typeof data !== 'object' || data === null) return { problem: 'its data is not a dead letter' };
  const deadLetter = data as Partial<DeadLetter>;
  if (deadLetter.envelope === undefined) return { problem: `it holds no message${deadLetter.reason === undefined ? '' : ` (reason: ${deadLetter.reason})`}` };
  const parsed = parseEnvelope(deadLetter.envelope);
  if (!parsed.ok) return { problem: `its message is malformed: ${parsed.problem}` };
  if (deadLetter.queue !== undefined && deadLetter.queue !== queue) return { problem: `it names another queue, "${String(deadLetter.queue)}"` };
  return { envelope: parsed.envelope };
}
