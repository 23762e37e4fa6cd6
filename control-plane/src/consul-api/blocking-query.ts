/**
 * Consul's read options and blocking queries: `?index=N&wait=5m` holds a read until the index moves
 * past N or the wait is over (default 5 minutes, at most 10, plus up to wait/16 of random jitter so that
 * clients woken together do not all come back together), `?stale` / `?consistent`, `?dc`.
 */

import { type EventEmitter } from 'node:events';
import { parseDuration } from '../config/duration.js';
import { PorticoError } from '../errors.js';
import { type RegistryBackend } from '../registry/registry-backend.js';

/** How long a blocking read waits when it names no `wait`. */
export const DEFAULT_WAIT_MS = 5 * 60_000;
/** The longest `wait` honoured; longer ones are cut to it. */
export const MAX_WAIT_MS = 10 * 60_000;
/** Consul's jitter fraction: up to wait/16 is added. */
const JITTER_FRACTION = 16;

/** A query string as Fastify parses it: repeated parameters arrive as arrays. */
export type ConsulQuery = Record<string, string | string[] | undefined>;

/** The consistency mode a read asked for; with one server, all three read the same state. */
export type Consistency = 'default' | 'stale' | 'consistent';

/** What a read asked for. */
export interface ReadOptions {
  /** Block until the index is past this; 0 for no blocking. */
  index: number;
  /** The longest the read may block, before jitter. */
  waitMs: number;
  consistency: Consistency;
}

/** The first value of a query parameter, if it was sent. */
export function queryValue(query: ConsulQuery, name: string): string | undefined {
  const value = query[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Every value of a query parameter (`?tag=a&tag=b`). */
export function queryValues(query: ConsulQuery, name: string): string[] {
  const value = query[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

const GO_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const GO_FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/**
 * A boolean parameter as Consul reads it: absent is `undefined`, present without a value (`?passing`)
 * is true, otherwise Go's `strconv.ParseBool`.
 * @throws PorticoError `PORTICO_ERR_REQUEST_INVALID` for any other value.
 */
export function queryBool(query: ConsulQuery, name: string): boolean | undefined {
  const value = queryValue(query, name);
  if (value === undefined) return undefined;
  if (value === '' || GO_TRUE.has(value)) return true;
  if (GO_FALSE.has(value)) return false;
  throw new PorticoError('PORTICO_ERR_REQUEST_INVALID', {
    message: `Invalid value for ?${name}: "${value}" (use true or false).`,
    details: [{ location: `querystring/${name}`, problem: 'must be true or false' }],
  });
}

function invalid(name: string, message: string): PorticoError {
  return new PorticoError('PORTICO_ERR_REQUEST_INVALID', { message, details: [{ location: `querystring/${name}`, problem: message }] });
}

/**
 * The read options of a catalog or health read, checked as Consul checks them.
 * @throws PorticoError `PORTICO_ERR_REQUEST_INVALID` for a bad index or wait, `?stale` with
 *   `?consistent`, or a `?filter` (not supported); `PORTICO_ERR_CONSUL_UNKNOWN_DATACENTER` for a `?dc`
 *   other than Portico's.
 */
export function parseReadOptions(query: ConsulQuery, datacenter: string): ReadOptions {
  const dc = queryValue(query, 'dc');
  if (dc !== undefined && dc !== '' && dc !== datacenter) {
    throw new PorticoError('PORTICO_ERR_CONSUL_UNKNOWN_DATACENTER', { message: `There is no path to datacenter "${dc}": Portico serves "${datacenter}" only.` });
  }
  const stale = query.stale !== undefined;
  const consistent = query.consistent !== undefined;
  if (stale && consistent) throw invalid('stale', 'Cannot specify ?stale with ?consistent, conflicting semantics.');
  // Answering a filtered query unfiltered would be wrong in silence.
  if ((queryValue(query, 'filter') ?? '') !== '') throw invalid('filter', 'Filter expressions (?filter) are not supported by Portico; filter on the client.');

  let waitMs = DEFAULT_WAIT_MS;
  const wait = queryValue(query, 'wait');
  if (wait !== undefined && wait !== '') {
    try {
      waitMs = Math.min(parseDuration(wait), MAX_WAIT_MS);
    } catch (error) {
      throw invalid('wait', `Invalid wait time "${wait}": ${error instanceof RangeError ? error.message : 'not a duration'}.`);
    }
  }
  let index = 0;
  const text = queryValue(query, 'index');
  if (text !== undefined && text !== '') {
    index = /^\d{1,15}$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(index)) throw invalid('index', `Invalid index "${text}": it must be a non-negative integer.`);
  }
  return { index, waitMs, consistency: consistent ? 'consistent' : stale ? 'stale' : 'default' };
}

/** The wait with Consul's random jitter added. */
export function withJitter(waitMs: number, random: () => number = Math.random): number {
  return waitMs + Math.floor(random() * (waitMs / JITTER_FRACTION));
}

/** What a blocking read watches for its client going away: the HTTP response. */
export type Connection = Pick<EventEmitter, 'once' | 'off'> & { readonly destroyed: boolean };

/**
 * The blocking reads in progress. Each waits on the backend's index and ends early when its client
 * disconnects (so no waiter outlives its request) or when the server closes (so shutting down does not
 * wait out every long poll).
 */
export class BlockingQueries {
  readonly #backend: RegistryBackend;
  readonly #random: () => number;
  readonly #active = new Set<AbortController>();

  constructor(backend: RegistryBackend, options: { random?: () => number } = {}) {
    this.#backend = backend;
    this.#random = options.random ?? Math.random;
  }

  /** How many reads are blocked now. */
  get size(): number {
    return this.#active.size;
  }

  /**
   * Resolve once a read with `options` may go ahead: at once without an index, else when the index
   * (the service's, or the registry's) moves past it, the wait is over, the client disconnects, or
   * `abortAll` is called.
   */
  async wait(options: ReadOptions, service: string | undefined, connection: Connection): Promise<void> {
    if (options.index === 0 || connection.destroyed) return;
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    connection.once('close', abort);
    this.#active.add(controller);
    try {
      await this.#backend.waitForChange(options.index, {
        ...(service === undefined ? {} : { service }),
        timeoutMs: withJitter(options.waitMs, this.#random),
        signal: controller.signal,
      });
    } finally {
      connection.off('close', abort);
      this.#active.delete(controller);
    }
  }

  /** End every blocked read now; each answers with the state as it is. */
  abortAll(): void {
    for (const controller of this.#active) controller.abort();
  }
}
