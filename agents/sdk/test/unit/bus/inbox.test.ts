import { afterEach, describe, expect, it } from 'vitest';
import { ensureBusTables } from '../../../src/bus/bus-tables.js';
import { createEnvelope } from '../../../src/bus/envelope.js';
import { Inbox } from '../../../src/bus/inbox.js';
import { type Dialect, serviceDatabase, type ServiceDatabase } from '../../support/bus.js';

const opened: ServiceDatabase[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) await db.close();
});

async function inboxOver(dialect: Dialect, options?: ConstructorParameters<typeof Inbox>[1]): Promise<{ inbox: Inbox; own: ServiceDatabase }> {
  const own = await serviceDatabase('inbox', undefined, dialect);
  opened.push(own);
  await ensureBusTables(own.db);
  return { inbox: new Inbox(own.db, options), own };
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

  it('applies groups of every size, each with its own ids (the statement for a size is built once and reused)', async () => {
    const { inbox, own } = await inboxOver(dialect);
    const work = (envelope: ReturnType<typeof message>) => async (trx: Parameters<Parameters<Inbox['apply']>[1]>[0]) => {
      await trx.insertInto('effects').values({ message_id: envelope.id, service: 'catalog', type: envelope.type, applied_at: 'now' }).execute();
    };
    const applied: string[] = [];
    // Sizes 3, 1, 5, then 3 again: the second group of three reuses the first one's statement with new ids.
    for (const size of [3, 1, 5, 3]) {
      const group = Array.from({ length: size }, (_, i) => message(`${size}-${i}-${applied.length}`));
      expect(await Promise.all(group.map((envelope) => inbox.apply(envelope, work(envelope))))).toEqual(group.map(() => true));
      applied.push(...group.map((envelope) => envelope.id));
    }
    const inboxed = (await own.db.selectFrom('portico_inbox' as never).select(['message_id', 'type'] as never[]).execute()) as { message_id: string; type: string }[];
    expect(inboxed.map((row) => row.message_id).sort()).toEqual([...applied].sort());
    expect(new Set(inboxed.map((row) => row.type))).toEqual(new Set(['sku_set_availability']));
    const effects = await own.db.selectFrom('effects').select('message_id').execute();
    expect(effects.map((row) => row.message_id).sort()).toEqual([...applied].sort());
  });

  it('calls `settling` once per group, after its commit and before any of its messages is reported applied', async () => {
    let reported = 0;
    const settled: number[] = [];
    const { inbox, own } = await inboxOver(dialect, { settling: () => settled.push(reported) });
    const group = ['a', 'b', 'c'].map(message);
    const work = (envelope: ReturnType<typeof message>) => async (trx: Parameters<Parameters<Inbox['apply']>[1]>[0]) => {
      await trx.insertInto('effects').values({ message_id: envelope.id, service: 'catalog', type: envelope.type, applied_at: 'now' }).execute();
    };
    const results = await Promise.all(group.map((envelope) => inbox.apply(envelope, work(envelope)).then((applied) => ((reported += 1), applied))));
    expect(results).toEqual([true, true, true]);
    expect(settled).toEqual([0]);
    expect(await own.db.selectFrom('effects').selectAll().execute()).toHaveLength(3);
  });
});
