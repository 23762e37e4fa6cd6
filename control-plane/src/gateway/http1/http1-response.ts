import { STATUS_CODES } from 'node:http';
import { type Socket } from 'node:net';

/** Response headers: a flat raw list `[name, value, ...]`, or an object as `node:http` takes it. */
export type Http1OutgoingHeaders = readonly string[] | Readonly<Record<string, string | number | readonly string[] | undefined>>;

/** What a response needs from the connection it is written on (the connection implements it). */
export interface Http1ResponseOwner {
  /** May the connection stay open after this response? Asked once, as the head is written. */
  keepAliveAfter(): boolean;
  /** The response was handed to the socket whole; `close`: the connection closes after it. */
  responseFinished(close: boolean): void;
}

type Event = 'drain' | 'finish' | 'close';
type Listener = () => void;
/** A `once('drain')` listener, wrapped so that it removes itself; `off` finds it by what it wraps. */
type OnceListener = Listener & { listener?: Listener };

/** How the body is framed on the wire. */
const enum Framing {
  /** Not decided yet (the head has not been written). */
  Unset,
  /** HEAD, 1xx, 204, 304: no body at all, whatever is written. */
  None,
  /** Content-Length, as the handler gave it or as `end(chunk)` measured it. */
  Length,
  Chunked,
  /** An HTTP/1.0 client without a length: the body ends when the connection does. */
  Close,
}

const enum State {
  Open,
  /** `end()` was called and everything handed to the socket. */
  Finished,
  /** The client went away (or the response was destroyed) before the end. */
  Closed,
}

/** A chunk up to this size is copied behind the head (or its size line) to go in one write; a larger one goes by writev. */
const COPY_LIMIT = 16 * 1024;

/** Token characters of a header name (RFC 9110, 5.6.2). */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[c.charCodeAt(0)] = 1;

function invalidName(name: string): boolean {
  if (name.length === 0) return true;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c > 127 || TOKEN[c] === 0) return true;
  }
  return false;
}

/** What `node:http` refuses in a header value or a reason phrase: controls but HTAB, DEL, and anything past latin1. */
function invalidValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 32 && c !== 9) || c === 127 || c > 255) return true;
  }
  return false;
}

function headerError(code: string, message: string): TypeError {
  return Object.assign(new TypeError(message), { code });
}

let dateString = '';
let dateExpiresAt = 0;

/** The `Date` header's value, made once a second. */
function httpDate(): string {
  const now = Date.now();
  if (now >= dateExpiresAt) {
    dateString = new Date(now).toUTCString();
    dateExpiresAt = now - (now % 1000) + 1000;
  }
  return dateString;
}

function uncorkTick(response: Http1Response): void {
  response._uncork();
}

/**
 * The answer to one `Http1Request`, with the members of `node:http`'s `ServerResponse` the gateway uses.
 * The head is kept until the first `write()` or `end()` and leaves in the same socket write as the first
 * body bytes (copied behind it when small, by writev when large); `end(body)` on an unsent head gets a
 * content-length rather than chunks; chunked writes made in one tick leave together. Events: `'drain'`,
 * `'finish'` (everything was handed to the socket; emitted within `end()`, before it returns) and
 * `'close'` (the exchange is over: right after `'finish'`, or when the client goes away, in which case
 * there is no `'finish'`). Writes after the end, or after the client has gone, are dropped (`false`).
 */
export class Http1Response {
  /** The status `writeHead` sent, or the one an implicit head (a `write()` without `writeHead`) uses. */
  statusCode = 200;
  readonly #owner: Http1ResponseOwner;
  readonly #socket: Socket;
  readonly #headRequest: boolean;
  readonly #http10: boolean;
  #head: string | undefined;
  #framing = Framing.Unset;
  #state = State.Open;
  #hasLength = false;
  /** 0: no Transfer-Encoding header; 1: one ending in chunked; 2: another. */
  #transferEncoding = 0;
  #hasDate = false;
  #hasConnection = false;
  #connectionClose = false;
  #close = false;
  /** A chunk was written: the next chunk (or the last) starts with the CRLF that ends it. */
  #chunkOpen = false;
  #corked = false;
  #needDrain = false;
  #drain: Listener[] | undefined;
  #finish: Listener[] | undefined;
  #closeListeners: Listener[] | undefined;

  constructor(owner: Http1ResponseOwner, socket: Socket, method: string, httpVersionMajor: number, httpVersionMinor: number) {
    this.#owner = owner;
    this.#socket = socket;
    this.#headRequest = method === 'HEAD';
    this.#http10 = httpVersionMajor === 1 && httpVersionMinor === 0;
  }

  /** `writeHead` was called (or a write made the head implicitly); as on `ServerResponse`, before it reached the socket too. */
  get headersSent(): boolean {
    return this.#head !== undefined;
  }

  /** Everything, the end included, was handed to the socket. */
  get writableFinished(): boolean {
    return this.#state === State.Finished;
  }

  /**
   * The status line and headers (flat `[name, value, ...]` or an object whose values may be arrays),
   * kept until the first write. Framing, `date` and `connection` are added unless given; nothing is taken
   * out. Throws as `ServerResponse` does on a second call or an invalid status, name or value.
   */
  writeHead(statusCode: number, reasonOrHeaders?: string | Http1OutgoingHeaders, headers?: Http1OutgoingHeaders): this {
    if (this.#head !== undefined) throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    const status = statusCode | 0;
    if (status < 100 || status > 999) throw Object.assign(new RangeError(`Invalid status code: ${statusCode}`), { code: 'ERR_HTTP_INVALID_STATUS_CODE' });
    let reason: string;
    let list: Http1OutgoingHeaders | undefined;
    if (typeof reasonOrHeaders === 'string') {
      reason = reasonOrHeaders;
      if (invalidValue(reason)) throw headerError('ERR_INVALID_CHAR', 'Invalid character in statusMessage');
      list = headers;
    } else {
      reason = STATUS_CODES[status] ?? 'unknown';
      list = reasonOrHeaders;
    }
    this.statusCode = status;
    // Noted afresh by #line (a call that threw may have noted some).
    this.#hasLength = this.#hasDate = this.#hasConnection = this.#connectionClose = false;
    this.#transferEncoding = 0;
    let head = `HTTP/1.1 ${status} ${reason}\r\n`;
    if (list !== undefined) {
      if (isRawList(list)) {
        for (let i = 0; i + 1 < list.length; i += 2) head += this.#line(list[i] as string, String(list[i + 1]));
      } else {
        for (const name in list) {
          const value = list[name];
          if (value === undefined) continue;
          if (typeof value === 'object') for (const item of value) head += this.#line(name, String(item));
          else head += this.#line(name, typeof value === 'string' ? value : String(value));
        }
      }
    }
    this.#head = head;
    return this;
  }

  /** Send a piece of the body (the head first, if it has not gone). Returns false when the socket's buffer is full: wait for 'drain'. */
  write(chunk: string | Uint8Array): boolean {
    if (this.#state !== State.Open) return false;
    let text = this.#framing === Framing.Unset ? this.#start(-1) : '';
    if (this.#framing === Framing.None) {
      if (text !== '') this.#socket.write(text, 'latin1');
      return true;
    }
    const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    if (length === 0) return text === '' || this.#wrote(this.#socket.write(text, 'latin1'));
    if (this.#framing === Framing.Chunked) {
      text += this.#chunkOpen ? `\r\n${length.toString(16)}\r\n` : `${length.toString(16)}\r\n`;
      this.#chunkOpen = true;
      // What else is written in this tick (the next chunk, the last one) leaves in the same writev, as with ServerResponse.
      if (!this.#corked) {
        this.#corked = true;
        this.#socket.cork();
        process.nextTick(uncorkTick, this);
      }
    }
    return this.#wrote(this.#send(text, chunk, length, ''));
  }

  /** Send the last piece (if any) and the end of the body. 'finish' then 'close' are emitted before it returns. */
  end(chunk?: string | Uint8Array): this {
    if (this.#state !== State.Open) return this;
    let length = chunk === undefined ? 0 : typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    let text = this.#framing === Framing.Unset ? this.#start(length) : '';
    const framing = this.#framing;
    if (framing === Framing.None) length = 0;
    let tail = '';
    if (framing === Framing.Chunked) {
      if (length > 0) {
        text += this.#chunkOpen ? `\r\n${length.toString(16)}\r\n` : `${length.toString(16)}\r\n`;
        tail = '\r\n0\r\n\r\n';
      } else {
        text += this.#chunkOpen ? '\r\n0\r\n\r\n' : '0\r\n\r\n';
      }
    }
    if (length > 0) this.#send(text, chunk as string | Uint8Array, length, tail);
    else if (text !== '') this.#socket.write(text, 'latin1');
    if (this.#corked) this._uncork();
    this.#state = State.Finished;
    this.#emitOnce('finish');
    this.#emitOnce('close');
    this.#owner.responseFinished(this.#close);
    return this;
  }

  /** End the exchange at once: the connection is destroyed (the client sees it close) and 'close' follows. */
  destroy(_error?: Error): this {
    if (this.#state === State.Open) this.#socket.destroy();
    return this;
  }

  on(event: Event, listener: Listener): this {
    this.#add(event, listener);
    return this;
  }

  addListener(event: Event, listener: Listener): this {
    return this.on(event, listener);
  }

  /** 'finish' and 'close' happen once anyway; a 'drain' listener is removed as it is called. */
  once(event: Event, listener: Listener): this {
    if (event !== 'drain') {
      this.#add(event, listener);
      return this;
    }
    const wrapper: OnceListener = () => {
      this.off('drain', wrapper);
      listener();
    };
    wrapper.listener = listener;
    this.#add(event, wrapper);
    return this;
  }

  off(event: Event, listener: Listener): this {
    const listeners = this.#listeners(event);
    if (listeners === undefined) return this;
    for (let i = listeners.length - 1; i >= 0; i--) {
      const known = listeners[i] as OnceListener;
      if (known === listener || known.listener === listener) {
        listeners.splice(i, 1);
        break;
      }
    }
    return this;
  }

  removeListener(event: Event, listener: Listener): this {
    return this.off(event, listener);
  }

  removeAllListeners(event?: Event): this {
    if (event === undefined || event === 'drain') this.#drain = undefined;
    if (event === undefined || event === 'finish') this.#finish = undefined;
    if (event === undefined || event === 'close') this.#closeListeners = undefined;
    return this;
  }

  /** @internal The socket has room again. */
  _drained(): void {
    if (!this.#needDrain || this.#state !== State.Open) return;
    this.#needDrain = false;
    const listeners = this.#drain;
    if (listeners === undefined) return;
    if (listeners.length === 1) (listeners[0] as Listener)();
    else for (const listener of listeners.slice()) listener();
  }

  /** @internal The connection closed before the end. */
  _gone(): void {
    if (this.#state !== State.Open) return;
    this.#state = State.Closed;
    this.#corked = false;
    this.#emitOnce('close');
  }

  /** @internal */
  _uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#socket.uncork();
  }

  /** The head as it goes out, framing and connection decided; `endLength` is the whole body's length when `end` writes the head, else -1. */
  #start(endLength: number): string {
    if (this.#head === undefined) this.writeHead(this.statusCode);
    let head = this.#head as string;
    const status = this.statusCode;
    let close = this.#connectionClose || !this.#owner.keepAliveAfter();
    if (this.#headRequest || status < 200 || status === 204 || status === 304) {
      this.#framing = Framing.None;
    } else if (this.#hasLength) {
      this.#framing = Framing.Length;
    } else if (this.#transferEncoding !== 0) {
      this.#framing = this.#transferEncoding === 1 ? Framing.Chunked : Framing.Close;
      if (this.#framing === Framing.Close) close = true;
    } else if (endLength >= 0) {
      head += `content-length: ${endLength}\r\n`;
      this.#framing = Framing.Length;
    } else if (!this.#http10) {
      head += 'transfer-encoding: chunked\r\n';
      this.#framing = Framing.Chunked;
    } else {
      this.#framing = Framing.Close;
      close = true;
    }
    if (!this.#hasDate) head += `date: ${httpDate()}\r\n`;
    if (!this.#hasConnection) {
      if (close) head += 'connection: close\r\n';
      else if (this.#http10) head += 'connection: keep-alive\r\n';
    }
    this.#close = close;
    return `${head}\r\n`;
  }

  /** One header line, checked as `ServerResponse` checks it; notes the headers that decide framing. */
  #line(name: string, value: string): string {
    if (invalidName(name)) throw headerError('ERR_INVALID_HTTP_TOKEN', `Header name must be a valid HTTP token ["${name}"]`);
    if (invalidValue(value)) throw headerError('ERR_INVALID_CHAR', `Invalid character in header content ["${name}"]`);
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'date') this.#hasDate = true;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          this.#hasConnection = true;
          if (hasToken(value, 'close')) this.#connectionClose = true;
        }
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') this.#hasLength = true;
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') this.#transferEncoding = value.trimEnd().toLowerCase().endsWith('chunked') ? 1 : 2;
        break;
    }
    return `${name}: ${value}\r\n`;
  }

  /**
   * `text` (head, chunk-size line: latin1), the chunk, `tail` (latin1), in one socket write when it is
   * cheap to make one (ASCII text, or a chunk small enough to copy), else in one writev.
   */
  #send(text: string, chunk: string | Uint8Array, length: number, tail: string): boolean {
    const socket = this.#socket;
    if (typeof chunk === 'string') {
      // ASCII text reads the same in latin1 and utf8.
      if (length === chunk.length) return socket.write(text + chunk + tail, 'latin1');
      chunk = Buffer.from(chunk);
    }
    if (text === '' && tail === '') return socket.write(chunk);
    if (length <= COPY_LIMIT) {
      const buffer = Buffer.allocUnsafe(text.length + length + tail.length);
      buffer.write(text, 0, 'latin1');
      buffer.set(chunk, text.length);
      if (tail !== '') buffer.write(tail, text.length + length, 'latin1');
      return socket.write(buffer);
    }
    const corked = this.#corked;
    if (!corked) socket.cork();
    if (text !== '') socket.write(text, 'latin1');
    let ok = socket.write(chunk);
    if (tail !== '') ok = socket.write(tail, 'latin1');
    if (!corked) socket.uncork();
    return ok;
  }

  #wrote(ok: boolean): boolean {
    if (!ok) this.#needDrain = true;
    return ok;
  }

  #listeners(event: Event): Listener[] | undefined {
    return event === 'drain' ? this.#drain : event === 'finish' ? this.#finish : this.#closeListeners;
  }

  #add(event: Event, listener: Listener): void {
    const listeners = this.#listeners(event);
    if (listeners !== undefined) listeners.push(listener);
    else if (event === 'drain') this.#drain = [listener];
    else if (event === 'finish') this.#finish = [listener];
    else this.#closeListeners = [listener];
  }

  /** 'finish' and 'close' happen once: their listeners are let go as they are called. */
  #emitOnce(event: 'finish' | 'close'): void {
    const listeners = event === 'finish' ? this.#finish : this.#closeListeners;
    if (listeners === undefined) return;
    if (event === 'finish') this.#finish = undefined;
    else this.#closeListeners = undefined;
    for (const listener of listeners) listener();
  }
}

function isRawList(headers: Http1OutgoingHeaders): headers is readonly string[] {
  return Array.isArray(headers);
}

/** Does a comma-separated header value hold `token` (case-insensitive)? */
function hasToken(value: string, token: string): boolean {
  for (const part of value.split(',')) if (part.trim().toLowerCase() === token) return true;
  return false;
}
