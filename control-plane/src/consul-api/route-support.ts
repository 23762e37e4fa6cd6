import { type FastifyInstance, type FastifyReply, type HTTPMethods } from 'fastify';
import { PorticoError } from '../errors.js';
import { type RegistryService } from '../registry/registry-service.js';
import { type BlockingQueries, type Consistency } from './blocking-query.js';
import { type ConsulNode } from './consul-mapping.js';

/** What the Consul-compatible routes share. */
export interface ConsulRouteContext {
  registry: RegistryService;
  node: ConsulNode;
  blocking: BlockingQueries;
}

/** Consul's read headers: the index the answer reflects, and a leader that is always known. */
export function setReadHeaders(reply: FastifyReply, index: number, consistency: Consistency = 'default'): void {
  void reply.headers({
    'x-consul-index': String(index),
    'x-consul-knownleader': 'true',
    'x-consul-lastcontact': '0',
    'x-consul-effective-consistency': consistency === 'default' ? 'leader' : consistency,
  });
}

/** Send any JSON value, strings included (Fastify would send a bare string as text). */
export function sendJson(reply: FastifyReply, value: unknown): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(JSON.stringify(value));
}

const METHODS: readonly HTTPMethods[] = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'];

/** Answer the methods `url` does not take with Consul's 405, rather than a misleading 404. */
export function refuseOtherMethods(scope: FastifyInstance, url: string, allowed: readonly HTTPMethods[]): void {
  const others = METHODS.filter((method) => !allowed.includes(method));
  scope.route({
    method: others,
    url,
    config: { consulAccess: 'open' },
    schema: { hide: true },
    handler: async (request, reply) => {
      void reply.header('allow', allowed.join(', '));
      throw new PorticoError('PORTICO_ERR_REQUEST_METHOD_NOT_ALLOWED', { message: `method ${request.method} not allowed on ${url}.` });
    },
  });
}
