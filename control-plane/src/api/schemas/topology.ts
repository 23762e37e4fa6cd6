import { type Static, Type } from 'typebox';
import { MAX_CONSUMED_TYPES } from '../../messaging/topology.js';
import { Timestamp } from './common.js';
import { ServiceName } from './tokens.js';

/** One service's entry in the topology. */
export const ServiceTopologyView = Type.Object({
  service: Type.String(),
  queue: Type.String({ description: 'The queue the service consumes: `<service>_service_queue`.' }),
  consumes: Type.Array(Type.String(), { description: 'The message types it consumes, sorted.' }),
  declaredAt: Timestamp,
});
export type ServiceTopologyView = Static<typeof ServiceTopologyView>;

/** `GET /api/v1/topology`, and the `data` of each `topology` event on `GET /api/v1/topology/events`. */
export const TopologyView = Type.Object(
  {
    services: Type.Array(ServiceTopologyView, { description: 'Every service that consumes at least one message type, by name.' }),
    types: Type.Record(Type.String(), Type.Array(Type.String()), {
      description: 'Message type → the services that consume it (sorted): an event of that type goes to each of their queues.',
    }),
  },
  { description: 'Which service consumes which message types.' },
);
export type TopologyView = Static<typeof TopologyView>;

export const DeclareConsumesBody = Type.Object(
  {
    consumes: Type.Array(Type.String(), {
      description:
        `The whole set of message types the service consumes, replacing the one it had: at most ${MAX_CONSUMED_TYPES}, each listed once, ` +
        'each letters, digits, ".", "_" and "-" (up to 128, starting with a letter or digit). An empty list removes its subscriptions.',
    }),
  },
  { additionalProperties: false },
);

export const TopologyServiceParams = Type.Object({ service: ServiceName });
