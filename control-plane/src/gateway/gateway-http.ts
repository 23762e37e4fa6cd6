import { type IncomingHttpHeaders } from 'node:http';
import { type Readable } from 'node:stream';

/**
 * A request as the gateway's request path sees it: what `node:http`'s `IncomingMessage` (HTTPS and
 * HTTP/2) and the gateway's own HTTP/1.1 engine (`Http1Request`, plain HTTP) both offer. The proxy and
 * the middlewares depend on this shape only, never on either server.
 */
export interface GatewayRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  /** Lower-case names; duplicates folded as Node folds them. */
  readonly headers: IncomingHttpHeaders;
  /** As received: `[name, value, ...]`. */
  readonly rawHeaders: string[];
  readonly httpVersionMajor: number;
  readonly socket: { readonly remoteAddress?: string | undefined; readonly encrypted?: boolean | undefined };
  /** Throw the body away (a request forwarded without one, or answered by the gateway itself). */
  resume(): unknown;
}

/** Response headers as the gateway writes them: a flat `[name, value, ...]` list, or an object. */
export type ResponseHeaders = string[] | Record<string, string | number>;

/** The members of a response the gateway's request path uses: `ServerResponse` has them, and so has `Http1Response`. */
export interface GatewayResponse {
  statusCode: number;
  readonly headersSent: boolean;
  readonly writableFinished: boolean;
  /** Headers as an object or a flat `[name, value, ...]` list. */
  writeHead(statusCode: number, statusMessage?: string, headers?: ResponseHeaders): unknown;
  writeHead(statusCode: number, headers?: ResponseHeaders): unknown;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): unknown;
  destroy(error?: Error): unknown;
  on(event: 'drain' | 'close' | 'finish', listener: () => void): unknown;
  once(event: 'drain' | 'close' | 'finish', listener: () => void): unknown;
  removeAllListeners(event?: 'drain' | 'close' | 'finish'): unknown;
}

/** A request's body as a stream: the `IncomingMessage` itself, or what the HTTP/1.1 engine makes on demand. */
export function requestBody(req: GatewayRequest): Readable {
  const own = (req as { body?: unknown }).body;
  return typeof own === 'function' ? (own as () => Readable).call(req) : (req as unknown as Readable);
}

/** The first value of a request header (`name` in lower case), read from the raw list without building `headers`. */
export function requestHeader(req: GatewayRequest, name: string): string | undefined {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const candidate = raw[i] as string;
    if (candidate.length === name.length && (candidate === name || candidate.toLowerCase() === name)) return raw[i + 1];
  }
  return undefined;
}
