/**
 * `@portico/sdk`: the Portico agent in-process. `createAgent` registers a service instance, checks it
 * locally and heartbeats, re-registers after a control-plane restart and drains on `stop()`;
 * `createDiscovery` (or an agent's `resolve`/`pick`) finds healthy instances of other services;
 * `MessageBus` publishes events, sends commands and handles them over BullMQ, with an outbox and an inbox.
 */
export { Agent, type AgentEvents, createAgent, DRAIN_REASON, type RegistrationReason } from './agent.js';
export { AgentError, type AgentErrorKind, isAgentError } from './agent-error.js';
export { type AgentConfig, type AgentOptions, type Duration, resolveAgentConfig } from './agent-options.js';
export { type CheckResult, createLocalCheck, type HealthCheckFunction, type HealthOption, type LocalCheck } from './checks/local-check.js';
export { isTcpTarget } from './checks/tcp-check.js';
export { createDiscovery, Discovery, type DiscoveryOptions, type ResolvedInstance } from './discovery/discovery.js';
export { parseDuration } from './duration.js';
export { defaultInstanceId } from './instance-id.js';
export { type Logger, silentLogger } from './logger.js';
export { type HealthStatus } from './registry-types.js';
export { type BusDatabase, type BusTables, ensureBusTables } from './bus/bus-tables.js';
export { type DeadLetter, type DeadLetterReason, type DeliveryAttempt } from './bus/dead-letter.js';
export { createEnvelope, type Envelope, type MessageKind, parseEnvelope } from './bus/envelope.js';
export { DEFAULT_RETRY, MessageBus, type MessageBusOptions, type MessageContext, type MessageHandler, type RetryPolicy, type SendOptions } from './bus/message-bus.js';
export { deadLetterQueue, queueService, serviceQueue } from './bus/queues.js';
export { ControlPlaneTopology, type ControlPlaneTopologyOptions, StaticTopology, type TopologyDocument, type TopologySource } from './bus/topology.js';
