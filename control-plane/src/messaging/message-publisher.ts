import { addDeliveries, deliveriesOf } from '@portico/sdk/bus/deliveries';
import { createEnvelope, type Envelope } from '@portico/sdk/bus/envelope';
import { QUEUE_PREFIX, serviceQueue } from '@portico/sdk/bus/queues';
import { type Principal } from '../auth/token-service.js';
import { PorticoError } from '../errors.js';
import { type AuditRepository } from '../store/store.js';
import { type BusConnection } from './bus-connection.js';

/** The `source` of every message an operator sends through the control plane. */
export const OPERATOR_SOURCE = 'portico';

/** A message an operator sends: an event to every subscriber of its type, or a command to one service. */
export type OperatorMessage =
  | { kind: 'event'; type: string; payload: unknown; traceparent?: string; tracestate?: string }
  | { kind: 'command'; service: string; type: string; payload: unknown; traceparent?: string; tracestate?: string };

/** What was sent: the message id and the queues it was added to (none for an event nobody consumes). */
export interface SentMessage {
  id: string;
  deliveredTo: string[];
}

export interface MessagePublisherOptions {
  bus: BusConnection;
  audit: AuditRepository;
  /** The services that consume an event type, from the message topology. */
  subscribersOf: (type: string) => Promise<readonly string[]>;
}

/**
 * Messages an operator sends by hand (`POST /api/v1/messages`), exactly as a service would: one envelope
 * (source `portico`), added in one Redis transaction with the SDK's `addDeliveries`, so an event
 * reaches every subscriber's queue or none.
 */
export class MessagePublisher {
  readonly #bus: BusConnection;
  readonly #audit: AuditRepository;
  readonly #subscribersOf: (type: string) => Promise<readonly string[]>;

  constructor(options: MessagePublisherOptions) {
    this.#bus = options.bus;
    this.#audit = options.audit;
    this.#subscribersOf = options.subscribersOf;
  }

  /**
   * Send `message`. A command goes to a service the topology says consumes its type, or else only to a
   * queue that exists (a service whose queue has had a message), so a mistyped service name is refused
   * rather than making a queue nobody consumes. Audited as `message.send`.
   * @throws PorticoError `PORTICO_ERR_REQUEST_INVALID` (a type or service name the bus cannot carry),
   *   `PORTICO_ERR_QUEUE_NOT_FOUND` (a command's service has no queue), `PORTICO_ERR_MESSAGING_UNAVAILABLE`.
   */
  async send(actor: Principal, message: OperatorMessage): Promise<SentMessage> {
    let envelope: Envelope;
    try {
      envelope = createEnvelope({
        kind: message.kind,
        type: message.type,
        source: OPERATOR_SOURCE,
        payload: message.payload,
        ...(message.traceparent === undefined ? {} : { traceparent: message.traceparent }),
        ...(message.tracestate === undefined ? {} : { tracestate: message.tracestate }),
      });
    } catch (error) {
      throw new PorticoError('PORTICO_ERR_REQUEST_INVALID', { message: `Invalid message: ${error instanceof Error ? error.message : String(error)}`, cause: error });
    }
    const subscribers = await this.#subscribersOf(message.type);
    const services = message.kind === 'command' ? [message.service] : [...new Set(subscribers)].sort();
    const queues = services.map(serviceQueue);
    await this.#bus.run(async (redis) => {
      // A service that declared it consumes the command's type may not have a queue yet; any other must.
      if (message.kind === 'command' && !subscribers.includes(message.service)) {
        const queue = queues[0] as string;
        if ((await redis.exists(`${QUEUE_PREFIX}:${queue}:meta`)) === 0) {
          throw new PorticoError('PORTICO_ERR_QUEUE_NOT_FOUND', {
            message: `No queue "${queue}" in Redis: the service "${message.service}" has never been sent a message. Check its name.`,
            details: { queue, service: message.service },
          });
        }
      }
      await addDeliveries((name) => this.#bus.queue(name), deliveriesOf(envelope, queues));
    });
    await this.#audit.append({
      actorId: actor.id,
      actorName: actor.name,
      action: 'message.send',
      target: `message:${envelope.id}`,
      details: { kind: envelope.kind, type: envelope.type, ...(message.kind === 'command' ? { service: message.service } : {}), deliveredTo: queues },
    });
    return { id: envelope.id, deliveredTo: queues };
  }
}
