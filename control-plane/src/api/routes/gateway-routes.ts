import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from 'typebox';
import { parseDuration } from '../../config/duration.js';
import { PorticoError } from '../../errors.js';
import { type GatewayRoute, type RouteResilience, type RouteSpec } from '../../gateway/gateway-route.js';
import { hashApiKey } from '../../gateway/middlewares/api-key/api-key.js';
import { type RouteMiddlewares } from '../../gateway/middlewares/pipeline.js';
import { type RouteService } from '../../gateway/route-service.js';
import { principalOf } from '../auth.js';
import { authErrorResponses } from '../schemas/common.js';
import { RouteBody, RouteList, RouteParams, RouteView } from '../schemas/gateway-routes.js';

export interface GatewayRouteRoutesOptions {
  routes: RouteService;
}

function routeView(route: GatewayRoute) {
  return {
    id: route.id,
    name: route.name,
    pathPrefix: route.pathPrefix,
    service: route.service,
    host: route.host,
    methods: route.methods,
    stripPrefix: route.stripPrefix,
    timeout: route.timeoutMs === null ? null : `${route.timeoutMs}ms`,
    balancer: route.balancer,
    middlewares: middlewaresView(route.middlewares),
    resilience: resilienceView(route.resilience),
    createdAt: route.createdAt.toISOString(),
    updatedAt: route.updatedAt.toISOString(),
  };
}

function middlewaresView(middlewares: RouteMiddlewares) {
  const { aggregate, ...rest } = middlewares;
  if (aggregate === undefined) return rest;
  const { timeoutMs, ...parts } = aggregate;
  return { ...rest, aggregate: { ...parts, ...(timeoutMs === undefined ? {} : { timeout: `${timeoutMs}ms` }) } };
}

function resilienceView(resilience: RouteResilience) {
  const { circuitBreaker, ...rest } = resilience;
  if (circuitBreaker === undefined) return rest;
  const { openMs, ...breaker } = circuitBreaker;
  return { ...rest, circuitBreaker: { ...breaker, ...(openMs === undefined ? {} : { openFor: `${openMs}ms` }) } };
}

function toResilience(body: Static<typeof RouteBody>['resilience']): RouteResilience {
  if (body === undefined) return {};
  const { circuitBreaker, ...rest } = body;
  if (circuitBreaker === undefined) return rest;
  const { openFor, ...breaker } = circuitBreaker;
  return { ...rest, circuitBreaker: { ...breaker, ...(openFor === undefined ? {} : { openMs: readDuration(openFor, 'resilience/circuitBreaker/openFor') }) } };
}

function readDuration(text: string, location: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    throw new PorticoError('PORTICO_ERR_REQUEST_INVALID', {
      message: `Invalid route: ${location} ${error instanceof Error ? error.message : 'is not a duration'}.`,
      details: [{ location: `body/${location}`, problem: 'must be a duration such as "2s" or "500ms"' }],
    });
  }
}

function toSpec(body: Static<typeof RouteBody>): RouteSpec {
  const timeoutMs = body.timeout === undefined ? null : readDuration(body.timeout, 'timeout');
  return {
    name: body.name,
    pathPrefix: body.pathPrefix,
    host: body.host ?? null,
    methods: body.methods ?? null,
    service: body.service,
    stripPrefix: body.stripPrefix ?? false,
    timeoutMs,
    balancer: body.balancer ?? 'round_robin',
    middlewares: toMiddlewares(body.middlewares),
    resilience: toResilience(body.resilience),
  };
}

function toMiddlewares(body: Static<typeof RouteBody>['middlewares']): RouteMiddlewares {
  if (body === undefined) return {};
  const { cors, apiKey, rateLimit } = body;
  const out: RouteMiddlewares = {};
  if (cors !== undefined) out.cors = cors;
  if (body.jwt !== undefined) out.jwt = body.jwt;
  if (body.cache !== undefined) out.cache = body.cache;
  if (body.aggregate !== undefined) {
    const { timeout, parts } = body.aggregate;
    out.aggregate = { parts, ...(timeout === undefined ? {} : { timeoutMs: readDuration(timeout, 'middlewares/aggregate/timeout') }) };
  }
  if (rateLimit !== undefined) out.rateLimit = rateLimit as RouteMiddlewares['rateLimit'];
  if (apiKey !== undefined) {
    out.apiKey = {
      ...(apiKey.header === undefined ? {} : { header: apiKey.header }),
      keys: apiKey.keys.map((entry, i) => {
        if ((entry.key === undefined) === (entry.hash === undefined)) {
          throw new PorticoError('PORTICO_ERR_REQUEST_INVALID', {
            message: 'Invalid route: each API key gives either "key" or "hash".',
            details: [{ location: `body/middlewares/apiKey/keys/${i}`, problem: 'give either "key" or "hash"' }],
          });
        }
        return { name: entry.name, hash: entry.key === undefined ? (entry.hash as string) : hashApiKey(entry.key) };
      }),
    };
  }
  return out;
}

const tags = ['routes'];
const notFound = { 404: Type.Ref('ErrorResponse') };
const conflict = { 409: Type.Ref('ErrorResponse') };

/** `/api/v1/routes`: the gateway's explicit routes, applied as soon as they are written. */
export const gatewayRouteRoutes: FastifyPluginAsyncTypebox<GatewayRouteRoutesOptions> = async (app, { routes }) => {
  app.get(
    '/routes',
    { config: { permission: 'routes:read' }, schema: { tags, summary: 'Every explicit route, by name.', response: { 200: RouteList, ...authErrorResponses } } },
    async () => ({ routes: (await routes.list()).map(routeView) }),
  );

  app.get(
    '/routes/:id',
    { config: { permission: 'routes:read' }, schema: { tags, summary: 'One route.', params: RouteParams, response: { 200: RouteView, ...authErrorResponses, ...notFound } } },
    async (request) => routeView(await routes.get(request.params.id)),
  );

  app.post(
    '/routes',
    {
      config: { permission: 'routes:write' },
      schema: {
        tags,
        summary: 'Create a route. It takes effect at once; 409 when another route matches the same requests.',
        body: RouteBody,
        response: { 201: RouteView, ...authErrorResponses, ...conflict },
      },
    },
    async (request, reply) => reply.code(201).send(routeView(await routes.create(principalOf(request), toSpec(request.body)))),
  );

  app.put(
    '/routes/:id',
    {
      config: { permission: 'routes:write' },
      schema: { tags, summary: 'Replace a route. It takes effect at once.', params: RouteParams, body: RouteBody, response: { 200: RouteView, ...authErrorResponses, ...notFound, ...conflict } },
    },
    async (request) => routeView(await routes.update(principalOf(request), request.params.id, toSpec(request.body))),
  );

  app.delete(
    '/routes/:id',
    {
      config: { permission: 'routes:write' },
      schema: { tags, summary: 'Delete a route. It stops matching at once.', params: RouteParams, response: { 204: Type.Null(), ...authErrorResponses, ...notFound } },
    },
    async (request, reply) => {
      await routes.remove(principalOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
};
