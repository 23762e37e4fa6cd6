import { createHash, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ErrorCode, PorticoError } from '../../src/errors.js';
import { type GatewayRoute } from '../../src/gateway/gateway-route.js';
import { type Instance } from '../../src/registry/registry.js';
import { type NewToken, type Store } from '../../src/store/store.js';

/** What an adapter's test file hands the contract for each test. */
export interface StoreFixture {
  /** A store over fresh, empty storage, not started yet. */
  store: Store;
  /** Another store over the same storage, not started: the same data after a restart. */
  reopen(): Store;
  /** Remove the storage. The contract has closed every store it started by then. */
  cleanup(): Promise<void>;
}

/** Every migration, in the order it must be applied. */
const MIGRATIONS = ['0001_tokens_and_audit', '0002_registry', '0003_gateway_routes', '0004_message_topology'];

/**
 * The behaviour every `Store` adapter must show, identically: same results, same `PorticoError` codes.
 * Each test gets its own storage from `make`.
 */
export function describeStoreContract(name: string, make: () => Promise<StoreFixture>): void {
  describe(`Store contract: ${name}`, () => {
    let fixture: StoreFixture;
    let store: Store;

    beforeEach(async () => {
      fixture = await make();
      store = fixture.store;
      await store.start();
    });

    afterEach(async () => {
      await store.close();
      await fixture.cleanup();
    });

    /** Start a second store over the same storage, hand it to `use`, and close it afterwards. */
    async function withReopened<T>(use: (reopened: Store) => Promise<T>): Promise<T> {
      const reopened = fixture.reopen();
      try {
        await reopened.start();
        return await use(reopened);
      } finally {
        await reopened.close();
      }
    }

    describe('migrations', () => {
      it('applies every migration once, in order, however often start() runs', async () => {
        expect(await store.appliedMigrations()).toEqual(MIGRATIONS);
        await store.start();
        expect(await store.appliedMigrations()).toEqual(MIGRATIONS);

        await withReopened(async (reopened) => {
          await reopened.start();
          expect(await reopened.appliedMigrations()).toEqual(MIGRATIONS);
        });
        expect(await store.appliedMigrations()).toEqual(MIGRATIONS);
      });
    });

    describe('tokens', () => {
      it('creates a token and finds it by id, by hash, in the list and in the count', async () => {
        const input = newToken({ role: 'operator', createdBy: randomUUID() });
        const created = await store.tokens.create(input);

        const { createdAt: _ignored, ...expected } = input;
        expect(created).toEqual({ ...expected, createdAt: created.createdAt });
        expect(created.createdAt).toBeInstanceOf(Date);
        expect(await store.tokens.get(input.id)).toEqual(created);
        expect(await store.tokens.findByHash(input.hash)).toEqual(created);
        expect(await store.tokens.list()).toEqual([created]);
        expect(await store.tokens.count()).toBe(1);

        expect(await store.tokens.get(randomUUID())).toBeUndefined();
        expect(await store.tokens.findByHash(sha256(randomUUID()))).toBeUndefined();
      });

      it('keeps the services an agent token is issued for', async () => {
        const created = await store.tokens.create(newToken({ role: 'agent', services: ['catalog', 'user_service'] }));
        expect(created.services).toEqual(['catalog', 'user_service']);
        expect((await store.tokens.get(created.id))?.services).toEqual(['catalog', 'user_service']);
      });

      it('counts every token and lists them oldest first', async () => {
        expect(await store.tokens.count()).toBe(0);
        expect(await store.tokens.list()).toEqual([]);
        const base = Date.UTC(2025, 0, 1);
        const middle = await store.tokens.create(newToken({ createdAt: new Date(base + 1) }));
        const newest = await store.tokens.create(newToken({ createdAt: new Date(base + 2) }));
        const oldest = await store.tokens.create(newToken({ createdAt: new Date(base) }));

        expect(await store.tokens.count()).toBe(3);
        expect((await store.tokens.list()).map((token) => token.id)).toEqual([oldest.id, middle.id, newest.id]);
      });

      it('stamps createdAt with the current time when none is given', async () => {
        const before = Date.now();
        const created = await store.tokens.create(newToken());
        const after = Date.now();
        expect(created.createdAt.getTime()).toBeGreaterThanOrEqual(before);
        expect(created.createdAt.getTime()).toBeLessThanOrEqual(after);
        expect((await store.tokens.get(created.id))?.createdAt).toEqual(created.createdAt);
      });

      it('round-trips createdAt to the millisecond', async () => {
        const createdAt = new Date('2024-02-29T23:59:59.987Z');
        const { id } = await store.tokens.create(newToken({ createdAt }));
        expect((await store.tokens.get(id))?.createdAt.getTime()).toBe(createdAt.getTime());
      });

      it('refuses a taken name with PORTICO_ERR_TOKEN_NAME_TAKEN and writes nothing', async () => {
        const first = await store.tokens.create(newToken());
        const clash = newToken({ name: first.name });

        await expectPorticoError(store.tokens.create(clash), 'PORTICO_ERR_TOKEN_NAME_TAKEN');

        expect(await store.tokens.count()).toBe(1);
        expect(await store.tokens.get(clash.id)).toBeUndefined();
        expect(await store.tokens.findByHash(clash.hash)).toBeUndefined();
      });

      it('keeps a transaction usable after a taken name', async () => {
        const first = await store.tokens.create(newToken());
        const other = newToken();
        await store.transaction(async (session) => {
          await expectPorticoError(session.tokens.create(newToken({ name: first.name })), 'PORTICO_ERR_TOKEN_NAME_TAKEN');
          await session.tokens.create(other);
        });
        expect(await store.tokens.get(other.id)).toBeDefined();
      });

      it('refuses a taken hash with PORTICO_ERR_STORE_CONFLICT, keeping the driver error as cause', async () => {
        const first = await store.tokens.create(newToken());
        const error = await expectPorticoError(
          store.tokens.create(newToken({ hash: first.hash })),
          'PORTICO_ERR_STORE_CONFLICT',
        );
        expect(error.cause).toBeInstanceOf(Error);
        expect(error.cause).not.toBeInstanceOf(PorticoError);
        expect(await store.tokens.count()).toBe(1);
      });

      it('removes a token, returning it; it is gone afterwards', async () => {
        const kept = await store.tokens.create(newToken());
        const doomed = await store.tokens.create(newToken({ role: 'agent' }));

        expect(await store.tokens.remove(doomed.id)).toEqual(doomed);

        expect(await store.tokens.get(doomed.id)).toBeUndefined();
        expect(await store.tokens.findByHash(doomed.hash)).toBeUndefined();
        expect(await store.tokens.list()).toEqual([kept]);
        await expectPorticoError(store.tokens.remove(doomed.id), 'PORTICO_ERR_TOKEN_NOT_FOUND');
      });

      it('reports PORTICO_ERR_TOKEN_NOT_FOUND for an unknown id', async () => {
        await store.tokens.create(newToken());
        await expectPorticoError(store.tokens.remove(randomUUID()), 'PORTICO_ERR_TOKEN_NOT_FOUND');
        expect(await store.tokens.count()).toBe(1);
      });

      it('refuses to remove the last admin token, and allows it once a second admin exists', async () => {
        const first = await store.tokens.create(newToken({ role: 'admin' }));
        const viewer = await store.tokens.create(newToken({ role: 'viewer' }));

        await expectPorticoError(store.tokens.remove(first.id), 'PORTICO_ERR_TOKEN_LAST_ADMIN');
        expect(await store.tokens.get(first.id)).toEqual(first);

        const second = await store.tokens.create(newToken({ role: 'admin' }));
        expect(await store.tokens.remove(first.id)).toEqual(first);
        await expectPorticoError(store.tokens.remove(second.id), 'PORTICO_ERR_TOKEN_LAST_ADMIN');
        expect(await store.tokens.remove(viewer.id)).toEqual(viewer);
        expect(await store.tokens.list()).toEqual([second]);
      });

      it('lets exactly one of two concurrent removals of the last two admins succeed', async () => {
        let survivor = await store.tokens.create(newToken({ role: 'admin' }));
        // Several rounds: a race that a lock does not close shows up in some of them.
        for (let round = 0; round < 8; round += 1) {
          const other = await store.tokens.create(newToken({ role: 'admin' }));
          const results = await Promise.allSettled([store.tokens.remove(survivor.id), store.tokens.remove(other.id)]);

          const removed = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
          const refused = results.flatMap((result) => (result.status === 'rejected' ? [result.reason as unknown] : []));
          expect(removed).toHaveLength(1);
          expect(refused).toHaveLength(1);
          expect(refused[0]).toBeInstanceOf(PorticoError);
          expect((refused[0] as PorticoError).code).toBe('PORTICO_ERR_TOKEN_LAST_ADMIN');

          const admins = (await store.tokens.list()).filter((token) => token.role === 'admin');
          expect(admins).toHaveLength(1);
          survivor = admins[0] ?? survivor;
        }
      });
    });

    describe('transactions', () => {
      it('commits every change together and returns what the work returned', async () => {
        const token = newToken();
        const action = `test.${randomUUID()}`;
        const result = await store.transaction(async (session) => {
          await session.tokens.create(token);
          await session.audit.append(auditEntry(action));
          return 'done';
        });

        expect(result).toBe('done');
        expect(await store.tokens.get(token.id)).toBeDefined();
        expect(await store.audit.list({ limit: 10, action })).toHaveLength(1);
      });

      it('rolls everything back when the work throws, and rethrows that same error', async () => {
        const token = newToken();
        const action = `test.${randomUUID()}`;
        const failure = new Error('work failed');

        const thrown = await store
          .transaction(async (session) => {
            await session.tokens.create(token);
            await session.audit.append(auditEntry(action));
            expect(await session.tokens.get(token.id)).toBeDefined();
            throw failure;
          })
          .then(
            () => undefined,
            (error: unknown) => error,
          );

        expect(thrown).toBe(failure);
        expect(await store.tokens.get(token.id)).toBeUndefined();
        expect(await store.tokens.count()).toBe(0);
        expect(await store.audit.list({ limit: 10, action })).toEqual([]);
      });

      it('rolls back when a repository refuses inside the work', async () => {
        const admin = await store.tokens.create(newToken({ role: 'admin' }));
        const token = newToken();
        const action = `test.${randomUUID()}`;

        await expectPorticoError(
          store.transaction(async (session) => {
            await session.tokens.create(token);
            await session.audit.append(auditEntry(action));
            await session.tokens.remove(admin.id);
          }),
          'PORTICO_ERR_TOKEN_LAST_ADMIN',
        );

        expect(await store.tokens.list()).toEqual([admin]);
        expect(await store.audit.list({ limit: 10, action })).toEqual([]);
      });
    });

    describe('audit log', () => {
      it('appends entries with increasing ids, returning them as stored', async () => {
        const at = new Date('2023-06-15T08:30:00.123Z');
        const first = await store.audit.append({
          actorId: randomUUID(),
          actorName: 'ops-bot',
          action: 'token.create',
          target: `token:${randomUUID()}`,
          details: { role: 'viewer' },
          at,
        });
        const second = await store.audit.append(auditEntry('token.delete'));

        expect(first.at.getTime()).toBe(at.getTime());
        expect(first.actorName).toBe('ops-bot');
        expect(second.id).toBeGreaterThan(first.id);
        expect(await store.audit.list({ limit: 10 })).toEqual([second, first]);
      });

      it('lists newest first, at most `limit`, before a cursor, filtered by action', async () => {
        const create = `test.create.${randomUUID()}`;
        const remove = `test.remove.${randomUUID()}`;
        const entries = [];
        for (const action of [create, remove, create, create, remove, create]) {
          entries.push(await store.audit.append(auditEntry(action)));
        }
        const ids = entries.map((entry) => entry.id);
        const newestFirst = [...ids].reverse();
        const idsOf = async (query: Parameters<Store['audit']['list']>[0]) =>
          (await store.audit.list(query)).map((entry) => entry.id);

        expect(await idsOf({ limit: 100 })).toEqual(newestFirst);
        expect(await idsOf({ limit: 2 })).toEqual(newestFirst.slice(0, 2));
        expect(await idsOf({ limit: 2, before: ids[3] })).toEqual([ids[2], ids[1]]);
        expect(await idsOf({ limit: 100, before: ids[0] })).toEqual([]);
        expect(await idsOf({ limit: 100, action: create })).toEqual([ids[5], ids[3], ids[2], ids[0]]);
        expect(await idsOf({ limit: 2, action: create, before: ids[5] })).toEqual([ids[3], ids[2]]);
        expect(await idsOf({ limit: 100, action: `test.none.${randomUUID()}` })).toEqual([]);
        expect(await idsOf({ limit: 0 })).toEqual([]);
      });

      it('round-trips details as JSON, and stores null when there are none', async () => {
        const details = {
          name: 'ünïcødé ✓ "quoted"',
          count: 3,
          ratio: 0.25,
          enabled: false,
          nothing: null,
          tags: ['a', 'b'],
          nested: { deeper: { list: [1, { x: 'y' }] } },
        };
        const withDetails = await store.audit.append({ ...auditEntry('test.details'), details });
        const without = await store.audit.append(auditEntry('test.details'));
        const explicitNull = await store.audit.append({ ...auditEntry('test.details'), details: null });

        const listed = await store.audit.list({ limit: 3, action: 'test.details' });
        expect(listed.map((entry) => entry.details)).toEqual([null, null, details]);
        expect(withDetails.details).toEqual(details);
        expect(without.details).toBeNull();
        expect(explicitNull.details).toBeNull();
      });

      it('round-trips `at` to the millisecond and stamps the current time when none is given', async () => {
        const at = new Date('1999-12-31T23:59:59.999Z');
        const stamped = await store.audit.append({ ...auditEntry('test.at'), at });
        const before = Date.now();
        const now = await store.audit.append(auditEntry('test.at'));
        const after = Date.now();

        const [latest, earlier] = await store.audit.list({ limit: 2, action: 'test.at' });
        expect(earlier?.at.getTime()).toBe(at.getTime());
        expect(stamped.at.getTime()).toBe(at.getTime());
        expect(latest?.at.getTime()).toBe(now.at.getTime());
        expect(now.at.getTime()).toBeGreaterThanOrEqual(before);
        expect(now.at.getTime()).toBeLessThanOrEqual(after);
        expect(latest?.actorId).toBeNull();
      });
      it('appends many entries in the order given, ids growing, in chunks larger than one statement', async () => {
        const at = new Date('2020-02-02T02:02:02.222Z');
        const entries = Array.from({ length: 1_101 }, (_, i) => ({ ...auditEntry('test.many'), target: `t:${i}`, details: { i } }));
        await store.audit.appendMany([{ ...entries[0]!, at }, ...entries.slice(1)]);
        await store.audit.appendMany([]);
        const listed = await store.audit.list({ limit: 2_000, action: 'test.many' });
        expect(listed.map((entry) => entry.target)).toEqual(entries.map((entry) => entry.target).reverse());
        expect(listed.map((entry) => entry.id)).toEqual([...listed.map((entry) => entry.id)].sort((a, b) => b - a));
        expect(listed.at(-1)?.at.getTime()).toBe(at.getTime());
        expect(listed[0]?.details).toEqual({ i: 1_100 });
      });
    });

    describe('registry', () => {
      const instance = (id: string, modifyIndex: number): Instance => ({
        id,
        service: 'web',
        address: '10.0.0.7',
        port: 8080,
        tags: ['blue'],
        meta: { version: '2' },
        weights: { passing: 3, warning: 1 },
        checks: [
          {
            id: `service:${id}`,
            name: 'ttl',
            kind: 'ttl',
            ttlMs: 10_000,
            successBeforePassing: 0,
            failuresBeforeCritical: 0,
            status: 'passing',
            output: 'ok',
            statusSince: new Date(1_700_000_000_123),
            lastResultAt: new Date(1_700_000_000_456),
            consecutiveSuccesses: 2,
            consecutiveFailures: 0,
            ttlExpiresAt: new Date(1_700_000_010_456),
          },
        ],
        maintenance: { reason: 'drain', since: new Date(1_700_000_000_789) },
        registeredBy: 'token-1',
        registeredAt: new Date(1_700_000_000_000),
        createIndex: 2,
        modifyIndex,
      });

      it('reads as empty at index 0 before anything is saved', async () => {
        expect(await store.registry.load()).toEqual({ index: 0, instances: [] });
      });

      it('saves, replaces and removes instances, keeping dates and the index', async () => {
        await store.registry.write({ save: [instance('web-1', 2)], remove: [], index: 2 });
        await store.registry.write({ save: [instance('web-2', 3)], remove: [], index: 3 });
        await store.registry.write({ save: [{ ...instance('web-1', 4), port: 9090 }], remove: [], index: 4 });
        await store.registry.write({ save: [], remove: ['web-2'], index: 5 });
        await store.registry.write({ save: [], remove: ['never-there'], index: 6 });
        const loaded = await store.registry.load();
        expect(loaded.index).toBe(6);
        expect(loaded.instances).toEqual([{ ...instance('web-1', 4), port: 9090 }]);
        await withReopened(async (reopened) => {
          expect(await reopened.registry.load()).toEqual(loaded);
        });
      });

      it('writes a group of changes larger than one statement holds in one call', async () => {
        const many = Array.from({ length: 1_203 }, (_, i) => instance(`web-${String(i).padStart(4, '0')}`, 10 + i));
        await store.registry.write({ save: many, remove: [], index: 1_300 });
        const replaced = many.slice(0, 700).map((saved) => ({ ...saved, port: 7070 }));
        const removed = many.slice(700).map((saved) => saved.id);
        await store.registry.write({ save: replaced, remove: [...removed, 'never-there'], index: 1_301 });
        const loaded = await store.registry.load();
        expect(loaded.index).toBe(1_301);
        expect(loaded.instances).toEqual(replaced);
      });

      it('writes nothing when the transaction rolls back', async () => {
        await expect(
          store.transaction(async (session) => {
            await session.registry.write({ save: [instance('web-9', 9)], remove: [], index: 9 });
            throw new Error('abort');
          }),
        ).rejects.toThrow('abort');
        expect(await store.registry.load()).toEqual({ index: 0, instances: [] });
      });
    });

    describe('routes', () => {
      const route = (name: string, overrides: Partial<GatewayRoute> = {}): GatewayRoute => ({
        id: randomUUID(),
        name,
        pathPrefix: `/${name}`,
        host: null,
        methods: ['GET', 'POST'],
        service: 'catalog',
        stripPrefix: true,
        timeoutMs: 1_500,
        balancer: 'least_request',
        middlewares: { rateLimit: { requestsPerSecond: 5, key: 'ip', store: 'redis' } },
        resilience: { retries: 0, circuitBreaker: { minimumRequests: 5, openMs: 2_000 } },
        createdAt: new Date(1_700_000_000_123),
        updatedAt: new Date(1_700_000_000_123),
        ...overrides,
      });

      it('creates, reads, lists by name, replaces and deletes routes', async () => {
        const b = await store.routes.create(route('b-route', { host: 'shop.example' }));
        const a = await store.routes.create(route('a-route', { methods: null, timeoutMs: null }));
        expect(await store.routes.get(b.id)).toEqual(b);
        expect(await store.routes.list()).toEqual([a, b]);

        const changed = { ...b, name: 'c-route', service: 'user', updatedAt: new Date(1_700_000_999_000), createdAt: new Date(0) };
        const updated = await store.routes.update(changed);
        expect(updated).toEqual({ ...changed, createdAt: b.createdAt });
        expect(await store.routes.remove(a.id)).toEqual(a);
        expect(await store.routes.list()).toEqual([updated]);
        await withReopened(async (reopened) => {
          expect(await reopened.routes.list()).toEqual([updated]);
        });
      });

      it('refuses a taken name with PORTICO_ERR_ROUTE_NAME_TAKEN, on create and on rename', async () => {
        const first = await store.routes.create(route('taken'));
        const second = await store.routes.create(route('other'));
        await expectPorticoError(store.routes.create(route('taken')), 'PORTICO_ERR_ROUTE_NAME_TAKEN');
        await expectPorticoError(store.routes.update({ ...second, name: 'taken' }), 'PORTICO_ERR_ROUTE_NAME_TAKEN');
        expect((await store.routes.list()).map((r) => r.id).sort()).toEqual([first.id, second.id].sort());
      });

      it('answers PORTICO_ERR_ROUTE_NOT_FOUND for an unknown id, and writes nothing when the transaction rolls back', async () => {
        await expectPorticoError(store.routes.update(route('ghost')), 'PORTICO_ERR_ROUTE_NOT_FOUND');
        await expectPorticoError(store.routes.remove(randomUUID()), 'PORTICO_ERR_ROUTE_NOT_FOUND');
        expect(await store.routes.get(randomUUID())).toBeUndefined();
        await expect(
          store.transaction(async (session) => {
            await session.routes.create(route('rolled-back'));
            throw new Error('abort');
          }),
        ).rejects.toThrow('abort');
        expect(await store.routes.list()).toEqual([]);
      });
    });

    describe('topology', () => {
      const at = (ms: number) => new Date(1_700_000_000_000 + ms);
      const sub = (service: string, messageType: string, declaredAt: Date) => ({ service, messageType, declaredAt });

      it('reads as empty, then declares, lists by service and type, and reads one service', async () => {
        expect(await store.topology.list()).toEqual([]);
        expect(await store.topology.ofService('catalog')).toEqual([]);

        const declared = await store.topology.replace('inventory', ['sku_set_availability', 'product.availability_changed'], at(1));
        expect(declared).toEqual({
          before: [],
          after: [sub('inventory', 'product.availability_changed', at(1)), sub('inventory', 'sku_set_availability', at(1))],
          changed: true,
        });
        await store.topology.replace('catalog', ['product.availability_changed'], at(2));

        expect(await store.topology.list()).toEqual([
          sub('catalog', 'product.availability_changed', at(2)),
          sub('inventory', 'product.availability_changed', at(1)),
          sub('inventory', 'sku_set_availability', at(1)),
        ]);
        expect(await store.topology.ofService('inventory')).toEqual(declared.after);
        await withReopened(async (reopened) => {
          expect(await reopened.topology.list()).toEqual(await store.topology.list());
        });
      });

      it('orders by code point on both dialects, whatever the collation', async () => {
        await store.topology.replace('alpha', ['b_x', 'b.x', 'B-x', 'b-x'], at(1));
        await store.topology.replace('Zeta', ['a'], at(1));
        expect((await store.topology.list()).map((s) => `${s.service} ${s.messageType}`)).toEqual(['Zeta a', 'alpha B-x', 'alpha b-x', 'alpha b.x', 'alpha b_x']);
      });

      it('writes nothing when the set is the same, in any order and with repeats, and keeps its time', async () => {
        const first = await store.topology.replace('user', ['a.b', 'c'], at(1));
        const again = await store.topology.replace('user', ['c', 'a.b', 'c'], at(5));
        expect(again).toEqual({ before: first.after, after: first.after, changed: false });
        expect(await store.topology.ofService('user')).toEqual(first.after);
      });

      it('replaces the whole set, stamping every row, and leaves other services alone', async () => {
        await store.topology.replace('user', ['a', 'b'], at(1));
        await store.topology.replace('catalog', ['a'], at(1));
        const replaced = await store.topology.replace('user', ['b', 'c'], at(7));
        expect(replaced).toEqual({ before: [sub('user', 'a', at(1)), sub('user', 'b', at(1))], after: [sub('user', 'b', at(7)), sub('user', 'c', at(7))], changed: true });
        expect(await store.topology.list()).toEqual([sub('catalog', 'a', at(1)), sub('user', 'b', at(7)), sub('user', 'c', at(7))]);

        const emptied = await store.topology.replace('user', [], at(8));
        expect(emptied).toMatchObject({ after: [], changed: true });
        expect(await store.topology.list()).toEqual([sub('catalog', 'a', at(1))]);
      });

      it('removes a service\'s subscriptions, returning them; nothing for a service that had none', async () => {
        await store.topology.replace('user', ['b', 'a'], at(3));
        await store.topology.replace('catalog', ['a'], at(3));
        expect(await store.topology.removeService('user')).toEqual([sub('user', 'a', at(3)), sub('user', 'b', at(3))]);
        expect(await store.topology.removeService('user')).toEqual([]);
        expect(await store.topology.list()).toEqual([sub('catalog', 'a', at(3))]);
      });

      it('writes nothing when the transaction rolls back', async () => {
        await store.topology.replace('user', ['a'], at(1));
        await expect(
          store.transaction(async (session) => {
            await session.topology.replace('user', ['b'], at(2));
            await session.topology.replace('catalog', ['b'], at(2));
            await session.topology.removeService('user');
            throw new Error('abort');
          }),
        ).rejects.toThrow('abort');
        expect(await store.topology.list()).toEqual([sub('user', 'a', at(1))]);
      });

      it('leaves exactly one of several concurrent replacements of one service, never a mix', async () => {
        const sets = [['a', 'b'], ['c'], ['d', 'e', 'f'], ['a', 'g'], []];
        for (let round = 0; round < 5; round++) {
          await Promise.all(sets.map((set, i) => store.topology.replace('racy', set, at(round * 10 + i))));
          const left = (await store.topology.ofService('racy')).map((s) => s.messageType);
          expect(sets.map((set) => set.join(','))).toContain(left.join(','));
        }
      });
    });

    describe('lifecycle', () => {
      it('keeps the data across close and reopen', async () => {
        const token = await store.tokens.create(newToken({ role: 'admin', createdAt: new Date('2022-01-02T03:04:05.678Z') }));
        const entry = await store.audit.append({ ...auditEntry('test.reopen'), details: { kept: true } });
        await store.close();

        await withReopened(async (reopened) => {
          expect(await reopened.tokens.get(token.id)).toEqual(token);
          expect(await reopened.audit.list({ limit: 10 })).toEqual([entry]);
          const next = await reopened.audit.append(auditEntry('test.reopen'));
          expect(next.id).toBeGreaterThan(entry.id);
        });
      });

      it('answers ping while open, and throws PORTICO_ERR_STORE_UNAVAILABLE once closed', async () => {
        await store.ping();
        await store.close();
        await store.close();

        await expectPorticoError(store.ping(), 'PORTICO_ERR_STORE_UNAVAILABLE');
        await expectPorticoError(store.tokens.count(), 'PORTICO_ERR_STORE_UNAVAILABLE');
        await expectPorticoError(store.audit.list({ limit: 1 }), 'PORTICO_ERR_STORE_UNAVAILABLE');
        await expectPorticoError(store.transaction(() => Promise.resolve()), 'PORTICO_ERR_STORE_UNAVAILABLE');
        await expectPorticoError(store.start(), 'PORTICO_ERR_STORE_UNAVAILABLE');
      });

      it('throws PORTICO_ERR_STORE_UNAVAILABLE when used before start()', async () => {
        const unstarted = fixture.reopen();
        try {
          await expectPorticoError(unstarted.ping(), 'PORTICO_ERR_STORE_UNAVAILABLE');
          await expectPorticoError(unstarted.tokens.list(), 'PORTICO_ERR_STORE_UNAVAILABLE');
        } finally {
          await unstarted.close();
        }
      });
    });
  });
}

function newToken(overrides: Partial<NewToken> = {}): NewToken {
  const id = randomUUID();
  return {
    id,
    name: `token-${id}`,
    role: 'viewer',
    hash: sha256(id),
    prefix: `ptc_${id.slice(0, 4)}`,
    createdBy: null,
    services: null,
    ...overrides,
  };
}

function auditEntry(action: string): { actorId: null; actorName: string; action: string; target: string } {
  return { actorId: null, actorName: 'system', action, target: `token:${randomUUID()}` };
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Await `promise`, expecting it to reject with a `PorticoError` of `code`; returns that error. */
async function expectPorticoError(promise: Promise<unknown>, code: ErrorCode): Promise<PorticoError> {
  const outcome = await promise.then(
    (value: unknown) => ({ rejected: false as const, value }),
    (error: unknown) => ({ rejected: true as const, error }),
  );
  if (!outcome.rejected) throw new Error(`expected ${code}, but it resolved with ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(PorticoError);
  expect((outcome.error as PorticoError).code).toBe(code);
  return outcome.error as PorticoError;
}
