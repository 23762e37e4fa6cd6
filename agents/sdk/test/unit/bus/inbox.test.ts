import { afterEach, describe, expect, it } from 'vitest';
import { ensureBusTables } from '../../../src/bus/bus-tables.js';
import { createEnvelope } from '../../../src/bus/envelope.js';
import { Inbox } from '../../../src/bus/inbox.js';
import { type Dialect, serviceDatabase, type ServiceDatabase } from '../../support/bus.js';

const opened: ServiceDatabase[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) await db.close();
});

async function inboxOver(dialect: Dialect): Promise<{ inbox: Inbox; own: ServiceDatabase }> {
  const own = await serviceDatabase('inbox', undefined, dialect);
  opened.push(own);
  await ensureBusTables(own.db);
  return { inbox: new Inbox(own.db), own };
}

const message = (sku: string) => createEnvelope({ kind: 'command', type: 'sku_set_availability', source: 'inventory', payload: { sku } });

describe.each(['sqlite', 'postgres'] as const)('Inbox (a real database: %s)', (dialect) => {
  it('applies deliveries that arrive together in one transaction, rolling back only the one whose handler throws', async () => {
    const { inbox, own } = await inboxOver(dialect);
    const messages = ['a', 'b', 'poison', 'c'].map(message);
    const results = await Promise.allSettled(
      messages.map((envelope) =>
        inbox.apply(envelope, async (trx) => {
          await trx.insertInto('effects').values({ message_id: envelope.id, service: 'catalog', type: envelope.type, applied_at: 'now' }).execute();
          if (envelope.payload.sku === 'poison') throw new Error('cannot apply poison');
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ message: 'cannot apply poison' });
    const effects = await own.db.selectFrom('effects').select('message_id').execute();
    expect(effects.map((row) => row.message_id).sort()).toEqual([messages[0], messages[1], messages[3]].map((m) => m?.id).sort());
    // The failed one left no inbox row either: its redelivery will run the handler again.
    const inboxed = await own.db.selectFrom('portico_inbox' as never).select('message_id' as never).execute();
    expect(inboxed).toHaveLength(3);
  });

  it('skips a message it has applied before, in the same group or a later one', async () => {
    const { inbox, own } = await inboxOver(dialect);
    const envelope = message('a');
    let runs = 0;
    const work = async (trx: Parameters<Parameters<Inbox['apply']>[1]>[0]) => {
      runs += 1;
      await trx.insertInto('effects').values({ message_id: envelope.id, service: 'catalog', type: envelope.type, applied_at: 'now' }).execute();
    };
    expect(await Promise.all([inbox.apply(envelope, work), inbox.apply(envelope, work)])).toEqual([true, false]);
    expect(await inbox.apply(envelope, work)).toBe(false);
    expect(runs).toBe(1);
    expect(await own.db.selectFrom('effects').selectAll().execute()).toHaveLength(1);
  });
});
