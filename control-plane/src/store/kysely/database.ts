import { type ColumnType, type Selectable } from 'kysely';

/**
 * A 64-bit integer column. SQLite hands it back as a number; pg hands `int8` back as a string, because
 * not every int8 fits a JS number. Portico's int8 values (epoch milliseconds, audit ids) stay far below
 * 2^53, so the mapping converts with `Number()`.
 */
export type Int8 = ColumnType<number | string, number, number>;

/** A 64-bit id the database generates: read like {@link Int8}, never written. */
export type GeneratedInt8 = ColumnType<number | string, never, never>;

/** The `tokens` table (migration `0001_tokens_and_audit`). */
export interface TokensTable {
  id: string;
  name: string;
  role: string;
  hash: string;
  prefix: string;
  /** Epoch milliseconds: the one timestamp form both dialects round-trip to the millisecond. */
  created_at: Int8;
  created_by: string | null;
  /** JSON array of service names an agent token may manage (migration `0002_registry`). */
  services: string | null;
}

/** The `audit_log` table (migration `0001_tokens_and_audit`). */
export interface AuditLogTable {
  id: GeneratedInt8;
  /** Epoch milliseconds. */
  at: Int8;
  actor_id: string | null;
  actor_name: string;
  action: string;
  target: string;
  /** JSON text, so both dialects store it alike. */
  details: string | null;
}

/** The embedded registry's instances, one JSON document each (migration `0002_registry`). */
export interface RegistryInstancesTable {
  id: string;
  service: string;
  doc: string;
  modify_index: Int8;
}

/** Named counters of the embedded registry (its index). */
export interface RegistryStateTable {
  name: string;
  value: Int8;
}

/** The gateway's explicit routes, one JSON document each (migration `0003_gateway_routes`). */
export interface GatewayRoutesTable {
  id: string;
  name: string;
  /** JSON of the route's fields other than id, name and times. */
  doc: string;
  created_at: Int8;
  updated_at: Int8;
}

/** Which service consumes which message types, one row per pair (migration `0004_message_topology`). */
export interface TopologySubscriptionsTable {
  service: string;
  message_type: string;
  /** Epoch milliseconds: when the service's current set was declared. */
  declared_at: Int8;
}

/** The schema the kysely adapters query, as of the latest migration. */
export interface Database {
  tokens: TokensTable;
  audit_log: AuditLogTable;
  registry_instances: RegistryInstancesTable;
  registry_state: RegistryStateTable;
  gateway_routes: GatewayRoutesTable;
  topology_subscriptions: TopologySubscriptionsTable;
}

export type TokenRow = Selectable<TokensTable>;
export type AuditLogRow = Selectable<AuditLogTable>;
