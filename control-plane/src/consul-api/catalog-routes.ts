import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type InstanceQuery } from '../registry/registry-backend.js';
import { type Instance } from '../registry/registry.js';
import { type RegistryService } from '../registry/registry-service.js';
import { type ConsulQuery, parseReadOptions, queryBool, queryValues } from './blocking-query.js';
import { catalogService, healthServiceEntry, serviceChecks } from './consul-mapping.js';
import { type ConsulRouteContext, refuseOtherMethods, sendJson, setReadHeaders } from './route-support.js';

interface NameParams {
  name: string;
}

/** A service's instances with every `?tag=` (Consul requires all of them), and passing only when asked. */
async function readInstances(registry: RegistryService, name: string, tags: string[], passingOnly: boolean): Promise<{ index: number; instances: Instance[] }> {
  const query: InstanceQuery = { service: name, passingOnly };
  if (tags[0] !== undefined) query.tag = tags[0];
  const { index, value } = await registry.backend.instances(query);
  const instances = value.filter((instance) => tags.every((tag) => instance.tags.includes(tag))).sort((a, b) => a.id.localeCompare(b.id));
  return { index, instances };
}

/**
 * `/v1/catalog/*` and `/v1/health/*`: the reads service discovery uses, all of them blocking queries
 * (`?index=&wait=`) on the index of what they read: the registry's for the service list, the service's
 * for one service.
 */
export const catalogRoutes: FastifyPluginAsyncTypebox<ConsulRouteContext> = async (app, { registry, node, blocking }) => {
  app.get<{ Querystring: ConsulQuery }>('/catalog/services', { config: { consulAccess: 'registry:read' }, schema: { hide: true } }, async (request, reply) => {
    const read = parseReadOptions(request.query, node.datacenter);
    await blocking.wait(read, undefined, reply.raw);
    const { index, value } = await registry.backend.services();
    setReadHeaders(reply, index, read.consistency);
    return sendJson(reply, Object.fromEntries(value.map((service) => [service.name, service.tags])));
  });
  refuseOtherMethods(app, '/catalog/services', ['GET']);

  app.get<{ Params: NameParams; Querystring: ConsulQuery }>(
    '/catalog/service/:name',
    { config: { consulAccess: 'registry:read' }, schema: { hide: true } },
    async (request, reply) => {
      const read = parseReadOptions(request.query, node.datacenter);
      await blocking.wait(read, request.params.name, reply.raw);
      const { index, instances } = await readInstances(registry, request.params.name, queryValues(request.query, 'tag'), false);
      setReadHeaders(reply, index, read.consistency);
      return sendJson(reply, instances.map((instance) => catalogService(instance, node)));
    },
  );
  refuseOtherMethods(app, '/catalog/service/:name', ['GET']);

  app.get<{ Params: NameParams; Querystring: ConsulQuery }>(
    '/health/service/:name',
    { config: { consulAccess: 'registry:read' }, schema: { hide: true } },
    async (request, reply) => {
      const read = parseReadOptions(request.query, node.datacenter);
      const passingOnly = queryBool(request.query, 'passing') ?? false;
      await blocking.wait(read, request.params.name, reply.raw);
      const { index, instances } = await readInstances(registry, request.params.name, queryValues(request.query, 'tag'), passingOnly);
      setReadHeaders(reply, index, read.consistency);
      return sendJson(reply, instances.map((instance) => healthServiceEntry(instance, node)));
    },
  );
  refuseOtherMethods(app, '/health/service/:name', ['GET']);

  app.get<{ Params: NameParams; Querystring: ConsulQuery }>(
    '/health/checks/:name',
    { config: { consulAccess: 'registry:read' }, schema: { hide: true } },
    async (request, reply) => {
      const read = parseReadOptions(request.query, node.datacenter);
      await blocking.wait(read, request.params.name, reply.raw);
      const { index, instances } = await readInstances(registry, request.params.name, [], false);
      setReadHeaders(reply, index, read.consistency);
      return sendJson(reply, instances.flatMap((instance) => serviceChecks(instance, node)));
    },
  );
  refuseOtherMethods(app, '/health/checks/:name', ['GET']);
};
