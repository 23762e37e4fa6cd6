import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type FastifyReply } from 'fastify';
import { type InstanceQuery } from '../registry/registry-backend.js';
import { compareStrings, type Instance } from '../registry/registry.js';
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
  const instances = value.filter((instance) => tags.every((tag) => instance.tags.includes(tag))).sort((a, b) => compareStrings(a.id, b.id));
  return { index, instances };
}

/**
 * Each instance's JSON, rendered once per instance snapshot. Backends never change an `Instance` in
 * place (a change makes a new object), so a snapshot's rendering stays exact, and the many readers of
 * a service between two changes (gateways, watchers) reuse it instead of rebuilding every entry.
 */
function renderOnce(cache: WeakMap<Instance, string>, render: (instance: Instance) => unknown): (instance: Instance) => string {
  return (instance) => {
    let json = cache.get(instance);
    if (json === undefined) {
      json = JSON.stringify(render(instance));
      cache.set(instance, json);
    }
    return json;
  };
}

/**
 * `/v1/catalog/*` and `/v1/health/*`: the reads service discovery uses, all of them blocking queries
 * (`?index=&wait=`) on the index of what they read: the registry's for the service list, the service's
 * for one service.
 */
export const catalogRoutes: FastifyPluginAsyncTypebox<ConsulRouteContext> = async (app, { registry, node, blocking }) => {
  const catalogJson = renderOnce(new WeakMap(), (instance) => catalogService(instance, node));
  const healthJson = renderOnce(new WeakMap(), (instance) => healthServiceEntry(instance, node));
  const sendArray = (reply: FastifyReply, items: string[]) => reply.type('application/json; charset=utf-8').send(`[${items.join(',')}]`);

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
      return sendArray(reply, instances.map(catalogJson));
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
      return sendArray(reply, instances.map(healthJson));
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
