import { type AuditEntry, type AuditQuery, type AuditRepository, type NewAuditEntry } from '../store.js';
import { type RepositoryContext, guarded } from './repository-context.js';
import { encodeDetails, toAuditEntry, toEpochMillis } from './row-mapping.js';

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
