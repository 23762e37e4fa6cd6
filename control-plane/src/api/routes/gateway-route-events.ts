import { fastifySSE, type SSEReplyInterface } from '@fastify/sse';
import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { PorticoError } from '../../errors.js';
import { type RouteChange } from '../../gateway/route-service.js';
import { authErrorResponses } from '../schemas/common.js';
import { type RouteChangedData } from '../schemas/gateway-route-events.js';
import { DEFAULT_KEEP_ALIVE_MS } from './registry-events.js';

export interface GatewayRouteEventRoutesOptions {
  /** The routes as the admin API changes them (`RouteService`). */
  routes: { subscribe(listener: (change: RouteChange) => void): () => void };
  /** Time between keep-alive comments (default 15 s). */
  keepAliveMs?: number;
  /** Changes a client may fall behind by before its stream is closed (default 1,000); it reconnects and re-reads. */
  maxQueuedEvents?: number;
}

function changeData(change: RouteChange): RouteChangedData {
  return { action: change.action, id: change.id, name: change.name, at: change.at.toISOString() };
}

/**
 * `GET /api/v1/routes/events`: the explicit routes' changes as Server-Sent Events, for gateways that
 * run apart from the control plane (`portico gateway`) and for the dashboard.
 *
 * Once the control plane has subscribed the client it sends the comment `: connected`; from then on,
 * each change to a route is one `event: route.changed` with `data: RouteChangedData`. There is no
 * replay: a client reads `GET /api/v1/routes` after each `: connected` (so nothing that happened while
 * it was away is missed) and again after a `route.changed` (or applies the change it names). Events
 * carry no id, so a reconnecting client sends no `Last-Event-ID`. Auth and keep-alives are those of
 * `GET /api/v1/events`.
 */
export const gatewayRouteEventRoutes: FastifyPluginAsyncTypebox<GatewayRouteEventRoutesOptions> = async (app, options) => {
  const { routes, keepAliveMs = DEFAULT_KEEP_ALIVE_MS, maxQueuedEvents = 1_000 } = options;
  const open = new Set<SSEReplyInterface>();

  await app.register(fastifySSE, { heartbeatInterval: keepAliveMs });

  app.addHook('preClose', async () => {
    for (const sse of open) sse.close();
  });

  app.get(
    '/routes/events',
    {
      sse: 'manual',
      config: { permission: 'routes:read' },
      schema: {
        tags: ['routes'],
        summary: 'The explicit routes\' changes as Server-Sent Events; read /api/v1/routes after ": connected" and after each change.',
        description:
          'Events: route.changed (data: RouteChangedData: action created, updated or deleted, the route\'s id and name, and when). ' +
          'The stream opens with the comment ": connected" once the client is subscribed; nothing is replayed, so a client reads ' +
          `GET /api/v1/routes after it. A comment line is sent every ${keepAliveMs / 1000} s to keep the connection open.`,
        response: {
          200: { description: 'An endless text/event-stream.', content: { 'text/event-stream': { schema: { type: 'string' } } } },
          ...authErrorResponses,
          503: { $ref: 'ErrorResponse' },
        },
      },
    },
    async (request, reply) => {
      const sse = reply.sse;
      sse.keepAlive();
      let writes: Promise<void> = Promise.resolve();
      let queued = 0;
      const unsubscribe = routes.subscribe((change) => {
        if (!sse.isConnected) return;
        if (queued >= maxQueuedEvents) {
          request.log.warn({ queued }, 'closing a route event stream whose reader fell behind; it reconnects and reads the routes again');
          sse.close();
          return;
        }
        queued++;
        // send() waits for 'drain' under backpressure; chaining keeps the order while it does.
        writes = writes
          .then(() => (sse.isConnected ? sse.send({ event: 'route.changed', data: changeData(change) }) : undefined))
          .catch((error: unknown) => request.log.debug({ err: error }, 'route event not delivered: the stream closed'))
          .finally(() => {
            queued--;
          });
      });
      sse.onClose(() => {
        unsubscribe();
        open.delete(sse);
      });
      open.add(sse);
      if (!sse.isConnected) {
        unsubscribe();
        open.delete(sse);
        throw new PorticoError('PORTICO_ERR_SERVER_SHUTTING_DOWN');
      }
      // Subscribed before this line: a client that reads the routes after it misses no change.
      sse.sendHeaders();
      reply.raw.write(': connected\n\n');
    },
  );
};
