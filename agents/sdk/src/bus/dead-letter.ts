import { type Envelope } from './envelope.js';

/** Why a message was dead-lettered. */
export type DeadLetterReason =
  /** Its handler failed on every attempt the message type allows. */
  | 'failed'
  /** The job's data is not an envelope; it was never handed to a handler. */
  | 'malformed'
  /** The consuming service has no handler for its type (the topology changed while it was queued). */
  | 'unhandled';

/** One failed attempt. */
export interface DeliveryAttempt {
  attempt: number;
  error: string;
  /** ISO 8601. */
  at: string;
}

/**
 * A dead-letter queue job's data (the job is named after the message type, or `malformed`, and keeps
 * the original job's id). An operator can read it, replay it to `queue`, or discard it.
 */
export interface DeadLetter {
  reason: DeadLetterReason;
  /** The queue the message died in, where a replay sends it back. */
  queue: string;
  /** The original job's id (the message id for an envelope). */
  jobId: string;
  /** The message; absent when it was malformed (then `raw` is what the job held). */
  envelope?: Envelope;
  raw?: unknown;
  /** The last error. */
  error: { message: string; stack?: string };
  /** Attempts made, the last one included. */
  attempts: number;
  history: DeliveryAttempt[];
  /** ISO 8601. */
  deadAt: string;
}
