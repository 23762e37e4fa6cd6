import { type AgentError } from '@portico/sdk';
import { Backoff } from '@portico/sdk/backoff';
import { type ControlPlaneClient } from '@portico/sdk/control-plane-client';
import { EventStream } from '@portico/sdk/discovery/event-stream';
import { parseDuration } from '../../config/duration.js';
import { type GatewayRoute } from '../gateway-route.js';
import { type ControlPlaneSourceOptions, deferred, refusedError, type SourceLogger, silentLogger, sourceClient } from './control-plane-source.js';
import { type GatewaySource, type SourceStatus } from './gateway-source.js';

type Json = Record<string, unknown>;

/**
 * Fields the API writes as duration strings (`"1500ms"`) where the gateway keeps milliseconds: where
 * they sit in a route, the API's name and the gateway's. A new duration field of the route view needs
 * its line here.
 */
const DURATIONS: ReadonlyArray<{ at: readonly string[]; api: string; gateway: string }> = [
  { at: [], api: 'timeout', gateway: 'timeoutMs' },
  { at: ['middlewares', 'aggregate'], api: 'timeout', gateway: 'timeoutMs' },
  { at: ['resilience', 'circuitBreaker'], api: 'openFor', gateway: 'openMs' },
];

/** Object fields a route may leave out in the view, and what they mean then. */
const EMPTY_OBJECTS = ['middlewares', 'resilience'];

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A route as `GET /api/v1/routes` shows it, back in the gateway's form: durations in milliseconds,
 * dates as `Date`s; API keys are shown hashed, as the gateway keeps them.
 * @throws Error naming the field when the view is not a route.
 */
export function routeFromView(view: unknown): GatewayRoute {
  if (!isObject(view)) throw new Error('a route must be an object');
  for (const field of ['id', 'name', 'pathPrefix', 'service', 'createdAt', 'updatedAt']) {
    if (typeof view[field] !== 'string') throw new Error(`the route's ${field} must be a string`);
  }
  const route = structuredClone(view);
  for (const field of EMPTY_OBJECTS) if (!isObject(route[field])) route[field] = {};
  for (const { at, api, gateway } of DURATIONS) {
    let holder: unknown = route;
    for (const key of at) holder = isObject(holder) ? holder[key] : undefined;
    if (!isObject(holder) || !(api in holder)) continue;
    const text = holder[api];
    delete holder[api];
    if (text !== null && typeof text !== 'string') throw new Error(`the route's ${[...at, api].join('/')} must be a duration`);
    holder[gateway] = text === null ? null : parseDuration(text);
  }
  route.createdAt = new Date(view.createdAt as string);
  route.updatedAt = new Date(view.updatedAt as string);
  return route as unknown as GatewayRoute;
}

/**
 * The explicit routes as a control plane's admin API shows them, for a gateway that runs on its own;
 * what `Gateway` takes as `routes` (`list`, `subscribe`), like `RouteService` in process.
 *
 * It follows `GET /api/v1/routes/events` (the SDK's event stream, reconnecting with capped, jittered
 * backoff) and reads `GET /api/v1/routes` whenever the stream is (re)subscribed, so nothing changed
 * while it was away is missed, and after each `route.changed`. Reads that a change overtakes are
 * followed by one more, never by one per change; subscribers are told only when the routes differ.
 * While the control plane is away the last routes read stay in force.
 */
export class ControlPlaneRouteSource implements GatewaySource {
  readonly #client: ControlPlaneClient;
  readonly #log: SourceLogger;
  readonly #stream: EventStream;
  readonly #retry: Backoff;
  readonly #listeners = new Set<() => void>();
  readonly #firstLoad = deferred();
  #routes: GatewayRoute[] = [];
  /** The last answer as read, to tell whether anything changed. */
  #lastRead = '';
  #reading: Promise<void> | undefined;
  #again = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #loaded = false;
  #live = false;
  #stale = true;
  #reason: string | undefined = 'not connected yet';
  #started = false;
  #closed = false;

  constructor(options: ControlPlaneSourceOptions) {
    this.#client = sourceClient(options);
    this.#log = options.logger ?? silentLogger;
    const reconnect = options.reconnect ?? { initialMs: 250, maxMs: 10_000 };
    this.#retry = new Backoff(reconnect);
    this.#stream = new EventStream(
      { client: this.#client, logger: this.#log, reconnect, path: 'routes/events', name: "the routes' event stream" },
      {
        onLive: () => this.#onLive(),
        onEvent: (event) => {
          if (event.event === 'route.changed') this.#read();
        },
        onDown: (error) => this.#onDown(error),
        onFatal: (error) => this.#onFatal(error),
      },
    );
  }

  start(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      this.#stream.open();
    }
    return this.#firstLoad.promise;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#stream.close();
    this.#client.close();
    this.#listeners.clear();
  }

  status(): SourceStatus {
    return { loaded: this.#loaded, live: this.#live && !this.#stale, ...(this.#reason === undefined ? {} : { reason: this.#reason }) };
  }

  /** The routes as last read. */
  async list(): Promise<GatewayRoute[]> {
    return this.#routes;
  }

  /** Be told when the routes changed (then `list()` has them). Returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #onLive(): void {
    if (!this.#live && this.#loaded) this.#log.info({}, "routes' event stream reconnected");
    this.#live = true;
    this.#reason = undefined;
    // Whatever changed while the stream was away: read it all again.
    this.#stale = true;
    this.#read();
  }

  #onDown(error: AgentError): void {
    if (this.#live || this.#reason === 'not connected yet') {
      this.#log.warn(
        { code: error.code, err: error.message },
        this.#loaded ? "routes' event stream lost: reconnecting; routing by the last routes read" : 'the control plane cannot be reached yet: retrying',
      );
    }
    this.#live = false;
    this.#reason = error.message;
  }

  #onFatal(error: AgentError): void {
    this.#live = false;
    this.#reason = error.message;
    this.#log.error({ code: error.code, statusCode: error.statusCode }, `${error.message}${this.#loaded ? '; routing by the last routes read' : ''}`);
    this.#firstLoad.reject(refusedError(error, 'following the routes'));
  }

  /** Read the routes; a read asked for while one runs happens once, after it. */
  #read(): void {
    if (this.#closed) return;
    clearTimeout(this.#retryTimer);
    if (this.#reading !== undefined) {
      this.#again = true;
      return;
    }
    this.#reading = (async () => {
      do {
        this.#again = false;
        await this.#readOnce();
      } while (this.#again && !this.#closed);
    })().finally(() => {
      this.#reading = undefined;
    });
  }

  async #readOnce(): Promise<void> {
    let body: unknown;
    try {
      body = await this.#client.read('reading the routes', 'routes');
    } catch (error) {
      this.#log.warn({ err: (error as Error).message }, 'reading the routes from the control plane failed: trying again');
      if (this.#live && !this.#again) this.#retryTimer = setTimeout(() => this.#read(), this.#retry.next());
      return;
    }
    this.#retry.reset();
    this.#stale = false;
    const text = JSON.stringify(body);
    if (text !== this.#lastRead) {
      this.#lastRead = text;
      const views = isObject(body) && Array.isArray(body.routes) ? (body.routes as unknown[]) : [];
      const routes: GatewayRoute[] = [];
      for (const view of views) {
        try {
          routes.push(routeFromView(view));
        } catch (error) {
          // One route this gateway cannot read must not take the others down.
          this.#log.error({ route: isObject(view) ? view.name : undefined, err: (error as Error).message }, 'ignoring a route that could not be read');
        }
      }
      this.#routes = routes;
      this.#log.info({ routes: routes.length }, 'routes read from the control plane');
      for (const listener of this.#listeners) listener();
    }
    if (!this.#loaded) {
      this.#loaded = true;
      this.#firstLoad.resolve();
    }
  }
}
