import { MESSAGE_TYPE_PATTERN } from '@portico/sdk/bus/envelope';
import { serviceQueue } from '@portico/sdk/bus/queues';
import { PorticoError } from '../errors.js';
import { type Subscription } from '../store/store.js';

/**
 * The message topology: which service consumes which message types. Each service consumes one queue,
 * `<service>_service_queue`; an event (choreography) goes to the queue of every service that consumes
 * its type, a command (orchestration) to one named service's queue. The control plane only keeps and
 * serves this map: producers read it and write to Redis themselves.
 */

/** The most message types one service may consume. */
export const MAX_CONSUMED_TYPES = 256;

/** One service's entry: its queue and the message types it consumes. */
export interface ServiceTopology {
  service: string;
  /** `<service>_service_queue`. */
  queue: string;
  /** Sorted by code point. */
  consumes: string[];
  /** When this set was declared. */
  declaredAt: Date;
}

/** The whole topology. Every list and key is sorted by code point. */
export interface Topology {
  /** Services that consume at least one message type. */
  services: ServiceTopology[];
  /** Message type → the services that consume it. */
  types: Record<string, string[]>;
}

/**
 * The topology a store's subscriptions describe. `subscriptions` come as `TopologyRepository.list()`
 * returns them: by service, then by message type.
 */
export function buildTopology(subscriptions: readonly Subscription[]): Topology {
  const services: ServiceTopology[] = [];
  const types = new Map<string, string[]>();
  for (const subscription of subscriptions) {
    let entry = services.at(-1);
    if (entry?.service !== subscription.service) {
      entry = { service: subscription.service, queue: serviceQueue(subscription.service), consumes: [], declaredAt: subscription.declaredAt };
      services.push(entry);
    }
    entry.consumes.push(subscription.messageType);
    if (subscription.declaredAt > entry.declaredAt) entry.declaredAt = subscription.declaredAt;
    const consumers = types.get(subscription.messageType);
    if (consumers === undefined) types.set(subscription.messageType, [subscription.service]);
    else consumers.push(subscription.service);
  }
  // Object.fromEntries makes own properties, so a type named like an Object.prototype member
  // ("constructor") is an ordinary key.
  return { services, types: Object.fromEntries([...types.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
}

/**
 * One service's entry from its subscriptions (by message type). A service that consumes nothing has no
 * rows; its entry then carries `declaredAt`, the time it was declared so.
 */
export function serviceTopology(service: string, subscriptions: readonly Subscription[], declaredAt: Date): ServiceTopology {
  return {
    service,
    queue: serviceQueue(service),
    consumes: subscriptions.map((subscription) => subscription.messageType),
    declaredAt: subscriptions[0]?.declaredAt ?? declaredAt,
  };
}

/**
 * Check a service's declared message types (the `consumes` of `PUT /api/v1/topology/services/:service`):
 * at most {@link MAX_CONSUMED_TYPES}, each matching the bus's `MESSAGE_TYPE_PATTERN`, none twice. Every
 * problem is reported at once, by position.
 * @throws PorticoError `PORTICO_ERR_TOPOLOGY_TOO_MANY_TYPES`, `PORTICO_ERR_TOPOLOGY_INVALID_TYPE`.
 */
export function checkConsumes(consumes: readonly string[]): void {
  if (consumes.length > MAX_CONSUMED_TYPES) {
    throw new PorticoError('PORTICO_ERR_TOPOLOGY_TOO_MANY_TYPES', {
      message: `A service may consume at most ${MAX_CONSUMED_TYPES} message types; ${consumes.length} were given.`,
      details: { limit: MAX_CONSUMED_TYPES, given: consumes.length },
    });
  }
  const problems: Array<{ location: string; problem: string }> = [];
  const seen = new Map<string, number>();
  consumes.forEach((type, i) => {
    const location = `body/consumes/${i}`;
    if (!MESSAGE_TYPE_PATTERN.test(type)) {
      problems.push({ location, problem: `${JSON.stringify(type.length > 140 ? `${type.slice(0, 128)}…` : type)} is not a valid message type: letters, digits, ".", "_" and "-", up to 128, starting with a letter or digit` });
      return;
    }
    const first = seen.get(type);
    if (first === undefined) seen.set(type, i);
    else problems.push({ location, problem: `"${type}" is listed at consumes/${first} already` });
  });
  if (problems.length > 0) {
    throw new PorticoError('PORTICO_ERR_TOPOLOGY_INVALID_TYPE', {
      message: `Invalid message types: ${problems.map((p) => `${p.location} ${p.problem}`).join('; ')}.`,
      details: problems,
    });
  }
}
