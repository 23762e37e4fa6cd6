import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { type ServiceTopology, type Topology } from '../../messaging/topology.js';
import { type TopologyService } from '../../messaging/topology-service.js';
import { principalOf } from '../auth.js';
import { authErrorResponses } from '../schemas/common.js';
import { DeclareConsumesBody, ServiceTopologyView, TopologyServiceParams, TopologyView } from '../schemas/topology.js';

export interface TopologyRoutesOptions {
  topology: TopologyService;
}

export function serviceTopologyView(entry: ServiceTopology): ServiceTopologyView {
  return { service: entry.service, queue: entry.queue, consumes: entry.consumes, declaredAt: entry.declaredAt.toISOString() };
}

export function topologyView(topology: Topology): TopologyView {
  return { services: topology.services.map(serviceTopologyView), types: topology.types };
}

const tags = ['topology'];

/** `/api/v1/topology`: which service consumes which message types. */
export const topologyRoutes: FastifyPluginAsyncTypebox<TopologyRoutesOptions> = async (app, { topology }) => {
  app.get(
    '/topology',
    {
      config: { permission: 'topology:read' },
      schema: { tags, summary: 'Every service\'s consumed message types, and for each message type the services that consume it.', response: { 200: TopologyView, ...authErrorResponses } },
    },
    async () => topologyView(await topology.read()),
  );

  app.put(
    '/topology/services/:service',
    {
      config: { permission: 'topology:declare' },
      schema: {
        tags,
        summary: 'Declare the whole set of message types a service consumes, replacing its set. An agent token may declare only for its own services.',
        description:
          'Declaring the set the service has already changes nothing (no audit entry, no event). ' +
          'Errors: PORTICO_ERR_TOPOLOGY_INVALID_TYPE (a type that is not valid, or listed twice), PORTICO_ERR_TOPOLOGY_TOO_MANY_TYPES, ' +
          'PORTICO_ERR_TOPOLOGY_SERVICE_FORBIDDEN (an agent token for another service).',
        params: TopologyServiceParams,
        body: DeclareConsumesBody,
        response: { 200: ServiceTopologyView, ...authErrorResponses },
      },
    },
    async (request) => serviceTopologyView(await topology.declare(principalOf(request), request.params.service, request.body.consumes)),
  );

  app.delete(
    '/topology/services/:service',
    {
      config: { permission: 'topology:write' },
      schema: {
        tags,
        summary: 'Remove every subscription of a service; 404 (PORTICO_ERR_TOPOLOGY_SERVICE_NOT_FOUND) when it had none.',
        params: TopologyServiceParams,
        response: { 204: Type.Null(), ...authErrorResponses, 404: Type.Ref('ErrorResponse') },
      },
    },
    async (request, reply) => {
      await topology.remove(principalOf(request), request.params.service);
      return reply.code(204).send(null);
    },
  );
};
