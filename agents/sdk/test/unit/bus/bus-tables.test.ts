import { afterEach, describe, expect, it } from 'vitest';
import { ensureBusTables } from '../../../src/bus/bus-tables.js';
import { type Dialect, serviceDatabase, type ServiceDatabase } from '../../support/bus.js';

const opened: ServiceDatabase[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) await db.close();
});

describe.each(['sqlite', 'postgres'] as const)('ensureBusTables (a real database: %s)', (dialect: Dialect) => {
  it('creates the tables from several sessions at once, as replicas starting together on a fresh database do', async () => {
    // Several rounds: on PostgreSQL, concurrent CREATE … IF NOT EXISTS collide in most of them.
    for (let round = 0; round < 5; round++) {
      const own = await serviceDatabase(`tables-${round}`, undefined, dialect);
      opened.push(own);
      const results = await Promise.allSettled([0, 1, 2, 3].map(() => ensureBusTables(own.db)));
      expect(results.filter((result) => result.status === 'rejected')).toEqual([]);
      await ensureBusTables(own.db);
      await own.db
        .insertInto('portico_inbox' as never)
        .values({ message_id: 'm-1', type: 't', processed_at: 'now' })
        .execute();
      expect(await own.db.selectFrom('portico_outbox' as never).selectAll().execute()).toEqual([]);
    }
  });
});
