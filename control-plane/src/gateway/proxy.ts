import { type IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { type Duplex } from 'node:stream';
import { type UpstreamHandler } from './http1/upstream-pool.js';
import { type ErrorCode, ErrorCatalogue } from '../errors.js';
import { forwardRequestHeaders, forwardResponseHeaders } from './forward-headers.js';
import { type GatewayRequest, type GatewayResponse, requestBody, requestHeader } from './gateway-http.js';
import { type GatewayMetrics } from './gateway-metrics.js';
import { type MiddlewareContext, runMiddlewares } from './middlewares/middleware.js';
import { OutlierDetector } from './outlier-detector.js';
import { normaliseRequestPath } from './request-path.js';
import { sendError, writeRawError } from './respond.js';
import { RetryBudget } from './retry-budget.js';
import { type RouteMatch, type RouteTable, type ServiceRoute } from './route-table.js';
import { ServiceGuard, type ServiceGuardOptions } from './service-guard.js';
import { type Upstream } from './upstream.js';

export interface ProxyOptions {
  /** Time allowed for an instance to start answering (response headers), per attempt. */
  requestTimeoutMs: number;
  /** At most this many attempts per request (1: no retries). */
  maxAttempts: number;
  /** Retries allowed as a share of requests (0.2: at most 20 % extra load). */
  retryBudgetRatio: number;
  /** Each service's circuit breaker and bulkhead. */
  guard?: Omit<ServiceGuardOptions, 'onStateChange'>;
}

const CIRCUIT_STATE_VALUE = { closed: 0, half_open: 1, open: 2 } as const;

/** The route label of the discovery rule, `/<service>/<path>`. */
const DISCOVERY_ROUTE = 'discovery';
/** The service label of requests that named no routed service, so arbitrary paths never become label values. */
const NO_SERVICE = '(none)';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Failures before any answer came: the connection could not be made, or it closed (a keep-alive
 * connection the instance had just dropped) before a byte of the response. A body-less idempotent
 * request is safe to send to another instance after them.
 */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ERR_UPSTREAM_CONNECT_TIMEOUT', 'ERR_UPSTREAM_CLOSED']);

function errorKind(error: { code?: string }): 'timeout' | 'connect' | 'reset' {
  if (error.code === 'ERR_UPSTREAM_HEADERS_TIMEOUT') return 'timeout';
  if (error.code === 'ECONNREFUSED' || error.code === 'ERR_UPSTREAM_CONNECT_TIMEOUT' || error.code === 'EHOSTUNREACH' || error.code === 'ENETUNREACH') return 'connect';
  return 'reset';
}

/** The request's host, lower case, without a port: what explicit routes match on. */
function hostOf(header: string | undefined): string {
  if (header === undefined) return '';
  if (header.startsWith('[')) return header.slice(0, header.indexOf(']') + 1).toLowerCase();
  const colon = header.indexOf(':');
  return (colon < 0 ? header : header.slice(0, colon)).toLowerCase();
}

function isEventStream(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).length === 12 && (headers[i] as string).toLowerCase() === 'content-type') return (headers[i + 1] as string).toLowerCase().startsWith('text/event-stream');
  }
  return false;
}

/** Does the request carry a body? (RFC 9112, 6.3: only Content-Length or Transfer-Encoding say so.) */
function hasBody(req: GatewayRequest): boolean {
  const length = requestHeader(req, 'content-length');
  return requestHeader(req, 'transfer-encoding') !== undefined || (length !== undefined && length !== '0');
}

/**
 * The gateway's request path: normalise the path, find the service's route (one map lookup), pick an
 * instance, and forward the request over the instance's keep-alive pool (`Http1Pool`),
 * streaming both bodies with backpressure and no intermediate streams. A connection failure before the
 * instance saw the request is retried on another instance when the request may be repeated.
 */
export class GatewayProxy {
  readonly #options: ProxyOptions;
  readonly #metrics: GatewayMetrics;
  readonly #routes: () => RouteTable;
  readonly #budget: RetryBudget;
  readonly #detector: OutlierDetector;
  readonly #guards = new Map<string, ServiceGuard>();
  readonly #streams = new Set<Stream>();
  readonly #proto: string;

  constructor(options: ProxyOptions & { metrics: GatewayMetrics; routes: () => RouteTable; tls?: boolean }) {
    this.#options = options;
    this.#metrics = options.metrics;
    this.#routes = options.routes;
    this.#budget = new RetryBudget({ ratio: options.retryBudgetRatio });
    this.#detector = new OutlierDetector({ onEject: (service) => options.metrics.ejections.inc({ service }) });
    this.#proto = options.tls === true ? 'https' : 'http';
  }

  readonly handle = (req: GatewayRequest, res: GatewayResponse): void => {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const routed = this.#route(req, method);
    if ('refusal' in routed) {
      this.#refuse(res, routed.refusal, method, started);
      return;
    }
    const { match } = routed;
    if (match.middlewares.length === 0) {
      this.#forward(req, res, match, undefined, method, started);
      return;
    }
    const context: MiddlewareContext = { req, res, match, upstreamHeaders: [], droppedHeaders: [], responseHeaders: [], consumer: undefined, observers: [] };
    let forwarded = false;
    // A middleware that answers itself (401, 429, a preflight) is counted once its answer is sent.
    res.once('finish', () => {
      if (!forwarded) this.#metrics.observe(match.serviceName, match.route, method, res.statusCode, (performance.now() - started) / 1000);
    });
    runMiddlewares(match.middlewares, context, () => {
      forwarded = true;
      this.#forward(req, res, match, context, method, started);
    });
  };

  #forward(req: GatewayRequest, res: GatewayResponse, match: RouteMatch, context: MiddlewareContext | undefined, method: string, started: number): void {
    const entered = this.#enter(match);
    if ('refusal' in entered) {
      this.#refuse(res, entered.refusal, method, started);
      return;
    }
    const exchange = new Exchange(this, req, res, match, match.service as ServiceRoute, entered.guard, context, method, started);
    exchange.attempt();
  }

  #refuse(res: GatewayResponse, refusal: Refusal, method: string, started: number): void {
    sendError(res, refusal.code, refusal.message, refusal.headers);
    this.#metrics.observe(refusal.service, refusal.route, method, ErrorCatalogue[refusal.code].status, (performance.now() - started) / 1000);
  }

  /**
   * A WebSocket (or other) upgrade: routed like any request, then the two connections are joined
   * byte for byte once the instance has the request. It is not cut by the request timeout; it counts
   * against the service's bulkhead while open, and is closed when its instance leaves or the gateway stops.
   */
  readonly upgrade = (req: GatewayRequest, socket: Duplex, head: Buffer): void => {
    const method = req.method ?? 'GET';
    const routed = this.#route(req, method);
    if ('refusal' in routed) {
      writeRawError(socket, routed.refusal.code, routed.refusal.message, routed.refusal.headers);
      return;
    }
    const { match } = routed;
    if (match.middlewares.length === 0) {
      this.#join(req, socket, head, match, undefined);
      return;
    }
    // The route's middlewares apply to upgrades too (an API key cannot be skipped by asking for a
    // WebSocket); one that answers writes an ordinary HTTP response on the socket.
    // ServerResponse reads only the method, the HTTP version and `headers` of its request: the
    // engine's own request will do.
    const res = new ServerResponse(req as IncomingMessage);
    res.assignSocket(socket as Socket);
    res.once('finish', () => socket.end());
    const context: MiddlewareContext = { req, res, match, upstreamHeaders: [], droppedHeaders: [], responseHeaders: [], consumer: undefined, observers: [] };
    runMiddlewares(match.middlewares, context, () => {
      res.removeAllListeners('finish');
      res.detachSocket(socket as Socket);
      this.#join(req, socket, head, match, context);
    });
  };

  #join(req: GatewayRequest, socket: Duplex, head: Buffer, match: RouteMatch, context: MiddlewareContext | undefined): void {
    const method = req.method ?? 'GET';
    const admitted = this.#enter(match);
    if ('refusal' in admitted) {
      writeRawError(socket, admitted.refusal.code, admitted.refusal.message, admitted.refusal.headers);
      return;
    }
    const { guard } = admitted;
    const route = match.service as ServiceRoute;
    const upstream = route.balancer.pick(route.upstreams) as Upstream;
    upstream.inflight += 1;
    const headers = forwardRequestHeaders(req.rawHeaders, { remoteAddress: req.socket.remoteAddress ?? '', proto: this.#proto, prefix: match.prefix, drop: context?.droppedHeaders });
    if (context !== undefined) headers.push(...context.upstreamHeaders);
    let text = `${method} ${match.path} HTTP/1.1\r\nhost: ${upstream.host}\r\nconnection: upgrade\r\nupgrade: ${requestHeader(req, 'upgrade') ?? ''}\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i] as string}: ${headers[i + 1] as string}\r\n`;
    const target = connect({ host: upstream.address, port: upstream.port });
    let ended = false;
    const stream: Stream = {
      origin: upstream.origin,
      close: () => {
        target.unpipe(socket);
        // A WebSocket close frame, 1001 "going away", then the end of both connections.
        if (requestHeader(req, 'upgrade')?.toLowerCase() === 'websocket') socket.end(Buffer.from([0x88, 0x02, 0x03, 0xe9]));
        else socket.end();
        target.destroy();
      },
    };
    const end = (connected: boolean) => {
      if (ended) return;
      ended = true;
      this.#streams.delete(stream);
      upstream.inflight -= 1;
      guard.leave(connected);
      socket.destroy();
      target.destroy();
    };
    target.once('connect', () => {
      this.#streams.add(stream);
      target.write(`${text}\r\n`);
      if (head.length > 0) target.write(head);
      socket.pipe(target);
      target.pipe(socket);
      target.once('close', () => end(true));
      socket.once('close', () => end(true));
    });
    target.once('error', (error: Error & { code?: string }) => {
      if (!ended && target.connecting) {
        this.#metrics.upstreamErrors.inc({ service: route.service, kind: errorKind(error) });
        writeRawError(socket, 'PORTICO_ERR_GATEWAY_UPSTREAM_UNREACHABLE', `No answer from "${route.service}" (${error.code ?? error.message}).`);
      }
      end(false);
    });
    socket.on('error', () => end(true));
  }

  /**
   * End the long-lived exchanges (event streams, upgraded connections) to `origins` cleanly: their
   * instance is leaving (or, without `origins`, the gateway is stopping). Clients see a clean end and
   * reconnect, through the gateway, to an instance that stays.
   */
  closeStreams(origins?: readonly string[]): void {
    for (const stream of [...this.#streams]) if (origins === undefined || origins.includes(stream.origin)) stream.close();
  }

  /** @internal Exchanges register their event streams here. */
  get streams(): Set<Stream> {
    return this.#streams;
  }

  /** Find where a request goes, or say how to refuse it. */
  #route(req: GatewayRequest, method: string): { match: RouteMatch } | { refusal: Refusal } {
    const normalised = normaliseRequestPath(req.url ?? '/');
    if (!normalised.ok) {
      return { refusal: { code: 'PORTICO_ERR_GATEWAY_BAD_PATH', message: `The request path cannot be routed safely: ${normalised.problem}.`, service: NO_SERVICE, route: DISCOVERY_ROUTE } };
    }
    const match = this.#routes().match(hostOf(requestHeader(req, 'host') ?? requestHeader(req, ':authority')), method, normalised.path, normalised.query);
    if (match === undefined) {
      return { refusal: { code: 'PORTICO_ERR_GATEWAY_SERVICE_NOT_FOUND', message: `No route or service matches ${normalised.path}.`, service: NO_SERVICE, route: DISCOVERY_ROUTE } };
    }
    if (match.service === undefined || match.service.upstreams.length === 0) {
      return {
        refusal: {
          code: 'PORTICO_ERR_GATEWAY_NO_HEALTHY_INSTANCE',
          message: `The service "${match.serviceName}" has no instance passing its health checks.`,
          service: match.serviceName,
          route: match.route,
        },
      };
    }
    return { match };
  }

  /** Let a routed request past its guard's circuit breaker and bulkhead (the route's own, or its service's), or say how to refuse it. */
  #enter(match: RouteMatch): { guard: ServiceGuard } | { refusal: Refusal } {
    const guard = this.#guard(match);
    const refused = guard.enter();
    if (refused === undefined) return { guard };
    const at = { service: match.serviceName, route: match.route };
    this.#metrics.rejected.inc({ service: match.serviceName, route: match.guardKey === match.serviceName ? '' : match.route, reason: refused.reason });
    if (refused.reason === 'circuit_open') {
      return {
        refusal: {
          code: 'PORTICO_ERR_GATEWAY_CIRCUIT_OPEN',
          message: `"${match.serviceName}" is failing; the gateway is not sending it requests for now.`,
          headers: { 'retry-after': String(Math.max(1, Math.ceil(refused.retryAfterMs / 1000))) },
          ...at,
        },
      };
    }
    return { refusal: { code: 'PORTICO_ERR_GATEWAY_OVERLOADED', message: `"${match.serviceName}" has as many requests in flight as it may have.`, ...at } };
  }

  #guard(match: RouteMatch): ServiceGuard {
    let guard = this.#guards.get(match.guardKey);
    if (guard === undefined) {
      const { maxConcurrent, circuitBreaker } = match.resilience;
      const own = match.guardKey !== match.serviceName;
      const labels = { service: match.serviceName, route: own ? match.route : '' };
      const defaults = this.#options.guard;
      guard = new ServiceGuard(labels, {
        maxConcurrent: maxConcurrent ?? defaults?.maxConcurrent,
        breaker: { ...defaults?.breaker, ...circuitBreaker },
        onStateChange: (guardLabels, state) => this.#metrics.circuitState.set(guardLabels, CIRCUIT_STATE_VALUE[state]),
      });
      this.#guards.set(match.guardKey, guard);
    }
    return guard;
  }

  /**
   * Forget the guards of routes that are gone or whose settings changed (their key changed with them),
   * and their circuit-state series. Requests still in flight keep the guard they entered.
   */
  retainRouteGuards(keys: ReadonlySet<string>): void {
    for (const [key, guard] of this.#guards) {
      if (!key.startsWith('route:') || keys.has(key)) continue;
      this.#guards.delete(key);
      this.#metrics.circuitState.remove(guard.labels);
    }
  }

  /** Attempts a request through this route may make: the first, then its retries. */
  attemptsFor(match: RouteMatch): number {
    return match.resilience.retries === undefined ? this.#options.maxAttempts : match.resilience.retries + 1;
  }

  get options(): ProxyOptions {
    return this.#options;
  }

  get metrics(): GatewayMetrics {
    return this.#metrics;
  }

  get budget(): RetryBudget {
    return this.#budget;
  }

  get detector(): OutlierDetector {
    return this.#detector;
  }

  get proto(): string {
    return this.#proto;
  }

}

/** A request turned away before reaching an instance, and the labels to count it under. */
interface Refusal {
  code: ErrorCode;
  message: string;
  headers?: Record<string, string>;
  service: string;
  route: string;
}

/** A long-lived exchange the gateway may have to end cleanly. */
export interface Stream {
  origin: string;
  close(): void;
}

/**
 * One client request on its way through the gateway, across its attempts. It is the upstream pool's
 * handler itself, so forwarding allocates no per-request closures beyond the pool's abort function.
 */
class Exchange implements UpstreamHandler {
  readonly #proxy: GatewayProxy;
  readonly #req: GatewayRequest;
  readonly #res: GatewayResponse;
  readonly #match: RouteMatch;
  readonly #route: ServiceRoute;
  readonly #guard: ServiceGuard;
  readonly #context: MiddlewareContext | undefined;
  readonly #method: string;
  readonly #started: number;
  readonly #retryable: boolean;
  readonly #hasBody: boolean;
  /** The service's count of requests in flight (found once). */
  readonly #inflight: { value: number };
  #headers: string[] | undefined;
  #upstream: Upstream | undefined;
  #tried: Set<Upstream> | undefined;
  #attempts = 0;
  #abort: ((reason?: Error) => void) | undefined;
  /** Lets the upstream connection read on after `onData` paused it. */
  #resume: (() => void) | undefined;
  #onDrain: (() => void) | undefined;
  /** Set when the response is an event stream, which the gateway may have to end on its own. */
  #stream: Stream | undefined;
  #closingStream = false;
  #responded = false;
  #done = false;

  constructor(
    proxy: GatewayProxy,
    req: GatewayRequest,
    res: GatewayResponse,
    match: RouteMatch,
    route: ServiceRoute,
    guard: ServiceGuard,
    context: MiddlewareContext | undefined,
    method: string,
    started: number,
  ) {
    this.#proxy = proxy;
    this.#req = req;
    this.#res = res;
    this.#match = match;
    this.#route = route;
    this.#guard = guard;
    this.#context = context;
    this.#method = method;
    this.#started = started;
    this.#hasBody = hasBody(req);
    // A body streams straight through, so it cannot be sent twice: only body-less requests are retried.
    this.#retryable = !this.#hasBody && (IDEMPOTENT.has(method) || requestHeader(req, 'idempotency-key') !== undefined);
    if (!this.#hasBody) req.resume();
    this.#inflight = proxy.metrics.inflightOf(route.service);
    this.#inflight.value += 1;
    res.once('close', this.#onClientClose);
  }

  attempt(): void {
    const upstream = this.#route.balancer.pick(this.#route.upstreams, this.#tried);
    if (upstream === undefined) {
      this.#finish(
        this.#attempts === 0 ? 'PORTICO_ERR_GATEWAY_NO_HEALTHY_INSTANCE' : 'PORTICO_ERR_GATEWAY_UPSTREAM_UNREACHABLE',
        this.#attempts === 0 ? `The service "${this.#route.service}" has no instance passing its health checks.` : `No instance of "${this.#route.service}" could be reached.`,
      );
      return;
    }
    this.#attempts += 1;
    this.#upstream = upstream;
    upstream.inflight += 1;
    if (this.#headers === undefined) {
      // Made once: a retry sends the same headers.
      this.#headers = forwardRequestHeaders(this.#req.rawHeaders, {
        remoteAddress: this.#req.socket.remoteAddress ?? '',
        proto: this.#proxy.proto,
        prefix: this.#match.prefix,
        drop: this.#context?.droppedHeaders,
      });
      if (this.#context !== undefined) this.#headers.push(...this.#context.upstreamHeaders);
    }
    const requestTimeoutMs = this.#match.timeoutMs ?? this.#proxy.options.requestTimeoutMs;
    upstream.pool.dispatch(
      {
        method: this.#method,
        path: this.#match.path,
        headers: this.#headers,
        body: this.#hasBody ? requestBody(this.#req) : null,
        // A long-lived stream (Server-Sent Events) is not cut: the timeout covers the wait for the answer.
        headersTimeout: requestTimeoutMs,
      },
      this,
    );
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.#abort = abort;
    if (this.#done) abort();
  }

  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusMessage: string): boolean {
    if (this.#done) return false;
    this.#responded = true;
    const upstream = this.#upstream as Upstream;
    if (statusCode >= 500) this.#proxy.detector.failure(this.#route, upstream);
    else this.#proxy.detector.success(upstream);
    const res = this.#res;
    const headers = forwardResponseHeaders(rawHeaders);
    if (this.#context !== undefined) {
      for (const observer of this.#context.observers) observer.start(statusCode, headers);
      headers.push(...this.#context.responseHeaders);
    }
    // HTTP/2 has no reason phrase.
    if (this.#req.httpVersionMajor === 2) res.writeHead(statusCode, headers);
    else res.writeHead(statusCode, statusMessage, headers);
    this.#resume = resume;
    if (isEventStream(headers)) {
      this.#stream = { origin: upstream.origin, close: () => this.#closeStream() };
      this.#proxy.streams.add(this.#stream);
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#context !== undefined) for (const observer of this.#context.observers) observer.data(chunk);
    if (this.#res.write(chunk)) return true;
    // The client is not keeping up: the upstream pauses until the client's side drains (the listener
    // is added only now, as few responses ever fill the client's socket).
    if (this.#onDrain === undefined) {
      this.#onDrain = () => this.#resume?.();
      this.#res.on('drain', this.#onDrain);
    }
    return false;
  }

  onComplete(): void {
    this.#forgetStream();
    this.#release();
    if (this.#context !== undefined) for (const observer of this.#context.observers) observer.end();
    this.#res.end();
    this.#record(this.#res.statusCode);
  }

  onError(error: Error & { code?: string }): void {
    const upstream = this.#upstream;
    this.#forgetStream();
    this.#release();
    if (this.#closingStream) {
      // The gateway ended this event stream itself (its instance left, or the gateway is stopping).
      this.#record(this.#res.statusCode);
      return;
    }
    if (this.#done) return;
    if (upstream !== undefined && !this.#responded) this.#proxy.detector.failure(this.#route, upstream);
    const metrics = this.#proxy.metrics;
    const kind = errorKind(error);
    metrics.upstreamErrors.inc({ service: this.#route.service, kind });
    if (this.#responded) {
      // The answer broke off half-way: the client can only see the connection close.
      this.#res.destroy(error);
      this.#record(502);
      return;
    }
    const connectFailure = error.code !== undefined && CONNECT_FAILURES.has(error.code);
    if (
      connectFailure &&
      this.#retryable &&
      this.#attempts < this.#proxy.attemptsFor(this.#match) &&
      this.#route.upstreams.length > this.#attempts &&
      this.#proxy.budget.tryWithdraw()
    ) {
      (this.#tried ??= new Set()).add(upstream as Upstream);
      metrics.retries.inc({ service: this.#route.service });
      this.attempt();
      return;
    }
    if (kind === 'timeout') this.#finish('PORTICO_ERR_GATEWAY_UPSTREAM_TIMEOUT', `"${this.#route.service}" did not answer within ${this.#match.timeoutMs ?? this.#proxy.options.requestTimeoutMs} ms.`);
    else this.#finish(connectFailure ? 'PORTICO_ERR_GATEWAY_UPSTREAM_UNREACHABLE' : 'PORTICO_ERR_GATEWAY_UPSTREAM_FAILED', `No answer from "${this.#route.service}" (${error.code ?? error.message}).`);
  }

  readonly #onClientClose = (): void => {
    this.#forgetStream();
    if (this.#res.writableFinished) return;
    // The client went away: stop the upstream exchange too.
    if (!this.#done) this.#record(499);
    this.#abort?.();
  };

  #closeStream(): void {
    this.#closingStream = true;
    this.#res.end();
    this.#abort?.();
  }

  #forgetStream(): void {
    if (this.#stream !== undefined) this.#proxy.streams.delete(this.#stream);
  }

  #release(): void {
    if (this.#upstream !== undefined) {
      this.#upstream.inflight -= 1;
      this.#upstream = undefined;
    }
  }

  #finish(code: ErrorCode, message: string): void {
    sendError(this.#res, code, message);
    this.#record(ErrorCatalogue[code].status);
  }

  #record(statusCode: number): void {
    if (this.#done) return;
    this.#done = true;
    // 499: the client left; the request had no outcome the breaker should count.
    this.#guard.leave(statusCode === 499 ? undefined : statusCode < 500);
    this.#proxy.budget.deposit();
    this.#inflight.value -= 1;
    this.#proxy.metrics.observe(this.#route.service, this.#match.route, this.#method, statusCode, (performance.now() - this.#started) / 1000);
  }
}
