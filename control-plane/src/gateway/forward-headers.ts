import { randomFillSync } from 'node:crypto';

/**
 * Hop-by-hop headers (RFC 9110, 7.6.1, and the legacy ones proxies still meet): they describe one
 * connection and are never forwarded. `host` is not hop-by-hop, but the upstream gets its own.
 */
const REQUEST_DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'host']);
const RESPONSE_DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate']);

/** Headers the gateway sets itself: whatever a client sends under these names is replaced, never passed on. */
const GATEWAY_OWNED = new Set(['x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-prefix', 'traceparent', 'x-forwarded-for', 'forwarded']);

export interface ForwardContext {
  /** The client's address (the TCP peer). */
  remoteAddress: string;
  /** `http` or `https`, as the client reached the gateway. */
  proto: string;
  /** More request headers (lower case) not to forward, e.g. an API key the gateway has checked. */
  drop?: readonly string[] | undefined;
  /** What the route took off the front of the path (`/<service>` for the discovery rule); empty: nothing. */
  prefix: string;
}

/** The names a `Connection` header lists (lower case), which are hop-by-hop for this message. */
function connectionTokens(rawHeaders: readonly string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).length !== 10 || (rawHeaders[i] as string).toLowerCase() !== 'connection') continue;
    for (const token of (rawHeaders[i + 1] as string).split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') (tokens ??= new Set()).add(name);
    }
  }
  return tokens;
}

/**
 * The request headers sent upstream, as a flat `[name, value, ...]` list: the client's headers without
 * the hop-by-hop ones (including any its `Connection` header names), then the gateway's own:
 * `X-Forwarded-For` and `Forwarded` extended with the client, `X-Forwarded-Proto/Host/Prefix` and a
 * `traceparent` continuing the client's trace or starting one. A client naming one of those in
 * `Connection` only drops its own copy; the gateway's is always sent.
 */
export function forwardRequestHeaders(rawHeaders: readonly string[], context: ForwardContext): string[] {
  const hopByHop = connectionTokens(rawHeaders);
  const out: string[] = [];
  let host = '';
  let forwardedFor: string | undefined;
  let forwarded: string | undefined;
  let traceparent: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    // HTTP/2's pseudo-headers (:method, :path, :scheme, :authority) describe this hop only.
    if (name.charCodeAt(0) === 58) {
      if (name === ':authority') host = value;
      continue;
    }
    const lower = name.toLowerCase();
    if (lower === 'host') host = value;
    if (REQUEST_DROPPED.has(lower) || hopByHop?.has(lower) === true || context.drop?.includes(lower) === true) continue;
    if (GATEWAY_OWNED.has(lower)) {
      if (lower === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      else if (lower === 'forwarded') forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
      else if (lower === 'traceparent') traceparent = value;
      continue;
    }
    out.push(name, value);
  }
  const client = context.remoteAddress;
  const forNode = client.includes(':') ? `"[${client}]"` : client;
  out.push(
    'x-forwarded-for',
    forwardedFor === undefined ? client : `${forwardedFor}, ${client}`,
    'forwarded',
    `${forwarded === undefined ? '' : `${forwarded}, `}for=${forNode};proto=${context.proto}${host === '' ? '' : `;host="${quotable(host)}"`}`,
    'x-forwarded-proto',
    context.proto,
    'traceparent',
    continueTrace(traceparent),
  );
  if (host !== '') out.push('x-forwarded-host', host);
  if (context.prefix !== '') out.push('x-forwarded-prefix', context.prefix);
  return out;
}

/** A value to put between double quotes: without `"` and `\\` (a host has neither unless it is forged). */
function quotable(value: string): string {
  return value.includes('"') || value.includes('\\') ? value.replace(/["\\]/g, '') : value;
}

/**
 * The response headers sent to the client, as a flat list for `writeHead`: the upstream's without the
 * hop-by-hop ones (and those its `Connection` header names).
 */
export function forwardResponseHeaders(rawHeaders: readonly string[]): string[] {
  let hopByHop: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length !== 10 || name.toLowerCase() !== 'connection') continue;
    for (const token of (rawHeaders[i + 1] as string).split(',')) (hopByHop ??= new Set()).add(token.trim().toLowerCase());
  }
  const kept: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const lower = name.toLowerCase();
    if (RESPONSE_DROPPED.has(lower) || hopByHop?.has(lower) === true) continue;
    kept.push(name, rawHeaders[i + 1] as string);
  }
  return kept;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);

/** Random ids from a refilled buffer: one `randomFillSync` per 512 ids rather than one per request. */
const pool = Buffer.alloc(4096);
let offset = pool.length;
function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

/**
 * A W3C `traceparent` for the upstream hop: the client's trace id and flags with a new parent id, or a
 * new sampled trace when the client sent none (or an invalid one).
 */
export function continueTrace(incoming: string | undefined): string {
  const match = incoming === undefined ? null : TRACEPARENT.exec(incoming);
  if (match !== null && match[1] !== ZERO_TRACE) return `00-${match[1] as string}-${randomHex(8)}-${match[2] as string}`;
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}
