import { PorticoError } from '../../errors.js';
import { type AuditEntry, ROLES, type Role, type TokenRecord } from '../store.js';
import { type AuditLogRow, type TokenRow } from './database.js';

/** A JS Date as stored: epoch milliseconds, exact on both dialects. */
export function toEpochMillis(date: Date): number {
  return date.getTime();
}

/** An int8 as read back (a number from SQLite, a string from pg) as a JS number. */
export function toNumber(value: number | string): number {
  return typeof value === 'number' ? value : Number(value);
}

export function toTokenRecord(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    name: row.name,
    role: toRole(row.role, row.id),
    hash: row.hash,
    prefix: row.prefix,
    createdAt: new Date(toNumber(row.created_at)),
    createdBy: row.created_by,
    services: row.services === null ? null : (JSON.parse(row.services) as string[]),
  };
}

export function toAuditEntry(row: AuditLogRow): AuditEntry {
  return {
    id: toNumber(row.id),
    at: new Date(toNumber(row.at)),
    actorId: row.actor_id,
    actorName: row.actor_name,
    action: row.action,
    target: row.target,
    details: row.details === null ? null : (JSON.parse(row.details) as Record<string, unknown>),
  };
}

export function encodeDetails(details: Record<string, unknown> | null | undefined): string | null {
  return details === null || details === undefined ? null : JSON.stringify(details);
}

// The column is plain text (no CHECK) so adding a role needs no table rebuild on SQLite; a role this
// build does not know is therefore caught here rather than passed on mistyped.
function toRole(value: string, tokenId: string): Role {
  const role = ROLES.find((candidate) => candidate === value);
  if (role === undefined) {
    throw new PorticoError('PORTICO_ERR_STORE_FAILED', {
      message: `Token ${tokenId} has a role this version does not know: "${value}".`,
    });
  }
  return role;
}
