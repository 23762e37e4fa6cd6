import { type GatewayRoute } from '../gateway/gateway-route.js';
/**
 * The store port: everything the control plane keeps durably. Two adapters implement it with kysely,
 * `SqliteStore` (better-sqlite3, the default: one file in the data directory) and `PostgresStore`
 * (scale-out). Both pass the same contract suite (`test/contract/store.contract.ts`).
 *
 * The port exposes no driver types. Driver failures surface as `PorticoError`s with the same code on
 * both dialects (`PORTICO_ERR_STORE_*`, or a domain code such as `PORTICO_ERR_TOKEN_NAME_TAKEN`), the
 * original kept as `cause`.
 */

import { type Instance } from '../registry/registry.js';

export const ROLES = ['admin', 'operator', 'viewer', 'agent'] as const;
export type Role = (typeof ROLES)[number];

/** An API token as stored: never the secret itself, only its SHA-256 hash. */
export interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  /** Hex SHA-256 of the secret. Internal: never sent to a client. */
  hash: string;
  /** The first characters of the secret (e.g. `ptc_ab12`), so an operator can tell tokens apart. */
  prefix: string;
  createdAt: Date;
  /** Id of the token that created this one; `null` for the first admin token made at start-up. */
  createdBy: string | null;
  /** `agent` tokens: the services whose instances it may register and report on. `null` for other roles. */
  services: string[] | null;
}

export interface NewToken {
  id: string;
  name: string;
  role: Role;
  hash: string;
  prefix: string;
  createdBy: string | null;
  createdAt?: Date;
  services?: string[] | null;
}

export interface TokenRepository {
  /**
   * Insert a token.
   * @throws PorticoError `PORTICO_ERR_TOKEN_NAME_TAKEN` when the name is in use (names are unique).
   */
  create(token: NewToken): Promise<TokenRecord>;
  /** The token whose secret hashes to `hash`, if any. */
  findByHash(hash: string): Promise<TokenRecord | undefined>;
  /** The token with this id, if any. */
  get(id: string): Promise<TokenRecord | undefined>;
  /** Every token, oldest first. */
  list(): Promise<TokenRecord[]>;
  /** How many tokens exist (used at start-up to decide whether to make the first admin token). */
  count(): Promise<number>;
  /**
   * Delete a token, refusing to remove the last admin token. Safe under concurrency: two requests
   * deleting the two last admin tokens at once cannot both succeed.
   * @returns the deleted token.
   * @throws PorticoError `PORTICO_ERR_TOKEN_NOT_FOUND`, `PORTICO_ERR_TOKEN_LAST_ADMIN`.
   */
  remove(id: string): Promise<TokenRecord>;
}

/** One row of the audit log: who did what to which target, and when. */
export interface AuditEntry {
  /** Monotonically increasing; newer entries have larger ids. */
  id: number;
  at: Date;
  /** Id of the token that made the change; `null` for the control plane itself (start-up). */
  actorId: string | null;
  /** Human-readable actor: the token's name, or `system`. */
  actorName: string;
  /** Dotted verb, e.g. `token.create`. */
  action: string;
  /** What was changed, e.g. `token:7f3a…`. */
  target: string;
  /** Extra structured detail (never a secret). */
  details: Record<string, unknown> | null;
}

export interface NewAuditEntry {
  actorId: string | null;
  actorName: string;
  action: string;
  target: string;
  details?: Record<string, unknown> | null;
  at?: Date;
}

export interface AuditQuery {
  /** At most this many entries (newest first). */
  limit: number;
  /** Only entries with an id lower than this (for paging backwards). */
  before?: number;
  /** Only entries with this action. */
  action?: string;
}

export interface AuditRepository {
  /** Append an entry; returns it with its id and time. */
  append(entry: NewAuditEntry): Promise<AuditEntry>;
  /** Append several entries, in order (their ids grow in the order given). */
  appendMany(entries: readonly NewAuditEntry[]): Promise<void>;
  /** Entries newest first. */
  list(query: AuditQuery): Promise<AuditEntry[]>;
}

/** The embedded registry's persisted state: every instance, and the index. */
export interface StoredRegistry {
  index: number;
  instances: Instance[];
}

/**
 * Where the embedded registry writes its state through. It keeps the working set in memory; this
 * repository only loads it at start and records each change.
 */
export interface RegistryRepository {
  /** Every instance and the index, as last saved. An empty store reads as index 0, no instances. */
  load(): Promise<StoredRegistry>;
  /**
   * Write a group of changes: insert or replace the instances in `save`, delete those in `remove` (a
   * no-op when absent), and record `index` as the registry's index. An id is in at most one of the two.
   */
  write(changes: RegistryWrite): Promise<void>;
}

export interface RegistryWrite {
  save: readonly Instance[];
  remove: readonly string[];
  index: number;
}

/** The gateway's explicit routes (`/api/v1/routes`). */
export interface RouteRepository {
  /** Every route, by name. */
  list(): Promise<GatewayRoute[]>;
  get(id: string): Promise<GatewayRoute | undefined>;
  /** @throws PorticoError `PORTICO_ERR_ROUTE_NAME_TAKEN`. */
  create(route: GatewayRoute): Promise<GatewayRoute>;
  /** Replace a route's fields (its id and creation time stay). @throws PorticoError `PORTICO_ERR_ROUTE_NOT_FOUND`, `PORTICO_ERR_ROUTE_NAME_TAKEN`. */
  update(route: GatewayRoute): Promise<GatewayRoute>;
  /** @returns the deleted route. @throws PorticoError `PORTICO_ERR_ROUTE_NOT_FOUND`. */
  remove(id: string): Promise<GatewayRoute>;
}

/** One message type a service consumes. */
export interface Subscription {
  service: string;
  messageType: string;
  /** When the service's current set of message types was declared (the same on every row of a service). */
  declaredAt: Date;
}

/** What `TopologyRepository.replace` found and left. */
export interface SubscriptionReplacement {
  /** The service's subscriptions before the call, by message type. */
  before: Subscription[];
  /** Its subscriptions after the call, by message type (empty when it now consumes nothing). */
  after: Subscription[];
  /** Whether the set of message types differed, so rows were written. */
  changed: boolean;
}

/**
 * The message topology (`/api/v1/topology`): which service consumes which message types. Lists are
 * ordered by code point (service, then message type), the same on both dialects whatever the
 * database's collation.
 */
export interface TopologyRepository {
  /** Every subscription, by service, then by message type. */
  list(): Promise<Subscription[]>;
  /** One service's subscriptions, by message type; empty when it has none. */
  ofService(service: string): Promise<Subscription[]>;
  /**
   * Make `messageTypes` the whole set `service` consumes (duplicates count once). When the set differs
   * from the stored one, every row of the service is written stamped `declaredAt`; when it is the same,
   * nothing is written and the stored times stay. Atomic on its own, and concurrent calls for one
   * service queue, so the last one's set is what remains.
   */
  replace(service: string, messageTypes: readonly string[], declaredAt: Date): Promise<SubscriptionReplacement>;
  /** Delete every subscription of `service`. @returns those deleted, by message type (empty: it had none). */
  removeService(service: string): Promise<Subscription[]>;
}

/** The repositories, as seen inside or outside a transaction. */
export interface StoreSession {
  readonly tokens: TokenRepository;
  readonly audit: AuditRepository;
  readonly registry: RegistryRepository;
  readonly routes: RouteRepository;
  readonly topology: TopologyRepository;
}

export interface Store extends StoreSession {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Open connections and run pending migrations (versioned, in order, each once). Must be called
   * before any other method. Idempotent.
   * @throws PorticoError `PORTICO_ERR_STORE_UNAVAILABLE`, `PORTICO_ERR_STORE_MIGRATION_FAILED`.
   */
  start(): Promise<void>;
  /** Run `work` in one transaction: every change inside commits together or not at all. */
  transaction<T>(work: (session: StoreSession) => Promise<T>): Promise<T>;
  /**
   * Cheap round trip proving the store answers (used by `/readyz`).
   * @throws PorticoError `PORTICO_ERR_STORE_UNAVAILABLE`.
   */
  ping(): Promise<void>;
  /** Names of the migrations applied, in order. */
  appliedMigrations(): Promise<string[]>;
  /** Close every connection. Idempotent. */
  close(): Promise<void>;
}
