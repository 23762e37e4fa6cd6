import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';

/**
 * HTTP over `node:http`, with no client library. Measured on Node 20 in an idle process that makes one
 * request: `node:http` adds ~1 MB of anonymous memory (~4 MB RSS), global `fetch` ~5 MB (~12 MB RSS),
 * the `undici` package ~12 MB (~21 MB RSS). The sidecar's budget is a few MB above a bare `node`, and
 * an agent makes one small request per interval, so the built-in client is the one that fits.
 * `node:https` is loaded only for an `https:` URL.
 */

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** The whole exchange, connection to last byte, must finish within this. */
  timeoutMs: number;
  /** A keep-alive agent to reuse connections, or `false` for a fresh connection (health probes). */
  agent?: http.Agent | false;
  /** Bytes of body kept; the rest is read and dropped (default 64 KiB). */
  maxBodyBytes?: number;
}

type RequestFn = typeof http.request;

/** `http.request` or `https.request` for the URL. */
export async function requestFunction(url: URL): Promise<RequestFn> {
  if (url.protocol === 'http:') return http.request;
  if (url.protocol === 'https:') return (await import('node:https')).request;
  throw new TypeError(`unsupported protocol "${url.protocol}" in ${url.href}`);
}

/** Send a request and read the whole (bounded) body. Rejects on network errors and on the timeout. */
export async function httpRequest(url: URL, options: HttpRequestOptions): Promise<HttpResponse> {
  const request = await requestFunction(url);
  const maxBody = options.maxBodyBytes ?? 65_536;
  return new Promise<HttpResponse>((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
    const req = request(url, { method: options.method ?? 'GET', headers, agent: options.agent });
    const timer = setTimeout(() => req.destroy(new Error(`no complete answer within ${options.timeoutMs} ms`)), options.timeoutMs);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (chunk: Buffer) => {
        if (kept < maxBody) {
          chunks.push(chunk);
          kept += chunk.length;
        }
      });
      res.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).subarray(0, maxBody).toString('utf8') });
      });
    });
    req.end(options.body);
  });
}
