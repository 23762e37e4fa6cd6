import { type Readable } from 'node:stream';
import { abortError, type ConnectionOwner, type ConnectionSettings, Http1Connection, MAX_TIMER_MS, UpstreamError } from './upstream-connection.js';

export { UpstreamError, type UpstreamErrorCode } from './upstream-connection.js';

export interface Http1PoolOptions {
  /** At most this many sockets to the upstream; requests beyond wait in a FIFO queue. */
  connections: number;
  /** Time allowed to establish a connection (0: no limit). */
  connectTimeoutMs: number;
  /** Idle keep-alive connections are closed after this long (less when the upstream's `Keep-Alive: timeout=` says so); 0: no keep-alive. */
  keepAliveTimeoutMs: number;
}

export interface UpstreamRequest {
  method: string;
  /** The request target, query string included, sent verbatim. */
  path: string;
  /**
   * Flat `[name, value, ...]`, sent in order after the pool's `host`. They must be valid header names and
   * values (no CR or LF: they are not checked here) and carry no framing header but `content-length`.
   */
  headers: readonly string[];
  /**
   * `null`: no body. A Readable: streamed with backpressure, raw when `headers` has a `content-length`
   * (the body must then have exactly that many bytes), chunked otherwise. The pool never destroys it;
   * one it paused and then lets go (the exchange ended early) is resumed, to drain rather than stall.
   */
  body: Readable | null;
  /**
   * Milliseconds from the request head being written until the response headers arrive (a request
   * body is sent within that time too); 0: no limit.
   */
  headersTimeout: number;
}

/**
 * Receives one exchange's outcome. `onConnect` is always called first, synchronously within `dispatch`.
 * Then either `onHeaders`, any number of `onData`, and `onComplete`; or `onError`, exactly once and
 * never after `onComplete` (it may follow `onHeaders` and `onData` when the response breaks off).
 * `onError` can be called synchronously within `dispatch` (the pool is closed, or the exchange was
 * aborted from `onConnect`). A handler object carries one exchange at a time.
 */
export interface UpstreamHandler {
  /**
   * `abort` ends this exchange whenever called: a queued request is dropped, one in flight has its
   * connection destroyed, and `onError` follows (synchronously) with `ERR_UPSTREAM_ABORTED` and the
   * reason as its `cause`. Called after the exchange has ended, it does nothing.
   */
  onConnect(abort: (reason?: Error) => void): void;
  /**
   * The final response's head (1xx are skipped). `rawHeaders` is flat `[name, value, ...]` as received.
   * Return false to pause the body until `resume()` is called. `resume` belongs to the connection: a
   * call after the exchange ended is harmless (at worst it ends a later exchange's pause early).
   */
  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusMessage: string): boolean;
  /**
   * A piece of the body, a view into the socket's buffer (copy it to keep it past the call, or hand it
   * to a write). Return false to pause until `resume()`; the rest of the current socket read may still
   * arrive after a false.
   */
  onData(chunk: Buffer): boolean;
  onComplete(): void;
  /**
   * `code`: a `net` code (`ECONNREFUSED`, `ECONNRESET`, `EPIPE`, `EHOSTUNREACH`, ...) or one of:
   * - `ERR_UPSTREAM_CONNECT_TIMEOUT`: no connection within `connectTimeoutMs`;
   * - `ERR_UPSTREAM_HEADERS_TIMEOUT`: no response headers within the request's `headersTimeout`;
   * - `ERR_UPSTREAM_CLOSED`: the connection closed before any response byte arrived (a reused
   *   connection the upstream had just closed included; the request may or may not have been seen), or
   *   the pool was closed (dispatch after `close()`) or destroyed;
   * - `ERR_UPSTREAM_RESPONSE_INCOMPLETE`: the connection closed after part of the response;
   * - `ERR_UPSTREAM_BAD_RESPONSE`: the response is not valid HTTP/1.x (or switches protocols);
   * - `ERR_UPSTREAM_ABORTED`: `abort` was called, the request body failed or did not match its
   *   Content-Length, or a handler callback threw (the cause is the reason).
   */
  onError(error: Error & { code?: string }): void;
}

/**
 * A lean HTTP/1.1 client connection pool for one upstream, on the gateway's hot path in place of
 * undici's `Pool`: at most `connections` sockets, one request per socket at a time, requests beyond
 * that in a FIFO queue, idle keep-alive sockets reused most recently used first (they are warm) and
 * closed after `keepAliveTimeoutMs`. Responses are parsed by Node's llhttp binding. No retries: a
 * failure goes to the handler, which decides.
 *
 * Per request it allocates the head string, one abort function (the handler API's), and nothing else
 * of its own: no Promises, no listeners on the socket, no timers (each connection re-arms its own).
 */
export class Http1Pool {
  readonly #settings: ConnectionSettings;
  readonly #max: number;
  /** Connections that can still carry requests: connecting, busy or idle. */
  readonly #live = new Set<Http1Connection>();
  /** Idle connections, most recently used last. */
  readonly #idle: Http1Connection[] = [];
  /** Sockets not yet closed, `#live` ones and those closing. */
  #sockets = 0;
  readonly #queuedRequests: (UpstreamRequest | undefined)[] = [];
  readonly #queuedHandlers: (UpstreamHandler | undefined)[] = [];
  #queueHead = 0;
  #closing = false;
  #destroyed = false;
  #closed: Promise<void> | undefined;
  #resolveClosed: (() => void) | undefined;
  /** The handler whose `onConnect` is running, and whether it aborted from there. */
  #dispatching: UpstreamHandler | null = null;
  #dispatchAborted = false;
  #dispatchAbortReason: Error | undefined;
  readonly #owner: ConnectionOwner;

  constructor(target: { address: string; port: number; host: string }, options: Http1PoolOptions) {
    if (!(options.connections >= 1)) throw new RangeError(`connections must be at least 1, not ${options.connections}.`);
    this.#max = options.connections;
    this.#settings = {
      address: target.address,
      port: target.port,
      headTail: ` HTTP/1.1\r\nhost: ${target.host}\r\n`,
      connectTimeoutMs: Math.min(options.connectTimeoutMs, MAX_TIMER_MS),
      keepAliveTimeoutMs: Math.min(options.keepAliveTimeoutMs, MAX_TIMER_MS),
    };
    this.#owner = {
      reusable: (connection) => this.#reusable(connection),
      gone: (connection) => this.#gone(connection),
      closed: () => {
        this.#sockets -= 1;
        this.#checkClosed();
      },
    };
  }

  /** Send `request` on an idle connection, a new one, or when one frees up; the outcome goes to `handler`. */
  dispatch(request: UpstreamRequest, handler: UpstreamHandler): void {
    // The exchange exists for `abort` before it is placed anywhere: an abort from `onConnect` is noted here.
    const outer = this.#dispatching;
    const outerAborted = this.#dispatchAborted;
    const outerReason = this.#dispatchAbortReason;
    this.#dispatching = handler;
    this.#dispatchAborted = false;
    let aborted: boolean;
    let reason: Error | undefined;
    try {
      handler.onConnect((why?: Error) => this.#abort(handler, why));
    } finally {
      aborted = this.#dispatchAborted;
      reason = this.#dispatchAbortReason;
      this.#dispatching = outer;
      this.#dispatchAborted = outerAborted;
      this.#dispatchAbortReason = outerReason;
    }
    if (aborted) {
      handler.onError(abortError(reason));
      return;
    }
    if (this.#closing) {
      handler.onError(new UpstreamError('ERR_UPSTREAM_CLOSED', 'The upstream pool is closed.'));
      return;
    }
    const idle = this.#idle.pop();
    if (idle !== undefined) idle.send(request, handler);
    else if (this.#live.size < this.#max) this.#open(request, handler);
    else {
      this.#queuedRequests.push(request);
      this.#queuedHandlers.push(handler);
    }
  }

  /**
   * Stop taking requests (`dispatch` now fails with `ERR_UPSTREAM_CLOSED`), let the ones dispatched
   * before (queued ones included) finish, closing each connection as it frees up; resolves once every
   * socket has closed.
   */
  close(): Promise<void> {
    if (this.#closed !== undefined) return this.#closed;
    this.#closing = true;
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    for (const connection of this.#idle.splice(0)) connection.destroy();
    this.#checkClosed();
    return this.#closed;
  }

  /**
   * Close everything now: queued requests and those in flight fail (`ERR_UPSTREAM_CLOSED`, or
   * `ERR_UPSTREAM_RESPONSE_INCOMPLETE` once their response had begun); resolves once every socket has closed.
   */
  destroy(): Promise<void> {
    this.#destroyed = true;
    const handlers = this.#queuedHandlers.slice(this.#queueHead) as UpstreamHandler[];
    this.#queuedRequests.length = 0;
    this.#queuedHandlers.length = 0;
    this.#queueHead = 0;
    const closed = this.close();
    for (const connection of [...this.#live]) connection.destroy();
    for (const handler of handlers) handler.onError(new UpstreamError('ERR_UPSTREAM_CLOSED', 'The upstream pool was destroyed.'));
    this.#checkClosed();
    return closed;
  }

  #open(request: UpstreamRequest, handler: UpstreamHandler): void {
    this.#sockets += 1;
    this.#live.add(new Http1Connection(this.#settings, this.#owner, request, handler));
  }

  #reusable(connection: Http1Connection): void {
    const at = this.#queueHead;
    if (at < this.#queuedHandlers.length) {
      const request = this.#queuedRequests[at] as UpstreamRequest;
      const handler = this.#queuedHandlers[at] as UpstreamHandler;
      this.#shift();
      connection.send(request, handler);
    } else if (this.#closing) connection.destroy();
    else {
      this.#idle.push(connection);
      connection.park();
    }
  }

  #gone(connection: Http1Connection): void {
    this.#live.delete(connection);
    const at = this.#idle.lastIndexOf(connection);
    if (at >= 0) this.#idle.splice(at, 1);
    // A freed slot goes to the oldest queued request, even while closing (it was dispatched before).
    while (!this.#destroyed && this.#queueHead < this.#queuedHandlers.length && this.#live.size < this.#max) {
      const at = this.#queueHead;
      const request = this.#queuedRequests[at] as UpstreamRequest;
      const handler = this.#queuedHandlers[at] as UpstreamHandler;
      this.#shift();
      this.#open(request, handler);
    }
  }

  /** Drop the queue's head (already read). */
  #shift(): void {
    const at = this.#queueHead;
    this.#queuedRequests[at] = undefined;
    this.#queuedHandlers[at] = undefined;
    this.#queueHead = at + 1;
    if (this.#queueHead === this.#queuedHandlers.length) {
      this.#queuedRequests.length = 0;
      this.#queuedHandlers.length = 0;
      this.#queueHead = 0;
    } else if (this.#queueHead >= 1024 && this.#queueHead * 2 >= this.#queuedHandlers.length) {
      // A queue that never empties under sustained load would otherwise only grow.
      this.#queuedRequests.splice(0, this.#queueHead);
      this.#queuedHandlers.splice(0, this.#queueHead);
      this.#queueHead = 0;
    }
  }

  #abort(handler: UpstreamHandler, reason: Error | undefined): void {
    if (handler === this.#dispatching) {
      this.#dispatchAborted = true;
      this.#dispatchAbortReason = reason;
      return;
    }
    // Aborts are rare (a client that left): a scan is cheaper than an index kept per request.
    const queued = this.#queuedHandlers.indexOf(handler, this.#queueHead);
    if (queued >= 0) {
      this.#queuedRequests.splice(queued, 1);
      this.#queuedHandlers.splice(queued, 1);
      if (this.#queueHead === this.#queuedHandlers.length) {
        this.#queuedRequests.length = 0;
        this.#queuedHandlers.length = 0;
        this.#queueHead = 0;
      }
      handler.onError(abortError(reason));
      this.#checkClosed();
      return;
    }
    for (const connection of this.#live) {
      if (connection.handler === handler) {
        connection.abort(reason);
        return;
      }
    }
  }

  #checkClosed(): void {
    if (this.#closing && this.#sockets === 0 && this.#queueHead === this.#queuedHandlers.length) this.#resolveClosed?.();
  }
}
