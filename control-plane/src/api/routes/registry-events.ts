import { fastifySSE, type SSEMessage, type SSEReplyInterface } from '@fastify/sse';
import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type FastifyBaseLogger } from 'fastify';
import { PorticoError } from '../../errors.js';
import { type RegistryBackend, type RegistryEvent } from '../../registry/registry-backend.js';
import { authErrorResponses } from '../schemas/common.js';
import { EventsHeaders, EventsQuerystring, type RegistrySnapshot } from '../schemas/registry.js';
import { eventData, instanceView } from './registry-views.js';

/** What the event stream needs: the backend to subscribe to and replay from, and its limits. */
export interface RegistryEventRoutesOptions {
  backend: RegistryBackend;
  /** Time between keep-alive comments (default 15 s): proxies close connections that stay silent. */
  keepAliveMs?: number;
  /**
   * Events a client may fall behind by before its stream is closed (default 1,000). It reconnects with
   * Last-Event-ID and is replayed what it missed, so a stalled reader costs a reconnect, not memory.
   */
  maxQueuedEvents?: number;
}

/** Keep-alive period of the app's event stream. */
export const DEFAULT_KEEP_ALIVE_MS = 15_000;

/** The whole registry, for a `reset` event. */
async function readSnapshot(backend: RegistryBackend): Promise<RegistrySnapshot> {
  const { index, value } = await backend.services();
  const services = await Promise.all(
    value.map(async (service) => ({ name: service.name, instances: (await backend.instances({ service: service.name })).value.map(instanceView) })),
  );
  return { index, services };
}

/**
 * One client's stream. Events arriving while the replay (or snapshot) is worked out are held, then
 * sent after it; each event goes out once, in index order, whichever way it came.
 */
class EventStream {
  readonly #sse: SSEReplyInterface;
  readonly #log: FastifyBaseLogger;
  readonly #maxQueued: number;
  /** Events held until the stream goes live. */
  #held: RegistryEvent[] | undefined = [];
  #lastIndex = -1;
  #writes: Promise<void> = Promise.resolve();
  #queued = 0;

  constructor(sseReply: SSEReplyInterface, log: FastifyBaseLogger, maxQueued: number) {
    this.#sse = sseReply;
    this.#log = log;
    this.#maxQueued = maxQueued;
  }

  get connected(): boolean {
    return this.#sse.isConnected;
  }

  /** A change from the backend's subscription. */
  push(event: RegistryEvent): void {
    if (this.#held !== undefined) this.#held.push(event);
    else this.#sendEvent(event);
  }

  /** Events the client missed, from `eventsSince`. */
  replay(events: RegistryEvent[]): void {
    for (const event of events) this.#sendEvent(event);
  }

  /** The whole registry in place of a replay: the client must drop what it holds and start from this. */
  reset(snapshot: RegistrySnapshot): void {
    this.#lastIndex = snapshot.index;
    this.#write({ id: String(snapshot.index), event: 'reset', data: snapshot });
  }

  /** Send what was held, then every event as it arrives. */
  goLive(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const event of held) this.#sendEvent(event);
  }

  close(): void {
    this.#sse.close();
  }

  #sendEvent(event: RegistryEvent): void {
    if (event.index <= this.#lastIndex) return;
    this.#lastIndex = event.index;
    this.#write({ id: String(event.index), event: event.type, data: eventData(event) });
  }

  #write(message: SSEMessage): void {
    if (!this.#sse.isConnected) return;
    if (this.#queued >= this.#maxQueued) {
      this.#log.warn({ queued: this.#queued }, 'closing a registry event stream whose reader fell behind; it can resume with Last-Event-ID');
      this.close();
      return;
    }
    this.#queued++;
    // send() waits for 'drain' under backpressure; chaining keeps the order while it does.
    this.#writes = this.#writes
      .then(() => (this.#sse.isConnected ? this.#sse.send(message) : undefined))
      .catch((error: unknown) => this.#log.debug({ err: error }, 'registry event not delivered: the stream closed'))
      .finally(() => {
        this.#queued--;
      });
  }
}

/**
 * `GET /api/v1/events`: the registry's changes as Server-Sent Events, built on `@fastify/sse`.
 *
 * Each message is `id: <index>`, `event: <type>` (`instance.registered`, `instance.updated`,
 * `instance.health_changed`, `instance.deregistered`) and `data: <JSON>`. A client resumes with the
 * `Last-Event-ID` header (or `?since=`, which the header overrides, so a browser's reconnect wins over
 * the URL it first used): it is sent exactly the changes after that index; when those are no longer
 * held (too old, or the control plane restarted), it gets one `reset` event with the whole registry
 * (`{ index, services: [{ name, instances }] }`) and live events after it. Without either, the stream
 * carries live events only; `?since=0` starts it with the whole registry.
 *
 * A snapshot is read service by service, so it may already reflect a change that follows it on the
 * stream; applying events as "set this instance" / "remove this instance" makes that harmless.
 *
 * Streams are closed when the client goes, when it falls too far behind, and on `preClose` (before the
 * server stops listening, so `app.close()` does not wait on them).
 */
export const registryEventRoutes: FastifyPluginAsyncTypebox<RegistryEventRoutesOptions> = async (app, options) => {
  const { backend, keepAliveMs = DEFAULT_KEEP_ALIVE_MS, maxQueuedEvents = 1_000 } = options;
  const open = new Set<EventStream>();

  // The named export is the same function the package's default export is, marked by fastify-plugin, so
  // its onRoute hook reaches the route below (the typings' default export does not resolve under NodeNext).
  await app.register(fastifySSE, { heartbeatInterval: keepAliveMs });

  app.addHook('preClose', async () => {
    for (const stream of open) stream.close();
  });

  app.get(
    '/events',
    {
      // 'manual': no Accept negotiation, so every error keeps Portico's JSON shape.
      sse: 'manual',
      config: { permission: 'registry:read' },
      schema: {
        tags: ['registry'],
        summary: 'The registry\'s changes as Server-Sent Events; resume with Last-Event-ID.',
        description:
          'Events: instance.registered, instance.updated, instance.health_changed, instance.deregistered (data: RegistryEventData), ' +
          'and reset (data: RegistrySnapshot) when the changes after Last-Event-ID are no longer held. The SSE id is the registry index. ' +
          `A comment line is sent every ${keepAliveMs / 1000} s to keep the connection open.`,
        querystring: EventsQuerystring,
        headers: EventsHeaders,
        response: {
          200: { description: 'An endless text/event-stream.', content: { 'text/event-stream': { schema: { type: 'string' } } } },
          ...authErrorResponses,
          503: { $ref: 'ErrorResponse' },
        },
      },
    },
    async (request, reply) => {
      const header = request.headers['last-event-id'];
      const after = header === undefined ? request.query.since : Number(header);
      const stream = new EventStream(reply.sse, request.log, maxQueuedEvents);
      reply.sse.keepAlive();

      // Subscribe before reading what was missed, so nothing falls between the two.
      let unsubscribe: (() => void) | undefined = backend.subscribe((event) => stream.push(event));
      const release = () => {
        unsubscribe?.();
        unsubscribe = undefined;
        open.delete(stream);
      };
      reply.sse.onClose(release);
      open.add(stream);

      let missed: RegistryEvent[] | undefined = [];
      let snapshot: RegistrySnapshot | undefined;
      try {
        if (after !== undefined) {
          // An index ahead of the registry's means the registry was reset: nothing can be replayed.
          const current = (await backend.services()).index;
          missed = after > current ? undefined : backend.eventsSince(after);
          if (missed === undefined) snapshot = await readSnapshot(backend);
        }
      } catch (error) {
        release();
        throw error;
      }
      if (!stream.connected) {
        // Closed while the replay was read: by the client (nobody to answer) or by shutdown.
        release();
        throw new PorticoError('PORTICO_ERR_SERVER_SHUTTING_DOWN');
      }
      // Clients count as connected once they have the headers: send them now, not with the first event.
      reply.sse.sendHeaders();
      reply.raw.write(': connected\n\n');
      if (snapshot !== undefined) stream.reset(snapshot);
      else stream.replay(missed ?? []);
      stream.goLive();
    },
  );
};
