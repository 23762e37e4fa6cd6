import { type ErrorCode, PorticoError, isPorticoError } from '../../errors.js';

/**
 * Unique keys whose violation means something to a caller. SQLite names the columns in its message
 * (`UNIQUE constraint failed: tokens.name`); PostgreSQL names the constraint, which migration
 * `0001_tokens_and_audit` names explicitly so this table can match it.
 */
const UNIQUE_KEYS: ReadonlyArray<{ columns: string; constraint: string; code: ErrorCode }> = [
  { columns: 'tokens.name', constraint: 'tokens_name_unique', code: 'PORTICO_ERR_TOKEN_NAME_TAKEN' },
  { columns: 'gateway_routes.name', constraint: 'gateway_routes_name_unique', code: 'PORTICO_ERR_ROUTE_NAME_TAKEN' },
];

/**
 * Node socket and file-system codes: the store cannot be reached, or its file or directory cannot be
 * opened or made (EEXIST: a file stands where the data directory should be).
 */
const UNAVAILABLE_SYSTEM_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'EACCES',
  'EPERM',
  'ENOENT',
  'ENOTDIR',
  'EEXIST',
  'EISDIR',
  'EROFS',
]);

/**
 * PostgreSQL SQLSTATEs meaning the session cannot be had: class 08 (connection exception) is matched
 * by prefix; these are the others (server shutting down or starting, too many connections, login
 * refused, database missing).
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '28000', '28P01', '3D000']);

/**
 * Driver failures that carry no code, only a message: pg's pool and client timeouts and closed
 * clients, and better-sqlite3's open failures and closed handle.
 */
const UNAVAILABLE_MESSAGES =
  /timeout exceeded when trying to connect|connection terminated|client was closed|cannot use a pool after calling end|cannot open database|database connection is not open/i;

interface DriverErrorFields {
  code?: unknown;
  message?: unknown;
  constraint?: unknown;
  errors?: unknown;
}

/**
 * Map a driver failure (better-sqlite3, pg, node sockets) to the `PorticoError` a caller sees, the
 * same on SQLite and PostgreSQL, keeping the original as `cause`. A `PorticoError` passes through
 * unchanged, so repositories may throw domain errors from inside guarded code.
 *
 * @param where names the store for `PORTICO_ERR_STORE_UNAVAILABLE` messages, e.g.
 *   `PostgreSQL at db.internal:5432 (database portico)`. It must never contain a secret.
 */
export function mapStoreError(error: unknown, where?: string): PorticoError {
  if (isPorticoError(error)) return error;
  const fields = driverFields(error);
  const code = typeof fields.code === 'string' ? fields.code : undefined;
  const message = typeof fields.message === 'string' ? fields.message : '';

  if (isUniqueViolation(code)) {
    const key = UNIQUE_KEYS.find(
      (candidate) =>
        fields.constraint === candidate.constraint ||
        (code?.startsWith('SQLITE_') === true && uniqueColumns(message) === candidate.columns),
    );
    return new PorticoError(key?.code ?? 'PORTICO_ERR_STORE_CONFLICT', { cause: error });
  }

  if (isUnavailable(code, message, fields.errors)) {
    const reason = message === '' ? (code ?? 'no reason given') : message;
    const prefix = where === undefined ? 'The store cannot be reached' : `${where} cannot be reached`;
    return new PorticoError('PORTICO_ERR_STORE_UNAVAILABLE', { message: `${prefix}: ${reason}`, cause: error });
  }

  return new PorticoError('PORTICO_ERR_STORE_FAILED', { cause: error });
}

function driverFields(error: unknown): DriverErrorFields {
  return typeof error === 'object' && error !== null ? error : {};
}

function isUniqueViolation(code: string | undefined): boolean {
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** `UNIQUE constraint failed: tokens.name` → `tokens.name` (several columns come comma-separated). */
function uniqueColumns(message: string): string | undefined {
  const match = /constraint failed: (.+)$/.exec(message);
  return match?.[1]?.trim();
}

function isUnavailable(code: string | undefined, message: string, nested: unknown): boolean {
  if (code !== undefined) {
    if (UNAVAILABLE_SYSTEM_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08')) return true;
    // SQLITE_BUSY outlasting busy_timeout: another process holds the write lock; retrying may help.
    if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_BUSY')) return true;
  }
  if (UNAVAILABLE_MESSAGES.test(message)) return true;
  // Node reports a failed dual-stack connect (localhost → ::1 and 127.0.0.1) as an AggregateError.
  if (Array.isArray(nested)) {
    return nested.some((inner) => {
      const fields = driverFields(inner);
      return typeof fields.code === 'string' && UNAVAILABLE_SYSTEM_CODES.has(fields.code);
    });
  }
  return false;
}
