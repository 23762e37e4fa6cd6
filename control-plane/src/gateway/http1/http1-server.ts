import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { consumableHandle, HTTPParser, type HttpParser, METHODS, type StreamHandle } from './http-parser.js';
import { type Http1BodyFlow, Http1Request } from './http1-request.js';
import { Http1Response, type Http1ResponseOwner } from './http1-response.js';

export { Http1Request } from './http1-request.js';
export { type Http1OutgoingHeaders, Http1Response } from './http1-response.js';

export interface Http1ServerOptions {
  /** An idle connection (between requests) is closed after this long; `node:http`'s `keepAliveTimeout`. The gateway uses 65,000. */
  keepAliveTimeoutMs: number;
  /** A request's head must be complete this long after its first byte, or the connection is closed (408); the gateway uses 60,000. */
  headersTimeoutMs: number;
  /** The most bytes a request's head (request line and headers) may take; more is refused with 431. Default 16 KiB. */
  maxHeaderSize?: number;
}

export interface Http1ServerHandlers {
  /** A request whose head has arrived (its body may still be arriving: `req.body()` or `req.resume()`). */
  request(req: Http1Request, res: Http1Response): void;
  /** An upgrade request (`Connection: upgrade` with `Upgrade`): the socket is handed over and the engine stops touching it. `head`: the bytes after the request's head. */
  upgrade(req: Http1Request, socket: Socket, head: Buffer): void;
}

const REFUSED_400 = 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const REFUSED_431 = 'HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const REFUSED_408 = 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const REFUSED_405 = 'HTTP/1.1 405 Method Not Allowed\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const REFUSED_417 = 'HTTP/1.1 417 Expectation Failed\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const EMPTY = Buffer.alloc(0);
/** The async resource the parser reports to async_hooks; one will do for every parser. */
const PARSER_RESOURCE = {};

/** Why the socket is paused (bits): a request waits behind the one being answered; a body's reader is full. */
const QUEUED = 1;
const BODY = 2;

/** Shared by a server's connections. */
interface ServerState {
  readonly handlers: Http1ServerHandlers;
  readonly keepAliveTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly maxHeaderSize: number;
  /** How long a connection being closed may wait for the client's side to close before it is destroyed. */
  readonly lingerMs: number;
  readonly connections: Set<Http1Connection>;
  closing: boolean;
}

const enum Phase {
  Open,
  /** `socket.end()` was called: input is read and dropped until the client closes (or `lingerMs`). */
  Ending,
  Gone,
  Upgraded,
}

type ParseError = Error & { code: string; bytesParsed: number };

/** Does a request head say a body follows (a Content-Length or a Transfer-Encoding header)? */
function framesBody(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if ((name.length === 14 && name.toLowerCase() === 'content-length') || (name.length === 17 && name.toLowerCase() === 'transfer-encoding')) return true;
  }
  return false;
}

function advanceTick(connection: Http1Connection): void {
  connection.advance();
}

function closeParser(parser: HttpParser): void {
  parser.close();
}

/**
 * One client connection: one llhttp parser for all its requests, requests answered strictly in order
 * (the ones received while another is being answered wait in a queue, and the socket is paused), the
 * keep-alive and head timeouts checked by the server's sweep rather than by a timer per request.
 *
 * The parser consumes the socket's handle (as `node:http` does; see `http-parser.ts`): reads are parsed
 * in C++ as they arrive, and `#onExecute` follows each one. Pausing stops the handle itself. Once the
 * connection stops parsing (a refusal, an upgrade, its end), the reads go back to the socket's `'data'`
 * (`#onData`), which keeps an upgrade's bytes and drops the rest. A socket without a stream handle is
 * parsed from `'data'` throughout.
 */
class Http1Connection implements Http1BodyFlow, Http1ResponseOwner {
  readonly #server: ServerState;
  readonly #socket: Socket;
  readonly #parser: HttpParser;
  /** The socket's handle while the parser consumes it. */
  #handle: StreamHandle | undefined;
  #phase = Phase.Open;
  /** Input is parsed; false once the parser refused something or an upgrade took over. */
  #reading = true;
  /** Within the parse of one read: requests wait for its end before they reach the handler. */
  #executing = false;
  #paused = 0;
  #bodyHolds = 0;
  /** Headers that came before the head was complete (more than the binding passes at once). */
  #rawHeaders: string[] | undefined;
  #url = '';
  /** The request whose body is being parsed (head complete, message not yet). */
  #parsing: Http1Request | undefined;
  /** Received, not yet handed to the handler. */
  readonly #queue: Http1Request[] = [];
  /** Handed to the handler; stays until its response has ended and its message has been read to the end. */
  #active: Http1Request | undefined;
  /** The active request's response until it ends. */
  #response: Http1Response | undefined;
  #upgrade: Http1Request | undefined;
  /** What to answer once the requests before it are answered: the parser refused what followed them. */
  #refusal: string | undefined;
  #closeWhenDone = false;
  /** When the head being received began, as far as reads tell (0: none is). */
  #headersSince = 0;
  /** When the connection last became idle (0: it is not). */
  #idleSince: number;
  #endedAt = 0;
  #messageCompleteSet = true;

  constructor(server: ServerState, socket: Socket) {
    this.#server = server;
    this.#socket = socket;
    this.#idleSince = Date.now();
    const parser = (this.#parser = new HTTPParser());
    parser[HTTPParser.kOnHeaders] = this.#onHeaders;
    parser[HTTPParser.kOnHeadersComplete] = this.#onHeadersComplete;
    parser[HTTPParser.kOnBody] = this.#onBody;
    parser[HTTPParser.kOnMessageComplete] = this.#onMessageComplete;
    parser.initialize(HTTPParser.REQUEST, PARSER_RESOURCE, server.maxHeaderSize, HTTPParser.kLenientNone);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
    server.connections.add(this);
    const handle = consumableHandle(socket);
    if (handle !== undefined) {
      handle._consumed = true;
      parser[HTTPParser.kOnExecute] = this.#onExecute;
      parser.consume(handle);
      this.#handle = handle;
    }
  }

  /** Nothing received or being answered: the connection may be closed without cutting anything. */
  get idle(): boolean {
    return this.#phase === Phase.Open && this.#active === undefined && this.#queue.length === 0 && this.#headersSince === 0;
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** The server is closing: close now if idle, else after the requests already received are answered. */
  shutdown(): void {
    this.#closeWhenDone = true;
    if (this.idle) this.#socket.destroy();
  }

  /** The server's periodic check of the timeouts. */
  sweep(now: number): void {
    const server = this.#server;
    if (this.#phase === Phase.Ending) {
      if (now - this.#endedAt >= server.lingerMs) this.#socket.destroy();
      return;
    }
    // No timeout while a response is in flight (an event stream may last hours), nor just before one starts.
    if (this.#phase !== Phase.Open || this.#response !== undefined || this.#queue.length > 0) return;
    if (this.#headersSince !== 0) {
      if (now - this.#headersSince < server.headersTimeoutMs) return;
      if (this.#active === undefined) this.#end(REFUSED_408);
      else this.#socket.destroy();
    } else if (this.#idleSince !== 0 && now - this.#idleSince >= server.keepAliveTimeoutMs) {
      this.#socket.destroy();
    }
  }

  keepAliveAfter(): boolean {
    const req = this.#active;
    if (req === undefined || !req._keepAlive) return false;
    // Closing: the requests already received are answered, the last one says so.
    if (this.#closeWhenDone || this.#server.closing) return this.#queue.length > 0;
    return true;
  }

  responseFinished(close: boolean): void {
    const req = this.#active as Http1Request;
    this.#response = undefined;
    this.#idleSince = Date.now();
    if (close) {
      if (!req.complete) req._abort();
      this.#end(undefined);
      return;
    }
    if (!req.complete) {
      // The exchange ends with its message: the rest of the body is read and dropped, then the next request.
      req._dump();
      return;
    }
    this.#active = undefined;
    // A pipelined request goes on the next tick, so a chain of them never deepens the stack.
    if (this.#queue.length > 0) process.nextTick(advanceTick, this);
    else this.advance();
  }

  pauseBody(): void {
    if (this.#bodyHolds++ === 0) this.#pause(BODY);
  }

  resumeBody(): void {
    if (--this.#bodyHolds === 0) this.#unpause(BODY);
  }

  /** Hand the next received request to the handler, or, with none, do what an idle connection must. */
  advance(): void {
    if (this.#executing || this.#active !== undefined || this.#phase !== Phase.Open) return;
    const next = this.#queue.shift();
    if (next === undefined) {
      this.#unpause(QUEUED);
      if (this.#refusal !== undefined) this.#end(this.#refusal);
      else if (this.#closeWhenDone && this.#headersSince === 0) this.#end(undefined);
      return;
    }
    if (next.upgrade) {
      if (next.method === 'CONNECT') this.#end(REFUSED_405);
      else this.#handOver(next);
      return;
    }
    this.#dispatch(next);
  }

  #dispatch(req: Http1Request): void {
    this.#active = req;
    this.#idleSince = 0;
    if (this.#queue.length === 0) this.#unpause(QUEUED);
    const res = new Http1Response(this, this.#socket, req.method, req.httpVersionMajor, req.httpVersionMinor);
    this.#response = res;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      if ((raw[i] as string).length !== 6 || (raw[i] as string).toLowerCase() !== 'expect' || req.httpVersionMinor !== 1) continue;
      // As node:http without a 'checkContinue' listener: 100 Continue for 100-continue, 417 for any other expectation.
      if ((raw[i + 1] as string).trim().toLowerCase() !== '100-continue') {
        req.resume();
        this.#response = undefined;
        this.#active = undefined;
        this.#end(REFUSED_417);
        return;
      }
      if (!req.complete) this.#socket.write(CONTINUE, 'latin1');
      break;
    }
    this.#server.handlers.request(req, res);
  }

  #handOver(req: Http1Request): void {
    this.#phase = Phase.Upgraded;
    const socket = this.#socket;
    socket.removeListener('data', this.#onData);
    socket.removeListener('end', this.#onEnd);
    socket.removeListener('error', this.#onError);
    socket.removeListener('close', this.#onClose);
    socket.removeListener('drain', this.#onDrain);
    this.#server.connections.delete(this);
    this.#unconsume();
    // This may run within the parser's own read (from `#onExecute`): it is freed once that has unwound.
    setImmediate(closeParser, this.#parser);
    // As node:http does: the new owner's first 'data' listener (or pipe) sets the socket flowing again.
    (socket as { readableFlowing: boolean | null }).readableFlowing = null;
    this.#server.handlers.upgrade(req, socket, req._head ?? EMPTY);
  }

  /** Close after what was written: the client's remaining input is read and dropped, so the close does not reset the connection. */
  #end(last: string | undefined): void {
    if (this.#phase !== Phase.Open) return;
    this.#phase = Phase.Ending;
    this.#reading = false;
    this.#endedAt = Date.now();
    this.#queue.length = 0;
    this.#active = undefined;
    if (this.#paused !== 0) {
      this.#paused = 0;
      this.#socket.resume();
    }
    // From within a read (a body's reader ended the response), `#onExecute` gives the reads back.
    if (!this.#executing) this.#unconsume();
    if (last === undefined) this.#socket.end();
    else this.#socket.end(last, 'latin1');
  }

  #pause(reason: number): void {
    if (this.#paused === 0 && this.#phase === Phase.Open) {
      this.#socket.pause();
      // A consumed handle's reads bypass the stream: only the handle itself stops them.
      const handle = this.#handle;
      if (handle !== undefined && handle.reading) {
        handle.reading = false;
        handle.readStop();
      }
    }
    this.#paused |= reason;
  }

  #unpause(reason: number): void {
    if ((this.#paused & reason) === 0) return;
    this.#paused &= ~reason;
    if (this.#paused === 0 && this.#phase === Phase.Open) {
      this.#socket.resume();
      const handle = this.#handle;
      if (handle !== undefined && !handle.reading) {
        handle.reading = true;
        handle.readStart();
      }
    }
  }

  /** The reads go back to the socket (its `'data'`), the handle reading again if it was stopped. */
  #unconsume(): void {
    const handle = this.#handle;
    if (handle === undefined) return;
    this.#handle = undefined;
    this.#parser.unconsume();
    handle._consumed = false;
    // The stream never saw the parser's reads and still counts one as under way, so resuming it would
    // not restart a stopped handle: it is restarted here (a paused stream buffers, then stops it itself).
    if (!handle.reading && !this.#socket.destroyed) {
      handle.reading = true;
      handle.readStart();
    }
  }

  /** The parser refused the input: what came before is answered, then 400 (431 for an oversized head) and close. */
  #refuse(error: ParseError): void {
    this.#reading = false;
    // Data after a request that asked to close: nothing more is read, the answers so far still go.
    if (error.code === 'HPE_CLOSED_CONNECTION') return;
    const broken = this.#parsing;
    this.#parsing = undefined;
    if (broken !== undefined) {
      // Its handler has it already and its body broke off: the client can only see the connection close.
      if (broken === this.#active) {
        this.#socket.destroy();
        return;
      }
      // Its head was read in this very chunk: the handler never sees it.
      const at = this.#queue.indexOf(broken);
      if (at >= 0) this.#queue.splice(at, 1);
      if (this.#upgrade === broken) this.#upgrade = undefined;
    }
    this.#refusal = error.code === 'HPE_HEADER_OVERFLOW' ? REFUSED_431 : REFUSED_400;
  }

  readonly #onData = (chunk: Buffer): void => {
    if (!this.#reading) {
      // An upgrade waiting its turn keeps what followed its head.
      const upgrade = this.#upgrade;
      if (upgrade !== undefined && this.#phase === Phase.Open) upgrade._head = Buffer.concat([upgrade._head ?? EMPTY, chunk]);
      return;
    }
    let parsed: ReturnType<HttpParser['execute']>;
    this.#executing = true;
    try {
      parsed = this.#parser.execute(chunk);
    } catch (error) {
      this.#threw();
      throw error;
    }
    this.#parsed(parsed, chunk);
  };

  /** Consume mode: a read has been parsed. */
  readonly #onExecute = (parsed: ReturnType<HttpParser['execute']>): void => {
    this.#parsed(parsed, undefined);
  };

  /** After a read is parsed; `chunk`: the read, or undefined for the consumed handle's current one. */
  #parsed(parsed: ReturnType<HttpParser['execute']>, chunk: Buffer | undefined): void {
    this.#executing = false;
    if (typeof parsed !== 'number') {
      this.#refuse(parsed);
    } else if (this.#upgrade !== undefined) {
      this.#reading = false;
      // A copy: in consume mode the read is in the parser's buffer, reused by the next read.
      const read = chunk ?? this.#parser.getCurrentBuffer();
      this.#upgrade._head = parsed < read.length ? read.subarray(parsed) : EMPTY;
    } else if (this.#headersSince === 0 && this.#reading && !this.#parser.headersCompleted()) {
      // This read began a head it did not complete: its clock starts. Asking the parser once per read
      // costs less than a kOnMessageBegin callback (C++ to JavaScript) per request.
      this.#headersSince = Date.now();
      this.#idleSince = 0;
    }
    if (!this.#reading) this.#unconsume();
    // Handlers are called only now, after the whole chunk is parsed: a request the parser refuses
    // (a bad chunk size after its head, in the same chunk) never reaches them.
    this.advance();
    if (this.#queue.length > 0) this.#pause(QUEUED);
  }

  /**
   * A body reader's listener threw (it runs inside the parse): where the parser stands is unknown, so
   * the connection goes; the error goes on up, as from a node:http handler (from a consumed handle's
   * read, as an uncaught exception, which is also what node:http gives).
   */
  #threw(): void {
    this.#executing = false;
    this.#socket.destroy();
  }

  readonly #onHeaders = (headers: string[], url: string): void => {
    // After the head: trailers, which are not passed on.
    if (this.#parsing !== undefined) return;
    if (this.#rawHeaders === undefined) this.#rawHeaders = headers;
    else for (const item of headers) this.#rawHeaders.push(item);
    this.#url += url;
  };

  readonly #onHeadersComplete = (
    versionMajor: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number,
    url: string | undefined,
    _statusCode: unknown,
    _statusMessage: unknown,
    upgrade: boolean,
    keepAlive: boolean,
  ): number => {
    this.#executing = true;
    const raw = headers ?? this.#rawHeaders ?? [];
    const target = url ?? this.#url;
    this.#rawHeaders = undefined;
    this.#url = '';
    this.#headersSince = 0;
    const req = new Http1Request(this, this.#socket, METHODS[method] as string, target, raw, versionMajor, versionMinor, keepAlive, upgrade);
    this.#queue.push(req);
    if (!upgrade && !framesBody(raw)) {
      // Without Content-Length or Transfer-Encoding a request has no body (RFC 9112, 6.3): its message
      // ends with its head. It is complete now, and the parser is spared the call into JavaScript
      // that would say so.
      req._complete();
      this.#setMessageComplete(false);
      return 0;
    }
    this.#parsing = req;
    this.#setMessageComplete(true);
    if (!upgrade) return 0;
    // 2: no body, and the parser stops after this head; what follows belongs to the upgraded protocol.
    this.#upgrade = req;
    return 2;
  };

  /** Whether the parser calls `#onMessageComplete`; set per request, written only when it changes. */
  #setMessageComplete(wanted: boolean): void {
    if (this.#messageCompleteSet === wanted) return;
    this.#messageCompleteSet = wanted;
    this.#parser[HTTPParser.kOnMessageComplete] = wanted ? this.#onMessageComplete : undefined;
  }

  readonly #onBody = (chunk: Buffer): void => {
    this.#executing = true;
    try {
      this.#parsing?._chunk(chunk);
    } catch (error) {
      this.#threw();
      throw error;
    }
  };

  readonly #onMessageComplete = (): void => {
    const req = this.#parsing;
    if (req === undefined) return;
    this.#executing = true;
    this.#parsing = undefined;
    try {
      req._complete();
    } catch (error) {
      this.#threw();
      throw error;
    }
    // Its response had ended already: the exchange is over (the next request goes once the chunk is parsed).
    if (req === this.#active && this.#response === undefined) this.#active = undefined;
  };

  readonly #onEnd = (): void => {
    if (this.#phase !== Phase.Open) return;
    this.#reading = false;
    // As node:http (without httpAllowHalfOpen): a client that ends its side has gone; what it was
    // waiting for is abandoned, and a response in flight emits 'close'. With nothing in flight, the
    // connection simply closes.
    if (this.#active !== undefined || this.#queue.length > 0) this.#socket.destroy();
    else this.#end(undefined);
  };

  readonly #onError = (): void => {
    // 'close' follows.
  };

  readonly #onClose = (): void => {
    const phase = this.#phase;
    this.#phase = Phase.Gone;
    this.#server.connections.delete(this);
    if (phase !== Phase.Upgraded) {
      this.#unconsume();
      this.#parser.close();
    }
    const req = this.#active;
    const res = this.#response;
    this.#active = undefined;
    this.#response = undefined;
    this.#queue.length = 0;
    req?._abort();
    res?._gone();
  };

  readonly #onDrain = (): void => {
    this.#response?._drained();
  };
}

/**
 * The gateway's HTTP/1.1 server engine, on `net` and Node's own llhttp (strict: what `node:http`
 * refuses, it refuses), without `IncomingMessage`/`ServerResponse`. Connections are kept alive and
 * may pipeline; bodies stream both ways with backpressure; upgrades hand the socket over.
 */
export class Http1Server {
  readonly #net: Server;
  readonly #state: ServerState;
  readonly #sweepEveryMs: number;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(handlers: Http1ServerHandlers, options: Http1ServerOptions) {
    const { keepAliveTimeoutMs, headersTimeoutMs } = options;
    this.#state = {
      handlers,
      keepAliveTimeoutMs,
      headersTimeoutMs,
      maxHeaderSize: options.maxHeaderSize ?? 16 * 1024,
      lingerMs: Math.min(5_000, keepAliveTimeoutMs, headersTimeoutMs),
      connections: new Set(),
      closing: false,
    };
    // Timeouts are as precise as a quarter of the shorter one, at most a second late.
    this.#sweepEveryMs = Math.max(10, Math.min(1_000, Math.floor(Math.min(keepAliveTimeoutMs, headersTimeoutMs) / 4)));
    // Half-open: a client that has sent its requests and closed its side still gets its answers.
    this.#net = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => new Http1Connection(this.#state, socket));
  }

  listen(port: number, host: string, cb: () => void): void {
    this.#net.listen(port, host, cb);
    if (this.#sweeper === undefined) {
      const connections = this.#state.connections;
      this.#sweeper = setInterval(() => {
        const now = Date.now();
        for (const connection of connections) connection.sweep(now);
      }, this.#sweepEveryMs);
      this.#sweeper.unref();
    }
  }

  address(): AddressInfo {
    return this.#net.address() as AddressInfo;
  }

  /** Stop accepting; idle connections close now, the others once the requests they have received are answered. `cb` runs when every connection has ended. */
  close(cb?: () => void): void {
    this.#state.closing = true;
    this.#net.close(() => {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
      cb?.();
    });
    for (const connection of [...this.#state.connections]) connection.shutdown();
  }

  /** Close the connections that are between requests. */
  closeIdleConnections(): void {
    for (const connection of [...this.#state.connections]) if (connection.idle) connection.destroy();
  }

  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'listening' | 'close', listener: () => void): this;
  on(event: 'error' | 'listening' | 'close', listener: (error: Error) => void): this {
    this.#net.on(event, listener);
    return this;
  }

  once(event: 'error', listener: (error: Error) => void): this;
  once(event: 'listening' | 'close', listener: () => void): this;
  once(event: 'error' | 'listening' | 'close', listener: (error: Error) => void): this {
    this.#net.once(event, listener);
    return this;
  }

  off(event: 'error', listener: (error: Error) => void): this;
  off(event: 'listening' | 'close', listener: () => void): this;
  off(event: 'error' | 'listening' | 'close', listener: (error: Error) => void): this {
    this.#net.off(event, listener);
    return this;
  }
}

/** An HTTP/1.1 server on the gateway's engine (see `Http1Server`). */
export function createHttp1Server(handlers: Http1ServerHandlers, options: Http1ServerOptions): Http1Server {
  return new Http1Server(handlers, options);
}
