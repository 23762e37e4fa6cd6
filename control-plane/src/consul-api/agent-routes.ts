import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { principalOf } from '../api/auth.js';
import { mayManageService, type Principal } from '../auth/token-service.js';
import { PorticoError } from '../errors.js';
import { type RegistryService } from '../registry/registry-service.js';
import { compareStrings, type HealthStatus, type Instance } from '../registry/registry.js';
import { type ConsulQuery, queryBool, queryValue } from './blocking-query.js';
import { agentSelf, agentService, serviceChecks, toInstanceRegistration, truncateOutput } from './consul-mapping.js';
import { type ConsulRouteContext, refuseOtherMethods, sendJson, setReadHeaders } from './route-support.js';
import { canonicalCheckUpdate, canonicalServiceDefinition, ConsulCheckUpdate, ConsulServiceDefinition } from './service-definition.js';

interface IdParams {
  id: string;
}
const IdParams = Type.Object({ id: Type.String() });

/**
 * Report a result for a TTL check, as Consul's pass/warn/fail/update do. HTTP and TCP checks are
 * refused as Consul refuses them: their status is what the control plane's own probes find.
 */
async function reportTtl(registry: RegistryService, actor: Principal, checkId: string, status: HealthStatus, output: string): Promise<void> {
  const owner = await registry.backend.instanceOfCheck(checkId);
  if (owner === undefined) {
    throw new PorticoError('PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND', { message: `No check has the id "${checkId}".`, details: { checkId } });
  }
  if (!mayManageService(actor, owner.service)) {
    throw new PorticoError('PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN', {
      message: `The token "${actor.name}" may not register or change instances of the service "${owner.service}".`,
      details: { service: owner.service },
    });
  }
  const check = owner.checks.find((candidate) => candidate.id === checkId);
  if (check !== undefined && check.kind !== 'ttl') {
    throw new PorticoError('PORTICO_ERR_REGISTRY_INVALID_CHECK', {
      message: `CheckID "${checkId}" does not have associated TTL: it is an ${check.kind} check, whose status the control plane's probes set.`,
      details: { checkId },
    });
  }
  await registry.reportCheck(actor, checkId, status, truncateOutput(output));
}

/** Every registered instance, by service name then id. */
async function allInstances(registry: RegistryService): Promise<{ index: number; instances: Instance[] }> {
  const { index, value: services } = await registry.backend.services();
  const lists = await Promise.all(services.map((service) => registry.backend.instances({ service: service.name })));
  const instances = lists.flatMap((list) => list.value).sort((a, b) => compareStrings(a.service, b.service) || compareStrings(a.id, b.id));
  return { index, instances };
}

/**
 * `/v1/agent/*`: register and deregister services, report TTL checks, maintenance, and the agent's
 * view of what is registered. Portico is the only agent, so its services are every instance.
 */
export const agentRoutes: FastifyPluginAsyncTypebox<ConsulRouteContext> = async (app, { registry, node }) => {
  app.put(
    '/agent/service/register',
    {
      config: { consulAccess: 'registry:write' },
      schema: { hide: true, body: ConsulServiceDefinition },
      preValidation: async (request: FastifyRequest) => {
        request.body = canonicalServiceDefinition(request.body);
      },
    },
    async (request, reply) => {
      // ?replace-existing-checks is accepted and has no effect: a registration always replaces the checks.
      const registration = toInstanceRegistration(request.body, request.ip);
      await registry.register(principalOf(request), registration);
      return reply.send();
    },
  );
  refuseOtherMethods(app, '/agent/service/register', ['PUT']);

  // GET too: Consul before 1.0 took any method here, and python-consul 0.7 still sends GET.
  app.route<{ Params: IdParams }>({
    method: ['PUT', 'GET'],
    url: '/agent/service/deregister/:id',
    config: { consulAccess: 'registry:write' },
    schema: { hide: true },
    handler: async (request, reply) => {
      await registry.deregister(principalOf(request), request.params.id);
      return reply.send();
    },
  });
  refuseOtherMethods(app, '/agent/service/deregister/:id', ['PUT', 'GET']);

  const results = { pass: 'passing', warn: 'warning', fail: 'critical' } as const;
  for (const [verb, status] of Object.entries(results)) {
    const url = `/agent/check/${verb}/:id`;
    app.route<{ Params: IdParams; Querystring: ConsulQuery }>({
      method: ['PUT', 'GET'],
      url,
      config: { consulAccess: 'registry:write' },
      schema: { hide: true },
      handler: async (request, reply) => {
        await reportTtl(registry, principalOf(request), request.params.id, status, queryValue(request.query, 'note') ?? '');
        return reply.send();
      },
    });
    refuseOtherMethods(app, url, ['PUT', 'GET']);
  }

  app.put(
    '/agent/check/update/:id',
    {
      config: { consulAccess: 'registry:write' },
      schema: { hide: true, params: IdParams, body: ConsulCheckUpdate },
      preValidation: async (request: FastifyRequest) => {
        request.body = canonicalCheckUpdate(request.body);
      },
    },
    async (request, reply) => {
      await reportTtl(registry, principalOf(request), request.params.id, request.body.Status, request.body.Output ?? '');
      return reply.send();
    },
  );
  refuseOtherMethods(app, '/agent/check/update/:id', ['PUT']);

  app.put<{ Params: IdParams; Querystring: ConsulQuery }>(
    '/agent/service/maintenance/:id',
    { config: { consulAccess: 'registry:write' }, schema: { hide: true } },
    async (request, reply) => {
      const enable = queryValue(request.query, 'enable');
      if (enable === undefined || enable === '') {
        throw new PorticoError('PORTICO_ERR_REQUEST_INVALID', {
          message: 'Missing value for enable: send ?enable=true or ?enable=false.',
          details: [{ location: 'querystring/enable', problem: 'required' }],
        });
      }
      const enabled = queryBool(request.query, 'enable') ?? false;
      await registry.setMaintenance(principalOf(request), request.params.id, enabled, enabled ? (queryValue(request.query, 'reason') ?? '') : undefined);
      return reply.send();
    },
  );
  refuseOtherMethods(app, '/agent/service/maintenance/:id', ['PUT']);

  app.get('/agent/services', { config: { consulAccess: 'registry:read' }, schema: { hide: true } }, async (_request, reply) => {
    const { index, instances } = await allInstances(registry);
    setReadHeaders(reply, index);
    return sendJson(reply, Object.fromEntries(instances.map((instance) => [instance.id, agentService(instance, node)])));
  });
  refuseOtherMethods(app, '/agent/services', ['GET']);

  app.get('/agent/checks', { config: { consulAccess: 'registry:read' }, schema: { hide: true } }, async (_request, reply) => {
    const { index, instances } = await allInstances(registry);
    setReadHeaders(reply, index);
    const checks = instances.flatMap((instance) => serviceChecks(instance, node));
    return sendJson(reply, Object.fromEntries(checks.map((check) => [check.CheckID, check])));
  });
  refuseOtherMethods(app, '/agent/checks', ['GET']);

  app.get('/agent/self', { config: { consulAccess: 'registry:read' }, schema: { hide: true } }, async (_request, reply) => {
    setReadHeaders(reply, (await registry.backend.services()).index);
    return sendJson(reply, agentSelf(node));
  });
  refuseOtherMethods(app, '/agent/self', ['GET']);
};
