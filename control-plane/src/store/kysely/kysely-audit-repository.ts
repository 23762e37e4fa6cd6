import { type AuditEntry, type AuditQuery, type AuditRepository, type NewAuditEntry } from '../store.js';
import { type RepositoryContext, guarded } from './repository-context.js';
import { encodeDetails, toAuditEntry, toEpochMillis } from './row-mapping.js';

/** Rows per multi-row insert: 6 parameters each stays far below SQLite's and PostgreSQL's parameter limits. */
const ROWS_PER_STATEMENT = 500;

/** `AuditRepository` over kysely, for SQLite and PostgreSQL alike. */
export class KyselyAuditRepository implements AuditRepository {
  readonly #context: RepositoryContext;

  constructor(context: RepositoryContext) {
    this.#context = context;
  }

  async append(entry: NewAuditEntry): Promise<AuditEntry> {
    return guarded(this.#context, async (db) => {
      const row = await db
        .insertInto('audit_log')
        .values({
          at: toEpochMillis(entry.at ?? new Date()),
          actor_id: entry.actorId,
          actor_name: entry.actorName,
          action: entry.action,
          target: entry.target,
          details: encodeDetails(entry.details),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toAuditEntry(row);
    });
  }

  async appendMany(entries: readonly NewAuditEntry[]): Promise<void> {
    await guarded(this.#context, async (db) => {
      for (let at = 0; at < entries.length; at += ROWS_PER_STATEMENT) {
        const now = Date.now();
        const rows = entries.slice(at, at + ROWS_PER_STATEMENT).map((entry) => ({
          at: entry.at === undefined ? now : toEpochMillis(entry.at),
          actor_id: entry.actorId,
          actor_name: entry.actorName,
          action: entry.action,
          target: entry.target,
          details: encodeDetails(entry.details),
        }));
        await db.insertInto('audit_log').values(rows).execute();
      }
    });
  }

  async list(query: AuditQuery): Promise<AuditEntry[]> {
    // SQLite reads a negative LIMIT as "no limit" and PostgreSQL rejects it (and fractions): normalise.
    const limit = Number.isFinite(query.limit) ? Math.max(0, Math.floor(query.limit)) : 0;
    return guarded(this.#context, async (db) => {
      let select = db.selectFrom('audit_log').selectAll();
      if (query.before !== undefined) select = select.where('id', '<', query.before);
      if (query.action !== undefined) select = select.where('action', '=', query.action);
      const rows = await select.orderBy('id', 'desc').limit(limit).execute();
      return rows.map(toAuditEntry);
    });
  }
}
