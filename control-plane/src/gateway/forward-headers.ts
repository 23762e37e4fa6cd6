import { randomFillSync } from 'node:crypto';

/**
 * Lower-case header names looked up by length first: most names a request or response carries have
 * a length none of these has, and are never lower-cased or hashed. `get` takes a name in any case.
 */
class NameTable<T> {
  readonly #byLength: Array<Array<readonly [string, T]> | undefined> = [];

  constructor(entries: ReadonlyArray<readonly [string, T]>) {
    for (const entry of entries) (this.#byLength[entry[0].length] ??= []).push(entry);
  }

  get(name: string): T | undefined {
    const candidates = this.#byLength[name.length];
    if (candidates === undefined) return undefined;
    const lower = name.toLowerCase();
    for (const [known, value] of candidates) if (known === lower) return value;
    return undefined;
  }
}

/** What the gateway does with a request header of this name. */
const enum RequestHeader {
  /** Hop-by-hop (RFC 9110, 7.6.1, and the legacy ones proxies still meet): never forwarded. */
  Dropped = 1,
  /** Not hop-by-hop, but the upstream gets its own; noted for the forwarding headers. */
  Host,
  /** The gateway's own (`X-Forwarded-Proto/Host/Prefix`): the client's copy is replaced. */
  Owned,
  /** Extended with the client: the client's copies are kept in front. */
  ForwardedFor,
  Forwarded,
  /** Continued: the client's trace id is kept. */
  Traceparent,
}

const REQUEST_HEADERS = new NameTable<RequestHeader>([
  ['connection', RequestHeader.Dropped],
  ['keep-alive', RequestHeader.Dropped],
  ['proxy-connection', RequestHeader.Dropped],
  ['te', RequestHeader.Dropped],
  ['trailer', RequestHeader.Dropped],
  ['transfer-encoding', RequestHeader.Dropped],
  ['upgrade', RequestHeader.Dropped],
  ['proxy-authorization', RequestHeader.Dropped],
  ['host', RequestHeader.Host],
  ['x-forwarded-proto', RequestHeader.Owned],
  ['x-forwarded-host', RequestHeader.Owned],
  ['x-forwarded-prefix', RequestHeader.Owned],
  ['x-forwarded-for', RequestHeader.ForwardedFor],
  ['forwarded', RequestHeader.Forwarded],
  ['traceparent', RequestHeader.Traceparent],
]);

/** Hop-by-hop response headers: never passed on to the client. */
const RESPONSE_DROPPED = new NameTable<true>(
  ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate'].map((name) => [name, true] as const),
);

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

/**
 * The names a `Connection` header lists (lower case), which are hop-by-hop for this message; undefined
 * when it lists none but `keep-alive` and `close` (the usual values), which are dropped anyway.
 */
function connectionTokens(rawHeaders: readonly string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).length !== 10 || (rawHeaders[i] as string).toLowerCase() !== 'connection') continue;
    const value = rawHeaders[i + 1] as string;
    if ((value.length === 10 || value.length === 5) && (value.toLowerCase() === 'keep-alive' || value.toLowerCase() === 'close')) continue;
    for (const token of value.split(',')) {
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
  const drop = context.drop !== undefined && context.drop.length > 0 ? context.drop : undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    // HTTP/2's pseudo-headers (:method, :path, :scheme, :authority) describe this hop only.
    if (name.charCodeAt(0) === 58) {
      if (name === ':authority') host = value;
      continue;
    }
    const kind = REQUEST_HEADERS.get(name);
    if (kind === RequestHeader.Dropped) continue;
    if (kind === RequestHeader.Host) {
      host = value;
      continue;
    }
    // Named in Connection, or taken by a middleware: not forwarded, and not merged into the gateway's own.
    if ((hopByHop !== undefined || drop !== undefined) && (hopByHop?.has(name.toLowerCase()) === true || drop?.includes(name.toLowerCase()) === true)) continue;
    if (kind === undefined) out.push(name, value);
    else if (kind === RequestHeader.ForwardedFor) forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
    else if (kind === RequestHeader.Forwarded) forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
    else if (kind === RequestHeader.Traceparent) traceparent = value;
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
  const hopByHop = connectionTokens(rawHeaders);
  const kept: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (RESPONSE_DROPPED.get(name) === true || (hopByHop !== undefined && hopByHop.has(name.toLowerCase()))) continue;
    kept.push(name, rawHeaders[i + 1] as string);
  }
  return kept;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);

/**
 * Random ids as hex, cut from a refilled pool: one `randomFillSync` and one hex encoding per 256
 * traceparents rather than a call into C++ for each id (slicing a string stays in JavaScript).
 */
const POOL_BYTES = 6144;
let hexPool = '';
let offset = 0;
function randomHex(bytes: number): string {
  const chars = bytes * 2;
  if (offset + chars > hexPool.length) {
    hexPool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES)).toString('hex');
    offset = 0;
  }
  const hex = hexPool.slice(offset, offset + chars);
  offset += chars;
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
