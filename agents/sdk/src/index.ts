/**
 * `@portico/sdk`: the Portico agent in-process. `createAgent` registers a service instance, checks it
 * locally and heartbeats, re-registers after a control-plane restart and drains on `stop()`;
 * `createDiscovery` (or an agent's `resolve`/`pick`) finds healthy instances of other services.
 * The message bus is `@portico/sdk/bus`, apart, so an agent alone (the sidecar) loads none of BullMQ.
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
