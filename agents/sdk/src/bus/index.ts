/**
 * `@portico/sdk/bus`: the message bus. `MessageBus` publishes events to every subscriber's queue,
 * sends commands to one service's, and handles them over BullMQ, with a transactional outbox and an
 * inbox in the service's own database; `ControlPlaneTopology` (or `StaticTopology`) says who consumes what.
 * `withStatementCache` makes a better-sqlite3 database prepare each query once under kysely.
 */
export { type BusDatabase, type BusTables, ensureBusTables } from './bus-tables.js';
export { type DeadLetter, type DeadLetterReason, type DeliveryAttempt } from './dead-letter.js';
export { createEnvelope, type Envelope, type MessageKind, parseEnvelope } from './envelope.js';
export { DEFAULT_RETRY, MessageBus, type MessageBusOptions, type MessageContext, type MessageHandler, type RetryPolicy, type SendOptions } from './message-bus.js';
export { deadLetterQueue, queueService, serviceQueue } from './queues.js';
export { STATEMENT_CACHE_SIZE, withStatementCache } from './sqlite-statements.js';
export { ControlPlaneTopology, type ControlPlaneTopologyOptions, StaticTopology, type TopologyDocument, type TopologySource } from './topology.js';
export { type ProcessOutcome } from './bus-metrics.js';
