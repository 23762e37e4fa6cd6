import { randomFillSync } from 'node:crypto';
import { v7 as uuidv7, validate as validUuid } from 'uuid';

/**
 * Every message on Portico's bus travels as an envelope, the BullMQ job's data. Its `id` (UUIDv7, so
 * ids sort by creation) is also the job id in every queue it reaches, so sending the same message
 * again is deduplicated by BullMQ while the job is kept, and by the consumer's inbox after.
 */
export interface Envelope<P = unknown> {
  /** UUIDv7. */
  id: string;
  /** `event` (choreography: every subscriber of `type` gets it) or `command` (orchestration: one service). */
  kind: MessageKind;
  /** The message type, e.g. `product.availability_changed` or `sku_set_availability`. */
  type: string;
  /** The service that sent it. */
  source: string;
  /** When it was created (ISO 8601). */
  time: string;
  /** The payload's schema version, for consumers that read several. */
  schemaVersion: number;
  /** W3C trace context of the sending span, when there was one. */
  traceparent?: string;
  tracestate?: string;
  payload: P;
}

export type MessageKind = 'event' | 'command';

/** Names a message type or a service may have: what queue and metric names can carry. */
export const MESSAGE_TYPE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** The registry's rule for a service name (a BullMQ queue name may not hold `:`, and this has none). */
export const SERVICE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

export interface EnvelopeInit<P> {
  kind: MessageKind;
  type: string;
  source: string;
  payload: P;
  schemaVersion?: number;
  traceparent?: string;
  tracestate?: string;
  /** Defaults to a new UUIDv7. */
  id?: string;
  /** Defaults to now. */
  time?: Date;
}

/** A new envelope; throws a `TypeError` naming the field when a type or source is not a valid name. */
export function createEnvelope<P>(init: EnvelopeInit<P>): Envelope<P> {
  if (!MESSAGE_TYPE_PATTERN.test(init.type)) throw new TypeError(`"${init.type}" is not a valid message type: letters, digits, ".", "_" and "-", up to 128.`);
  if (!SERVICE_NAME_PATTERN.test(init.source)) throw new TypeError(`"${init.source}" is not a valid service name.`);
  const envelope: Envelope<P> = {
    id: init.id ?? newMessageId(),
    kind: init.kind,
    type: init.type,
    source: init.source,
    time: (init.time ?? new Date()).toISOString(),
    schemaVersion: init.schemaVersion ?? 1,
    payload: init.payload,
  };
  if (init.traceparent !== undefined && TRACEPARENT.test(init.traceparent)) {
    envelope.traceparent = init.traceparent;
    if (init.tracestate !== undefined) envelope.tracestate = init.tracestate;
  }
  return envelope;
}

/** Random bytes for ids, refilled 256 ids at a time: uuid asks the system for 16 bytes per id, which costs more than the rest of a publish's JavaScript. */
const randomPool = new Uint8Array(4096);
let randomAt = randomPool.length;
/** The last id's millisecond and sequence, so ids made within one millisecond still sort in the order they were made. */
const idClock = { msecs: -Infinity, seq: 0 };

/**
 * A new message id: a UUIDv7 (uuid's `v7`) from pooled random bytes, with uuid's own rule for ids made
 * within one millisecond (a random 31-bit sequence that then counts up, carrying into the millisecond),
 * so a process's ids sort in the order it made them, as the outbox relay's order needs.
 */
export function newMessageId(): string {
  if (randomAt + 16 > randomPool.length) {
    randomFillSync(randomPool);
    randomAt = 0;
  }
  const random = randomPool.subarray(randomAt, (randomAt += 16));
  const now = Date.now();
  if (now > idClock.msecs) {
    idClock.msecs = now;
    idClock.seq = (((random[6] as number) & 0x7f) << 24) | ((random[7] as number) << 16) | ((random[8] as number) << 8) | (random[9] as number);
  } else {
    idClock.seq = (idClock.seq + 1) | 0;
    if (idClock.seq === 0) idClock.msecs += 1;
  }
  return uuidv7({ random, msecs: idClock.msecs, seq: idClock.seq });
}

export type ParsedEnvelope = { ok: true; envelope: Envelope } | { ok: false; problem: string };

/**
 * Check that `data` (a job's data, from anywhere) is an envelope. A malformed one is never handed to a
 * handler: the worker sends it to the dead-letter queue with `problem`.
 */
export function parseEnvelope(data: unknown): ParsedEnvelope {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return { ok: false, problem: 'the message is not an object' };
  const d = data as Record<string, unknown>;
  if (typeof d.id !== 'string' || !validUuid(d.id)) return { ok: false, problem: '"id" is not a UUID' };
  if (d.kind !== 'event' && d.kind !== 'command') return { ok: false, problem: '"kind" is neither "event" nor "command"' };
  if (typeof d.type !== 'string' || !MESSAGE_TYPE_PATTERN.test(d.type)) return { ok: false, problem: '"type" is not a valid message type' };
  if (typeof d.source !== 'string' || !SERVICE_NAME_PATTERN.test(d.source)) return { ok: false, problem: '"source" is not a valid service name' };
  if (typeof d.time !== 'string' || Number.isNaN(Date.parse(d.time))) return { ok: false, problem: '"time" is not a date' };
  if (typeof d.schemaVersion !== 'number' || !Number.isInteger(d.schemaVersion) || d.schemaVersion < 1) return { ok: false, problem: '"schemaVersion" is not a positive integer' };
  if (d.traceparent !== undefined && (typeof d.traceparent !== 'string' || !TRACEPARENT.test(d.traceparent))) return { ok: false, problem: '"traceparent" is not W3C trace context' };
  if (d.tracestate !== undefined && typeof d.tracestate !== 'string') return { ok: false, problem: '"tracestate" is not a string' };
  if (!('payload' in d)) return { ok: false, problem: '"payload" is missing' };
  return { ok: true, envelope: d as unknown as Envelope };
}
