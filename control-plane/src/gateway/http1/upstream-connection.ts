import { connect, type Socket } from 'node:net';
import { type Readable } from 'node:stream';
import { Deadline } from './deadline.js';
import { consumableHandle, HTTPParser, type HttpParser, type StreamHandle } from './http-parser.js';
import { type UpstreamHandler, type UpstreamRequest } from './upstream-pool.js';

/**
 * Why an upstream exchange failed, besides the codes `net` gives its own errors (`ECONNREFUSED`,
 * `ECONNRESET`, `EPIPE`, ...), which are passed on unchanged. These are the gateway engine's driver-level
 * codes: the proxy maps them to the catalogue in `errors.ts`.
 */
export type UpstreamErrorCode =
  | 'ERR_UPSTREAM_CONNECT_TIMEOUT'
  | 'ERR_UPSTREAM_HEADERS_TIMEOUT'
  | 'ERR_UPSTREAM_CLOSED'
  | 'ERR_UPSTREAM_RESPONSE_INCOMPLETE'
  | 'ERR_UPSTREAM_BAD_RESPONSE'
  | 'ERR_UPSTREAM_ABORTED';

export class UpstreamError extends Error {
  readonly code: UpstreamErrorCode;

  constructor(code: UpstreamErrorCode, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'UpstreamError';
    this.code = code;
  }
}

/** The error an aborted exchange ends with; `reason` is kept as its cause. */
export function abortError(reason: unknown): UpstreamError {
  return new UpstreamError('ERR_UPSTREAM_ABORTED', reason instanceof Error ? `The exchange was aborted: ${reason.message}` : 'The exchange was aborted.', reason);
}

/** What every connection of one pool shares, made once per pool. */
export interface ConnectionSettings {
  readonly address: string;
  readonly port: number;
  /** ` HTTP/1.1\r\nhost: <host>\r\n`: what follows the path in every request head. */
  readonly headTail: string;
  readonly connectTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
}

/** The pool's side of a connection's life. Each is called at most once per transition, never from inside the parser. */
export interface ConnectionOwner {
  /** The exchange is over and the connection may carry another request (it is not parked yet). */
  reusable(connection: Http1Connection): void;
  /** The connection will carry no more requests; its socket is being destroyed. Called once. */
  gone(connection: Http1Connection): void;
  /** Its socket has closed. Called once, after `gone`. */
  closed(connection: Http1Connection): void;
}

/** The longest delay `setTimeout` takes (longer ones fire after 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

function rethrow(error: unknown): never {
  throw error;
}

function uncork(socket: Socket): void {
  socket.uncork();
}

/** `Keep-Alive: timeout=N` → how long this client may leave the connection idle, with a margin for the race with the server's own timer. */
function keepAliveHint(value: string, configuredMs: number): number {
  const at = value.toLowerCase().indexOf('timeout=');
  if (at < 0) return configuredMs;
  const seconds = parseInt(value.slice(at + 8), 10);
  if (!(seconds >= 0)) return configuredMs;
  const ms = seconds * 1000;
  return Math.min(configuredMs, ms - Math.min(1000, ms / 2));
}

/**
 * One keep-alive HTTP/1.1 connection to an upstream: one request at a time (no pipelining), the
 * response parsed by Node's llhttp binding. Everything per request lives in fields of this object; the
 * socket listeners, parser callbacks and timer callbacks are made once per connection, so an exchange
 * allocates no closures here.
 *
 * Once connected, the parser consumes the socket's handle (see `http-parser.ts`): each read is parsed in
 * C++ as it arrives and `#onExecute` follows it; pausing stops the handle itself. A socket without a
 * stream handle is parsed from `'data'`.
 *
 * A connection is bound to the request that made the pool open it, and sends it once connected. It
 * then alternates between carrying an exchange and being parked idle in its pool, until either side
 * closes it; a connection that dies during an exchange reports why to that exchange's handler.
 */
export class Http1Connection {
  readonly #settings: ConnectionSettings;
  readonly #owner: ConnectionOwner;
  readonly #socket: Socket;
  readonly #parser: HttpParser;
  /** The socket's handle while the parser consumes it. */
  #handle: StreamHandle | undefined;

  /** The exchange in flight: set from `send` (or the pool's open) until complete or failed. */
  #handler: UpstreamHandler | null;
  /** The request waiting for the connection to be established. */
  #request: UpstreamRequest | null;
  #dead = false;
  /** Parked in the pool's idle stack. */
  #parked = false;

  #isHead = false;
  /** A byte of the response has arrived (decides CLOSED vs INCOMPLETE when the connection drops). */
  #responseStarted = false;
  /** The message being parsed is a 1xx, skipped. */
  #informational = false;
  /** The final response's message completed during the current `execute`. */
  #completed = false;
  /** A message's head came with no exchange waiting for it (a second response). */
  #stray = false;
  #keepAlive = false;
  /** The socket is paused because the handler refused data. */
  #paused = false;
  /** Headers flushed by the parser before `kOnHeadersComplete` (more than it passes at once). */
  #headerChunks: string[] | null = null;

  #body: Readable | null = null;
  #chunked = false;
  /** Bytes of a Content-Length body still to send. */
  #remaining = 0;
  #bodyPaused = false;
  #bodySent = true;
  /**
   * A request with a body: its head, held until the body's first chunk (or its end) so both leave in
   * one write, and so a body that fails before its first byte (a malformed chunk from the client)
   * never reaches the upstream at all.
   */
  #pendingHead: string | undefined;
  #pendingHeadersTimeout = 0;

  #connectTimer: NodeJS.Timeout | undefined;
  /** The exchange in flight must have its response headers by then. */
  readonly #headersDeadline = new Deadline(() => this.#onHeadersTimeout());
  /** The wait the headers deadline was set for (for the error's message). */
  #headersMs = 0;
  /** Parked, the connection is closed by then. */
  readonly #idleDeadline = new Deadline(() => this.#onIdleTimeout());
  /** How long this connection may stay idle: the pool's setting, or less if the upstream says so. */
  #idleMs: number;
  /** The last `Keep-Alive` value seen, and the idle time it allows. */
  #hintValue: string | undefined;
  #hintMs = 0;

  constructor(settings: ConnectionSettings, owner: ConnectionOwner, request: UpstreamRequest, handler: UpstreamHandler) {
    this.#settings = settings;
    this.#owner = owner;
    this.#request = request;
    this.#handler = handler;
    this.#idleMs = settings.keepAliveTimeoutMs;

    const parser = new HTTPParser();
    parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
    parser[HTTPParser.kOnHeaders] = this.#onHeaders;
    parser[HTTPParser.kOnHeadersComplete] = this.#onHeadersComplete;
    parser[HTTPParser.kOnBody] = this.#onBody;
    parser[HTTPParser.kOnMessageComplete] = this.#onMessageComplete;
    this.#parser = parser;

    const socket = connect({ host: settings.address, port: settings.port, noDelay: true });
    socket.on('connect', this.#onConnect);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
    this.#socket = socket;
    if (settings.connectTimeoutMs > 0) this.#connectTimer = setTimeout(this.#onConnectTimeout, settings.connectTimeoutMs).unref();
  }

  /** The handler of the exchange in flight, if any (the pool finds an exchange to abort by it). */
  get handler(): UpstreamHandler | null {
    return this.#handler;
  }

  /** Write `request` and wait for its response. Only on a connected connection with no exchange in flight. */
  send(request: UpstreamRequest, handler: UpstreamHandler): void {
    this.#handler = handler;
    this.#parked = false;
    this.#isHead = request.method === 'HEAD';
    this.#responseStarted = false;
    this.#informational = false;
    this.#completed = false;
    const socket = this.#socket;
    const headers = request.headers;
    let head = request.method + ' ' + request.path + this.#settings.headTail;
    for (let i = 0; i < headers.length; i += 2) head += (headers[i] as string) + ': ' + (headers[i + 1] as string) + '\r\n';
    const body = request.body;
    if (body === null) {
      this.#bodySent = true;
      socket.write(head + '\r\n', 'latin1');
      this.#armHeadersTimer(request.headersTimeout);
      return;
    }
    let length: number | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      if (name.length === 14 && name.toLowerCase() === 'content-length') length = Number(headers[i + 1]);
    }
    if (length === undefined) {
      length = -1;
      head += 'transfer-encoding: chunked\r\n';
    } else if (!(Number.isSafeInteger(length) && length >= 0)) {
      this.abort(new Error('The request has an invalid Content-Length.'));
      return;
    }
    this.#pendingHead = head + '\r\n';
    this.#pendingHeadersTimeout = request.headersTimeout;
    this.#streamBody(body, length);
  }

  /** Park idle in the pool: start the keep-alive clock. */
  park(): void {
    this.#parked = true;
    this.#idleDeadline.set(Math.min(this.#idleMs, MAX_TIMER_MS));
  }

  /** Abort the exchange in flight: the connection is destroyed and the handler gets `ERR_UPSTREAM_ABORTED`. */
  abort(reason: Error | undefined): void {
    this.#destroy(abortError(reason));
  }

  /** Close the connection now. An exchange in flight gets `ERR_UPSTREAM_CLOSED` or `ERR_UPSTREAM_RESPONSE_INCOMPLETE`. */
  destroy(): void {
    this.#destroy(undefined);
  }

  #armHeadersTimer(ms: number): void {
    if (!(ms > 0)) {
      this.#headersDeadline.clear();
      return;
    }
    this.#headersMs = ms;
    this.#headersDeadline.set(Math.min(ms, MAX_TIMER_MS));
  }

  #streamBody(body: Readable, length: number): void {
    this.#body = body;
    this.#chunked = length < 0;
    this.#remaining = length;
    this.#bodySent = false;
    this.#bodyPaused = false;
    if (body.readableEnded) {
      this.#onBodyEnd();
      return;
    }
    if (body.destroyed) {
      this.#failBody(new Error('The request body was destroyed before it was sent.'));
      return;
    }
    body.on('data', this.#onBodyData);
    body.on('end', this.#onBodyEnd);
    body.on('error', this.#failBody);
    body.on('close', this.#onBodyClose);
    body.resume();
  }

  #detachBody(): void {
    const body = this.#body as Readable;
    body.removeListener('data', this.#onBodyData);
    body.removeListener('end', this.#onBodyEnd);
    body.removeListener('error', this.#failBody);
    body.removeListener('close', this.#onBodyClose);
    this.#body = null;
    // Paused by this connection: let it flow again, so an unsent remainder drains instead of stalling its source.
    if (this.#bodyPaused) {
      this.#bodyPaused = false;
      body.resume();
    }
  }

  /** Send the held head (corked: what follows in this tick leaves with it) and start the headers clock. */
  #flushHead(): void {
    const head = this.#pendingHead as string;
    this.#pendingHead = undefined;
    this.#socket.cork();
    this.#socket.write(head, 'latin1');
    process.nextTick(uncork, this.#socket);
    this.#armHeadersTimer(this.#pendingHeadersTimeout);
  }

  readonly #onBodyData = (chunk: Buffer | string): void => {
    const socket = this.#socket;
    const size = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    let flushed: boolean;
    if (this.#chunked) {
      if (size === 0) return;
      if (this.#pendingHead !== undefined) this.#flushHead();
      socket.cork();
      socket.write(size.toString(16) + '\r\n', 'latin1');
      socket.write(chunk);
      flushed = socket.write('\r\n', 'latin1');
      socket.uncork();
    } else {
      if (size > this.#remaining) {
        this.#failBody(new Error('The request body is longer than its Content-Length.'));
        return;
      }
      this.#remaining -= size;
      if (this.#pendingHead !== undefined) this.#flushHead();
      flushed = socket.write(chunk);
    }
    if (!flushed) {
      this.#bodyPaused = true;
      (this.#body as Readable).pause();
    }
  };

  readonly #onBodyEnd = (): void => {
    if (!this.#chunked && this.#remaining > 0) {
      this.#failBody(new Error('The request body ended before its Content-Length.'));
      return;
    }
    if (this.#pendingHead !== undefined) this.#flushHead();
    if (this.#chunked) this.#socket.write('0\r\n\r\n', 'latin1');
    if (this.#body !== null) this.#detachBody();
    this.#bodySent = true;
  };

  readonly #onBodyClose = (): void => {
    // 'end' detaches first, so a 'close' seen here came before the body's end.
    this.#failBody(new Error('The request body closed before its end.'));
  };

  readonly #failBody = (error: Error): void => {
    this.abort(error);
  };

  readonly #onDrain = (): void => {
    if (this.#bodyPaused) {
      this.#bodyPaused = false;
      this.#body?.resume();
    }
  };

  readonly #resume = (): void => {
    // Per connection, not per exchange: a late call from an earlier exchange can only resume early.
    if (this.#paused && !this.#dead) this.#unpause();
  };

  readonly #onConnect = (): void => {
    clearTimeout(this.#connectTimer);
    const handle = consumableHandle(this.#socket);
    if (handle !== undefined) {
      handle._consumed = true;
      this.#parser[HTTPParser.kOnExecute] = this.#onExecute;
      this.#parser.consume(handle);
      this.#handle = handle;
    }
    const request = this.#request;
    const handler = this.#handler;
    this.#request = null;
    if (request !== null && handler !== null) this.send(request, handler);
  };

  readonly #onData = (chunk: Buffer): void => {
    if (this.#handler === null) {
      // Bytes no request asked for: the connection cannot be trusted with another one.
      this.#destroy(undefined);
      return;
    }
    this.#responseStarted = true;
    let result: ReturnType<HttpParser['execute']>;
    try {
      result = this.#parser.execute(chunk);
    } catch (error) {
      this.#handlerThrew(error);
      return;
    }
    this.#parsed(result);
  };

  /** Consume mode: a read has been parsed. */
  readonly #onExecute = (result: ReturnType<HttpParser['execute']>): void => {
    if (this.#dead) return;
    // A read with no exchange waiting for it that did not end one either: bytes no request asked for.
    if (this.#handler === null && !this.#completed) {
      this.#destroy(undefined);
      return;
    }
    this.#responseStarted = true;
    this.#parsed(result);
  };

  #parsed(result: ReturnType<HttpParser['execute']>): void {
    if (typeof result !== 'number') {
      this.#destroy(new UpstreamError('ERR_UPSTREAM_BAD_RESPONSE', `The upstream sent an invalid HTTP response (${result.code}: ${result.reason}).`, result));
      return;
    }
    if (this.#completed) {
      this.#completed = false;
      // Bytes after the response: a whole head no request asked for, or the start of one. Asking the
      // parser once per read costs less than a kOnMessageBegin callback (C++ to JavaScript) per response.
      if (this.#stray || !this.#parser.headersCompleted()) {
        this.#destroy(undefined);
        return;
      }
      this.#reuse();
    }
  }

  /** Released after `execute` returns, so the next request is never written from inside the parser. */
  #reuse(): void {
    if (this.#dead) return;
    if (!this.#keepAlive || !this.#bodySent || this.#idleMs <= 0) {
      this.#destroy(undefined);
      return;
    }
    if (this.#paused) this.#unpause();
    this.#owner.reusable(this);
  }

  readonly #onEnd = (): void => {
    if (this.#handler !== null && this.#responseStarted) {
      try {
        // A close-delimited body ends here; an unfinished message makes `finish` return an error.
        this.#parser.finish();
      } catch (error) {
        this.#handlerThrew(error);
        return;
      }
    }
    this.#destroy(undefined);
  };

  readonly #onError = (error: Error): void => {
    this.#destroy(error);
  };

  readonly #onClose = (): void => {
    this.#destroy(undefined);
    // 'close' comes on a later tick than any `execute` or consumed read, so the parser is not in use.
    if (this.#handle !== undefined) {
      this.#handle._consumed = false;
      this.#handle = undefined;
      this.#parser.unconsume();
    }
    this.#parser.close();
    this.#owner.closed(this);
  };

  readonly #onConnectTimeout = (): void => {
    if (this.#socket.connecting) this.#destroy(new UpstreamError('ERR_UPSTREAM_CONNECT_TIMEOUT', `No connection to ${this.#settings.address}:${this.#settings.port} within ${this.#settings.connectTimeoutMs} ms.`));
  };

  #onHeadersTimeout(): void {
    if (this.#handler !== null) this.#destroy(new UpstreamError('ERR_UPSTREAM_HEADERS_TIMEOUT', `No response headers within ${this.#headersMs} ms.`));
  }

  #onIdleTimeout(): void {
    if (this.#parked) this.#destroy(undefined);
  }

  readonly #onHeaders = (headers: string[]): void => {
    if (this.#headerChunks === null) this.#headerChunks = headers;
    else for (const one of headers) this.#headerChunks.push(one);
  };

  readonly #onHeadersComplete = (
    _versionMajor: number,
    _versionMinor: number,
    headers: string[] | undefined,
    _method: number | undefined,
    _url: string | undefined,
    statusCode: number,
    statusMessage: string,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number => {
    const rawHeaders = headers ?? this.#headerChunks ?? [];
    this.#headerChunks = null;
    const handler = this.#handler;
    if (handler === null) {
      this.#stray = true;
      return 1;
    }
    if (statusCode < 200 || upgrade) {
      if (statusCode === 101 || upgrade) {
        this.#destroy(new UpstreamError('ERR_UPSTREAM_BAD_RESPONSE', 'The upstream switched protocols on a request that did not ask it to.'));
        return 1;
      }
      // 100 Continue, 103 Early Hints, ...: the final response follows.
      this.#informational = true;
      return 0;
    }
    this.#headersDeadline.clear();
    this.#keepAlive = shouldKeepAlive;
    let idleMs = this.#settings.keepAliveTimeoutMs;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i] as string;
      if (name.length === 10 && name.toLowerCase() === 'keep-alive') {
        // An upstream sends the same value every time: parse it once.
        const value = rawHeaders[i + 1] as string;
        if (value !== this.#hintValue) {
          this.#hintValue = value;
          this.#hintMs = keepAliveHint(value, idleMs);
        }
        idleMs = this.#hintMs;
      }
    }
    this.#idleMs = idleMs;
    try {
      if (!handler.onHeaders(statusCode, rawHeaders, this.#resume, statusMessage)) this.#pause();
    } catch (error) {
      this.#handlerThrew(error);
      return 1;
    }
    // 1: no body follows (a response to HEAD); llhttp knows 204 and 304 itself.
    return this.#isHead ? 1 : 0;
  };

  readonly #onBody = (chunk: Buffer): void => {
    const handler = this.#handler;
    if (handler === null) return;
    try {
      // The binding cannot stop mid-buffer: after a refusal, the rest of this buffer still comes.
      if (!handler.onData(chunk)) this.#pause();
    } catch (error) {
      this.#handlerThrew(error);
    }
  };

  readonly #onMessageComplete = (): void => {
    const handler = this.#handler;
    if (handler === null) return;
    if (this.#informational) {
      this.#informational = false;
      return;
    }
    this.#handler = null;
    this.#completed = true;
    try {
      handler.onComplete();
    } catch (error) {
      this.#handlerThrew(error);
    }
  };

  /**
   * A handler callback threw inside the parser, which cannot go on: the connection is destroyed. Caught
   * in the callback itself (a consumed read has no `execute` call around it to catch it): the rest of
   * the read is parsed into a dead connection, which ignores it.
   */
  #handlerThrew(error: unknown): void {
    if (this.#handler !== null) {
      this.#destroy(abortError(error));
      return;
    }
    this.#destroy(undefined);
    // Nobody left to tell (onComplete threw): surface it as any event listener's exception would be.
    process.nextTick(rethrow, error);
  }

  #pause(): void {
    if (!this.#paused && !this.#dead) {
      this.#paused = true;
      this.#socket.pause();
      // A consumed handle's reads bypass the stream: only the handle itself stops them.
      const handle = this.#handle;
      if (handle !== undefined && handle.reading) {
        handle.reading = false;
        handle.readStop();
      }
    }
  }

  #unpause(): void {
    this.#paused = false;
    this.#socket.resume();
    const handle = this.#handle;
    if (handle !== undefined && !handle.reading) {
      handle.reading = true;
      handle.readStart();
    }
  }

  /**
   * The one way a connection ends: state first, then the pool, then the handler of the exchange in
   * flight (if any) with `error`, or with CLOSED / RESPONSE_INCOMPLETE when the connection just went.
   */
  #destroy(error: Error | undefined): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#parked = false;
    const handler = this.#handler;
    this.#handler = null;
    this.#request = null;
    clearTimeout(this.#connectTimer);
    this.#headersDeadline.cancel();
    this.#idleDeadline.cancel();
    if (this.#body !== null) this.#detachBody();
    this.#socket.destroy();
    this.#owner.gone(this);
    if (handler === null) return;
    if (error === undefined) {
      error = this.#responseStarted
        ? new UpstreamError('ERR_UPSTREAM_RESPONSE_INCOMPLETE', 'The upstream closed the connection before the end of its response.')
        : new UpstreamError('ERR_UPSTREAM_CLOSED', 'The upstream closed the connection without answering.');
    }
    handler.onError(error);
  }
}
