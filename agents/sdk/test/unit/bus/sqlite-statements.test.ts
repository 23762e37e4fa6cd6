import Database from 'better-sqlite3';
import { Kysely, type SqliteDatabase, SqliteDialect, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { withStatementCache } from '../../../src/bus/sqlite-statements.js';

interface Tables {
  items: { id: number; name: string; note?: string | null };
}

const opened: Kysely<Tables>[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) await db.destroy();
});

/** kysely over an in-memory better-sqlite3 database through the cache, with a count of the statements actually prepared. */
async function open(size?: number): Promise<{ db: Kysely<Tables>; prepared: () => number }> {
  const sqlite = new Database(':memory:');
  let prepared = 0;
  const counting: SqliteDatabase = {
    close: () => sqlite.close(),
    prepare: (text) => ((prepared += 1), sqlite.prepare(text)),
  };
  const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: withStatementCache(counting, size) }) });
  opened.push(db);
  await db.schema.createTable('items').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('name', 'text', (c) => c.notNull()).execute();
  return { db, prepared: () => prepared };
}

describe('withStatementCache (kysely over better-sqlite3)', () => {
  it('prepares a query once however often it runs, each run with its own parameters', async () => {
    const { db, prepared } = await open();
    const before = prepared();
    for (let id = 1; id <= 50; id++) await db.insertInto('items').values({ id, name: `item ${id}` }).execute();
    expect(prepared() - before).toBe(1);
    const names = [];
    for (const id of [7, 42]) names.push((await db.selectFrom('items').select('name').where('id', '=', id).executeTakeFirst())?.name);
    expect(names).toEqual(['item 7', 'item 42']);
    expect(prepared() - before).toBe(2);
  });

  it('runs transactions and streamed reads through the same statements', async () => {
    const { db } = await open();
    await db.transaction().execute(async (trx) => {
      for (let id = 1; id <= 5; id++) await trx.insertInto('items').values({ id, name: `item ${id}` }).execute();
    });
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('items').values({ id: 6, name: 'item 6' }).execute();
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    const streamed: number[] = [];
    for await (const row of db.selectFrom('items').select('id').orderBy('id').stream()) streamed.push(row.id);
    expect(streamed).toEqual([1, 2, 3, 4, 5]);
    expect(await db.selectFrom('items').select('id').orderBy('id').execute()).toHaveLength(5);
  });

  it('answers from the current schema after it changes under a cached statement', async () => {
    const { db } = await open();
    await db.insertInto('items').values({ id: 1, name: 'one' }).execute();
    const all = sql<Record<string, unknown>>`select * from items`;
    expect((await all.execute(db)).rows).toEqual([{ id: 1, name: 'one' }]);
    await db.schema.alterTable('items').addColumn('note', 'text').execute();
    expect((await all.execute(db)).rows).toEqual([{ id: 1, name: 'one', note: null }]);
  });

  it('starts over past its size, and stays correct', async () => {
    const { db, prepared } = await open(1);
    const before = prepared();
    await db.insertInto('items').values({ id: 1, name: 'one' }).execute();
    const byId = () => db.selectFrom('items').select('name').where('id', '=', 1).executeTakeFirst();
    const count = () => db.selectFrom('items').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
    expect(await byId()).toEqual({ name: 'one' });
    expect(await count()).toEqual({ n: 1 });
    expect(await byId()).toEqual({ name: 'one' });
    // One text at most: each new text empties the cache, so byId, after count, is prepared again.
    expect(prepared() - before).toBe(4);
  });
});
