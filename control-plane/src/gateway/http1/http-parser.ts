import { createRequire } from 'node:module';

/**
 * Node's own HTTP/1.1 parser (llhttp, the one `node:http` uses), reached through `_http_common`. The
 * gateway's HTTP/1.1 engine parses with it so that it refuses exactly what Node's strict parser refuses
 * (Content-Length with Transfer-Encoding, duplicate lengths, bad chunk sizes, obs-fold, bare CR, NUL,
 * ...) while skipping the `IncomingMessage`/`ServerResponse` machinery built around it.
 *
 * Callbacks are set by index (`HTTPParser.kOnHeadersComplete`, ...), as Node does:
 *   kOnHeaders(headers, url)                       more headers than fit one callback (accumulate them)
 *   kOnHeadersComplete(versionMajor, versionMinor, headers | undefined, method (index into `METHODS`) | undefined,
 *                      url | undefined, statusCode | undefined, statusMessage | undefined, upgrade, shouldKeepAlive)
 *                                                  return 1 to say the message has no body (a response to HEAD)
 *   kOnBody(chunk)                                 a slice of the buffer given to `execute`
 *   kOnMessageComplete()
 * `execute(chunk)` returns the bytes parsed, or an `Error` with `code` (`HPE_*`), `reason` and
 * `bytesParsed`. On an upgrade it stops after the headers and returns how far it got: the rest is the
 * upgraded protocol's. Pausing from a callback is not supported by the binding.
 *
 * Consume mode (what `node:http`'s server does): `consume(handle)` makes the parser the listener of a
 * socket's stream handle (`socket._handle`, when `isStreamBase`). Each read then lands in one static
 * buffer and is parsed in C++ at once: no `Buffer` per read, no `'data'` event, no `execute` call from
 * JavaScript. JavaScript gets the parser callbacks as before, then `kOnExecute(ret)` after each read
 * (`ret` as `execute` returns it). Body chunks are copies (the buffer is reused). EOF and read errors
 * still reach the socket (`'end'`, `'error'`). `socket.pause()` no longer stops the reads: stop the
 * handle itself (`readStop()`/`readStart()`, keeping `handle.reading` in step, as `net` does).
 * `getCurrentBuffer()`, within `kOnExecute`, copies the read just parsed. `unconsume()` gives the reads
 * back to the socket. `close()` frees the parser at once: never from within its own read (defer it).
 */
export interface HttpParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(chunk: Buffer): number | (Error & { code: string; reason: string; bytesParsed: number });
  finish(): undefined | (Error & { code: string; reason: string; bytesParsed: number });
  close(): void;
  free(): void;
  remove(): void;
  consume(handle: StreamHandle): void;
  unconsume(): void;
  getCurrentBuffer(): Buffer;
  /** Whether the last message begun has had its whole head (false before any, and from a new message's first byte). */
  headersCompleted(): boolean;
  [callback: number]: ((...args: never[]) => unknown) | undefined;
}

/** A socket's libuv stream handle (`socket._handle`), as far as consume mode needs it. */
export interface StreamHandle {
  readonly isStreamBase?: boolean;
  /** `net`'s own note of whether the handle reads; kept in step with `readStart`/`readStop`. */
  reading: boolean;
  /** Set while a parser consumes the handle (as `node:http` marks it). */
  _consumed?: boolean;
  readStart(): number;
  readStop(): number;
}

/** The socket's stream handle if a parser can consume it (a TCP or pipe handle, not yet consumed). */
export function consumableHandle(socket: object): StreamHandle | undefined {
  const handle = (socket as { _handle?: StreamHandle | null })._handle;
  return handle?.isStreamBase === true && handle._consumed !== true ? handle : undefined;
}

interface HttpParserClass {
  new (): HttpParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kOnExecute: number;
  readonly kLenientNone: number;
}

const common = createRequire(import.meta.url)('_http_common') as { HTTPParser: HttpParserClass; methods: readonly string[] };

export const HTTPParser: HttpParserClass = common.HTTPParser;

/**
 * The method names by llhttp's own numbering, the index `kOnHeadersComplete` gives. `_http_common`'s
 * `methods` is not that table: it leaves out the codes llhttp gives `PRI` and the RTSP methods, so from
 * `QUERY` on its index is wrong (`QUERY` is 46 to llhttp, 34 in `methods`). The parser itself is asked,
 * once, which code each method gets, so the table follows the llhttp of whichever Node runs it.
 */
function methodTable(names: readonly string[]): readonly string[] {
  const table: string[] = [];
  const parser = new HTTPParser();
  let code = -1;
  parser[HTTPParser.kOnHeadersComplete] = (_major: number, _minor: number, _headers: unknown, method: number) => {
    code = method;
  };
  for (const name of names) {
    code = -1;
    parser.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone);
    parser.execute(Buffer.from(`${name} / HTTP/1.1\r\n\r\n`, 'latin1'));
    if (code >= 0) table[code] = name;
  }
  parser.close();
  return table;
}

/** Method names by the index `kOnHeadersComplete` gives. */
export const METHODS: readonly string[] = methodTable(common.methods);
