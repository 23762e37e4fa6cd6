import { fastifySSE, type SSEReplyInterface } from '@fastify/sse';
import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { PorticoError } from '../../errors.js';
import { type Topology } from '../../messaging/topology.js';
import { type TopologyChange } from '../../messaging/topology-service.js';
import { authErrorResponses } from '../schemas/common.js';
import { DEFAULT_KEEP_ALIVE_MS } from './registry-events.js';
import { topologyView } from './topology.js';

export interface TopologyEventRoutesOptions {
  /** The topology as the admin API changes it (`TopologyService`). */
  topology: { read(): Promise<Topology>; subscribe(listener: (change: TopologyChange) => void): () => void };
  /** Time between keep-alive comments (default 15 s). */
  keepAliveMs?: number;
}

/** The event each topology document is sent as. */
export const TOPOLOGY_EVENT = 'topology';

/**
 * `GET /api/v1/topology/events`: the message topology as Server-Sent Events, for the dashboard and for
 * producers that route events to their subscribers' queues.
 *
 * Once the client is subscribed, the stream sends the comment `: connected` (as the other streams do:
 * clients reset their reconnection backoff on it), then `event: topology` with the whole topology (the
 * body of `GET /api/v1/topology`), then the whole topology again after every change. Each document replaces
 * the last, so there is nothing to replay: events carry no id, a reconnecting client sends no
 * `Last-Event-ID`, and its first event is the topology as it is then. Changes that arrive while a
 * document is being read or written are folded into the next one, so a slow reader is never more than
 * one document behind and costs no memory per change; it may skip intermediate states, never the last.
 * Auth and keep-alives are those of `GET /api/v1/routes/events`.
 */
export const topologyEventRoutes: FastifyPluginAsyncTypebox<TopologyEventRoutesOptions> = async (app, options) => {
  const { topology, keepAliveMs = DEFAULT_KEEP_ALIVE_MS } = options;
  const open = new Set<SSEReplyInterface>();

  await app.register(fastifySSE, { heartbeatInterval: keepAliveMs });

  app.addHook('preClose', async () => {
    for (const sse of open) sse.close();
  });

  app.get(
    '/topology/events',
    {
      sse: 'manual',
      config: { permission: 'topology:read' },
      schema: {
        tags: ['topology'],
        summary: 'The message topology as Server-Sent Events: the whole document first, and again after every change.',
        description:
          `Events: ${TOPOLOGY_EVENT} (data: the body of GET /api/v1/topology). The stream opens with the comment ": connected" once the client is subscribed, then the first, ` +
          'then one after every change; each replaces the one before. Events carry no id (there is nothing to replay). ' +
          `A comment line is sent every ${keepAliveMs / 1000} s to keep the connection open.`,
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
      // A read is queued and has not started: a change now is already covered by it.
      let pending = false;
      const sendTopology = (): void => {
        if (pending) return;
        pending = true;
        // send() waits for 'drain' under backpressure; chaining keeps the documents in order while it does.
        writes = writes
          .then(async () => {
            pending = false;
            if (!sse.isConnected) return;
            const document = topologyView(await topology.read());
            if (sse.isConnected) await sse.send({ event: TOPOLOGY_EVENT, data: document });
          })
          .catch((error: unknown) => {
            if (!sse.isConnected) {
              request.log.debug({ err: error }, 'topology not delivered: the stream closed');
              return;
            }
            // The client would hold a topology it cannot know is stale: close, so it reconnects and reads afresh.
            request.log.warn({ err: error }, 'closing a topology event stream: the topology could not be read');
            sse.close();
          });
      };
      const unsubscribe = topology.subscribe(sendTopology);
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
      // Subscribed before the first read: a change committed after it starts is sent after it.
      sse.sendHeaders();
      reply.raw.write(': connected\n\n');
      sendTopology();
    },
  );
};
