import { type IncomingHttpHeaders } from 'node:http';
import { type Socket } from 'node:net';
import { Readable } from 'node:stream';

/** How a request's body holds back the connection it arrives on (the connection implements it). */
export interface Http1BodyFlow {
  /** Stop reading the socket: the body's reader is not keeping up. */
  pauseBody(): void;
  /** The body's reader wants more. */
  resumeBody(): void;
}

/** Body bytes kept for a handler that has not yet said what to do with them (`body()` or `resume()`). */
const PENDING_LIMIT = 64 * 1024;

/** How `node:http` merges a repeated header into `headers` (lib/_http_incoming.js, `matchKnownFields`). */
const JOIN = 0;
const FIRST_ONLY = 1;
const COOKIE = 2;
const SET_COOKIE = 3;

const HEADER_KINDS = new Map<string, number>([
  ['age', FIRST_ONLY],
  ['host', FIRST_ONLY],
  ['from', FIRST_ONLY],
  ['etag', FIRST_ONLY],
  ['server', FIRST_ONLY],
  ['referer', FIRST_ONLY],
  ['expires', FIRST_ONLY],
  ['location', FIRST_ONLY],
  ['user-agent', FIRST_ONLY],
  ['retry-after', FIRST_ONLY],
  ['content-type', FIRST_ONLY],
  ['max-forwards', FIRST_ONLY],
  ['authorization', FIRST_ONLY],
  ['last-modified', FIRST_ONLY],
  ['content-length', FIRST_ONLY],
  ['if-modified-since', FIRST_ONLY],
  ['proxy-authorization', FIRST_ONLY],
  ['if-unmodified-since', FIRST_ONLY],
  ['cookie', COOKIE],
  ['set-cookie', SET_COOKIE],
]);

/** `node:http`'s `headers` object from a raw header list: lower-case names, repeats merged as Node merges them. */
function headersObject(rawHeaders: readonly string[]): IncomingHttpHeaders {
  const headers: Record<string, string | string[] | undefined> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    const value = rawHeaders[i + 1] as string;
    switch (HEADER_KINDS.get(name) ?? JOIN) {
      case JOIN: {
        const known = headers[name];
        headers[name] = typeof known === 'string' ? `${known}, ${value}` : value;
        break;
      }
      case FIRST_ONLY:
        if (headers[name] === undefined) headers[name] = value;
        break;
      case COOKIE: {
        const known = headers[name];
        headers[name] = typeof known === 'string' ? `${known}; ${value}` : value;
        break;
      }
      default: {
        const known = headers['set-cookie'];
        if (Array.isArray(known)) known.push(value);
        else headers['set-cookie'] = [value];
      }
    }
  }
  return headers;
}

/** The request body as a stream; asking for more resumes the socket. */
class Http1Body extends Readable {
  readonly #request: Http1Request;

  constructor(request: Http1Request) {
    super();
    this.#request = request;
  }

  override _read(): void {
    this.#request._wanted();
  }
}

const enum BodyMode {
  /** Nobody has asked for the body yet: chunks are kept (up to `PENDING_LIMIT`, then the socket waits). */
  Pending,
  /** `body()` was called: chunks go to its stream. */
  Streamed,
  /** `resume()` was called, or the response ended first: chunks are dropped. */
  Discarded,
}

/**
 * One HTTP/1.x request as the gateway's engine parsed it. Its members mean what they mean on
 * `node:http`'s `IncomingMessage`; the body, though, is not the request itself: `body()` makes a
 * `Readable` on demand (most requests have none, and pay for no stream), `resume()` drops it.
 */
export class Http1Request {
  readonly method: string;
  /** The request target as received. */
  readonly url: string;
  /** The headers as received, `[name, value, ...]`. */
  readonly rawHeaders: string[];
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly socket: Socket;
  /** An upgrade (`Connection: upgrade` with `Upgrade`) or a `CONNECT`. */
  readonly upgrade: boolean;
  /** Whether the whole message, body included, has arrived. */
  complete = false;
  /** @internal Whether the client lets the connection stay open after this exchange (llhttp's `shouldKeepAlive`). */
  readonly _keepAlive: boolean;
  /** @internal For an upgrade: the bytes that followed the request's head. */
  _head: Buffer | undefined;
  readonly #flow: Http1BodyFlow;
  #headers: IncomingHttpHeaders | undefined;
  #mode = BodyMode.Pending;
  #body: Http1Body | undefined;
  #pending: Buffer[] | undefined;
  #pendingBytes = 0;
  #holding = false;

  constructor(
    flow: Http1BodyFlow,
    socket: Socket,
    method: string,
    url: string,
    rawHeaders: string[],
    httpVersionMajor: number,
    httpVersionMinor: number,
    keepAlive: boolean,
    upgrade: boolean,
  ) {
    this.#flow = flow;
    this.socket = socket;
    this.method = method;
    this.url = url;
    this.rawHeaders = rawHeaders;
    this.httpVersionMajor = httpVersionMajor;
    this.httpVersionMinor = httpVersionMinor;
    this._keepAlive = keepAlive;
    this.upgrade = upgrade;
  }

  /** Lower-case names; repeats joined with `, ` (`; ` for cookie), `set-cookie` an array, and the first kept of those Node keeps first-only. Made on first use. */
  get headers(): IncomingHttpHeaders {
    return (this.#headers ??= headersObject(this.rawHeaders));
  }

  get httpVersion(): string {
    return `${this.httpVersionMajor}.${this.httpVersionMinor}`;
  }

  /**
   * The body as a stream, made on the first call (the same stream after). The socket is paused while the
   * stream's buffer is full. Called after `resume()` or once the response has ended, it is an empty stream.
   */
  body(): Readable {
    if (this.#body !== undefined) return this.#body;
    const body = (this.#body = new Http1Body(this));
    if (this.#mode === BodyMode.Discarded) {
      body.push(null);
      return body;
    }
    this.#mode = BodyMode.Streamed;
    const pending = this.#pending;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    let room = true;
    if (pending !== undefined) for (const chunk of pending) room = body.push(chunk);
    if (this.complete) body.push(null);
    if (room) this.#release();
    else this.#hold();
    return body;
  }

  /** Drop the body (what `IncomingMessage.resume()` does when nobody reads it). */
  resume(): this {
    if (this.#body !== undefined) {
      this.#body.resume();
      return this;
    }
    this.#discard();
    return this;
  }

  /** @internal A slice of the body, as the parser gives it. */
  _chunk(chunk: Buffer): void {
    if (this.#mode === BodyMode.Streamed) {
      if (!(this.#body as Http1Body).push(chunk)) this.#hold();
    } else if (this.#mode === BodyMode.Pending) {
      (this.#pending ??= []).push(chunk);
      this.#pendingBytes += chunk.length;
      if (this.#pendingBytes >= PENDING_LIMIT) this.#hold();
    }
  }

  /** @internal The message has ended. */
  _complete(): void {
    this.complete = true;
    if (this.#mode === BodyMode.Streamed) (this.#body as Http1Body).push(null);
  }

  /** @internal The body stream's reader wants more. */
  _wanted(): void {
    this.#release();
  }

  /** @internal The response has ended before the body was read: the rest is dropped, as `node:http` does. */
  _dump(): void {
    if (this.#body !== undefined) {
      if (!this.complete) {
        this.#body.removeAllListeners('data');
        this.#body.resume();
      }
      this.#release();
      return;
    }
    this.#discard();
  }

  /** @internal The connection closed before the message was complete. */
  _abort(): void {
    this.#holding = false;
    const body = this.#body;
    if (body === undefined || this.complete || body.destroyed) return;
    // As IncomingMessage: an 'aborted' error, but only to a stream that listens for errors (an
    // unheard 'error' would bring the process down).
    if (body.listenerCount('error') > 0) body.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    else body.destroy();
  }

  #discard(): void {
    this.#mode = BodyMode.Discarded;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    this.#release();
  }

  #hold(): void {
    if (this.#holding) return;
    this.#holding = true;
    this.#flow.pauseBody();
  }

  #release(): void {
    if (!this.#holding) return;
    this.#holding = false;
    this.#flow.resumeBody();
  }
}
