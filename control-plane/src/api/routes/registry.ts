import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PorticoError } from '../../errors.js';
import { type RegistryService } from '../../registry/registry-service.js';
import { type CheckState, type Instance, instanceHealth } from '../../registry/registry.js';
import { principalOf } from '../auth.js';
import { authErrorResponses } from '../schemas/common.js';
import {
  HeartbeatBody,
  InstanceHealthView,
  InstanceParams,
  InstanceRegistrationBody,
  InstanceView,
  MaintenanceBody,
  ServiceDetail,
  ServiceList,
  ServiceParams,
} from '../schemas/registry.js';
import { prometheusSdRoutes } from './prometheus-sd.js';
import { registryEventRoutes } from './registry-events.js';
import { toInstanceRegistration } from './registry-registration.js';
import { checkView, instanceView } from './registry-views.js';

/** The registry, as the API changes it (authorised, audited). */
export interface RegistryRoutesOptions {
  registry: RegistryService;
  /** Time between keep-alive comments on the event stream (default 15 s). */
  keepAliveMs?: number;
}

const notFound = Type.Ref('ErrorResponse');

/** The instance, or a 404. */
async function requireInstance(registry: RegistryService, instanceId: string): Promise<Instance> {
  const instance = await registry.backend.instance(instanceId);
  if (instance === undefined) {
    throw new PorticoError('PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND', { message: `No instance has the id "${instanceId}".`, details: { instanceId } });
  }
  return instance;
}

/**
 * The TTL check a heartbeat goes to: the one named, or the instance's only TTL check. Heartbeats for
 * HTTP or TCP checks are refused: the control plane probes those itself, and a report would be
 * overwritten by the next probe anyway.
 */
function heartbeatTarget(instance: Instance, checkId: string | undefined): CheckState {
  if (checkId !== undefined) {
    const named = instance.checks.find((check) => check.id === checkId);
    if (named === undefined) {
      throw new PorticoError('PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND', {
        message: `The instance "${instance.id}" has no check "${checkId}".`,
        details: { instanceId: instance.id, checkId },
      });
    }
    if (named.kind !== 'ttl') {
      throw new PorticoError('PORTICO_ERR_REGISTRY_INVALID_CHECK', {
        message: `The check "${checkId}" is an ${named.kind} check: only ttl checks take heartbeats.`,
        details: [{ location: 'body/checkId', problem: `"${checkId}" is a ${named.kind} check, not a ttl check` }],
      });
    }
    return named;
  }
  const ttl = instance.checks.filter((check) => check.kind === 'ttl');
  if (ttl.length === 1 && ttl[0] !== undefined) return ttl[0];
  throw new PorticoError('PORTICO_ERR_REGISTRY_INVALID_CHECK', {
    message:
      ttl.length === 0
        ? `The instance "${instance.id}" has no ttl check to take a heartbeat.`
        : `The instance "${instance.id}" has several ttl checks (${ttl.map((check) => check.id).join(', ')}): name one with "checkId".`,
    details: [{ location: 'body/checkId', problem: ttl.length === 0 ? 'the instance has no ttl check' : 'required: the instance has several ttl checks' }],
  });
}

/**
 * The registry's admin API: `/api/v1/services`, `/api/v1/instances`, `/api/v1/events` (see
 * `registry-events.ts`) and `/api/v1/sd/prometheus` (see `prometheus-sd.ts`). Reads go to the backend;
 * every change goes through `RegistryService`, which checks that the caller may manage the service
 * and audits it.
 */
export const registryRoutes: FastifyPluginAsyncTypebox<RegistryRoutesOptions> = async (app, { registry, keepAliveMs }) => {
  app.get(
    '/services',
    {
      config: { permission: 'registry:read' },
      schema: {
        tags: ['registry'],
        summary: 'Every service with at least one instance, with its tags and how many instances have each health.',
        response: { 200: ServiceList, ...authErrorResponses },
      },
    },
    async () => {
      const { index, value } = await registry.backend.services();
      return { services: value, index };
    },
  );

  app.get(
    '/services/:name',
    {
      config: { permission: 'registry:read' },
      schema: {
        tags: ['registry'],
        summary: 'One service\'s instances, with their checks and health. 404 when it has none.',
        params: ServiceParams,
        response: { 200: ServiceDetail, ...authErrorResponses, 404: notFound },
      },
    },
    async (request) => {
      const { name } = request.params;
      const { index, value } = await registry.backend.instances({ service: name });
      if (value.length === 0) {
        throw new PorticoError('PORTICO_ERR_REGISTRY_SERVICE_NOT_FOUND', { message: `The service "${name}" has no instances.`, details: { service: name } });
      }
      return { name, instances: value.map(instanceView), index };
    },
  );

  app.put(
    '/instances/:id',
    {
      config: { permission: 'registry:write' },
      schema: {
        tags: ['registry'],
        summary: 'Register an instance, or re-register it (its checks keep their health when their id and kind stay).',
        description:
          'Durations are Go-style strings ("500ms", "10s", "1m30s"); intervals, TTLs and deregisterCriticalAfter are at least 100ms. ' +
          'An agent token may register only the services it was issued for. 201 when the instance is new, 200 when it was registered already.',
        params: InstanceParams,
        body: InstanceRegistrationBody,
        response: { 200: InstanceView, 201: InstanceView, ...authErrorResponses, 409: Type.Ref('ErrorResponse') },
      },
    },
    async (request, reply) => {
      const registration = toInstanceRegistration(request.params.id, request.body);
      // Only for the status code: a concurrent first registration of the same id may also see 201.
      const existed = (await registry.backend.instance(registration.id)) !== undefined;
      const instance = await registry.register(principalOf(request), registration);
      return reply.code(existed ? 200 : 201).send(instanceView(instance));
    },
  );

  app.delete(
    '/instances/:id',
    {
      config: { permission: 'registry:write' },
      schema: {
        tags: ['registry'],
        summary: 'Deregister an instance at once.',
        params: InstanceParams,
        response: { 204: Type.Null(), ...authErrorResponses, 404: notFound },
      },
    },
    async (request, reply) => {
      await registry.deregister(principalOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.put(
    '/instances/:id/health',
    {
      config: { permission: 'registry:write' },
      schema: {
        tags: ['registry'],
        summary: 'A TTL heartbeat: set the instance\'s ttl check (the one named by checkId when it has several) and restart its TTL.',
        params: InstanceParams,
        body: HeartbeatBody,
        response: { 200: InstanceHealthView, ...authErrorResponses, 404: notFound },
      },
    },
    async (request) => {
      const { status, output, checkId } = request.body;
      const target = heartbeatTarget(await requireInstance(registry, request.params.id), checkId);
      const instance = await registry.reportCheck(principalOf(request), target.id, status, output);
      const check = instance.checks.find((candidate) => candidate.id === target.id);
      if (check === undefined) throw new PorticoError('PORTICO_ERR_INTERNAL', { message: 'The reported check is missing from its instance.' });
      return { instanceId: instance.id, service: instance.service, health: instanceHealth(instance), check: checkView(check) };
    },
  );

  app.put(
    '/instances/:id/maintenance',
    {
      config: { permission: 'registry:write' },
      schema: {
        tags: ['registry'],
        summary: 'Put an instance into maintenance (critical, no traffic) or take it out.',
        params: InstanceParams,
        body: MaintenanceBody,
        response: { 200: InstanceView, ...authErrorResponses, 404: notFound },
      },
    },
    async (request) => {
      const { enabled, reason } = request.body;
      return instanceView(await registry.setMaintenance(principalOf(request), request.params.id, enabled, reason));
    },
  );

  await app.register(registryEventRoutes, { backend: registry.backend, ...(keepAliveMs === undefined ? {} : { keepAliveMs }) });
  await app.register(prometheusSdRoutes, { backend: registry.backend });
};
