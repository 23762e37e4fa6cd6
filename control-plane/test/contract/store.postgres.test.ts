import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PorticoError } from '../../src/errors.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createTestSchema } from '../support/postgres.js';
import { describeStoreContract } from './store.contract.js';

describeStoreContract('PostgresStore', async () => {
  const testSchema = await createTestSchema();
  const options = { connectionString: testSchema.connectionString, schema: testSchema.schema };
  return {
    store: new PostgresStore(options),
    reopen: () => new PostgresStore(options),
    cleanup: () => testSchema.drop(),
  };
});

describe('PostgresStore', () => {
  it('creates a missing schema and keeps every table, migration bookkeeping included, inside it', async () => {
    const testSchema = await createTestSchema();
    const { connectionString, schema } = testSchema;
    await testSchema.drop();
    const store = new PostgresStore({ connectionString, schema, poolSize: 2 });
    try {
      await store.start();
      const tables = await queryRows<{ table_name: string }>(
        connectionString,
        'select table_name from information_schema.tables where table_schema = $1 order by table_name',
        [schema],
      );
      expect(tables.map((row) => row.table_name)).toEqual([
        'audit_log',
        'gateway_routes',
        'kysely_migration',
        'kysely_migration_lock',
        'registry_instances',
        'registry_state',
        'tokens',
        'topology_subscriptions',
      ]);
    } finally {
      await store.close();
      await testSchema.drop();
    }
  });

  it('keeps its schema when the connection string carries its own startup options', async () => {
    const testSchema = await createTestSchema();
    const url = new URL(testSchema.connectionString);
    url.searchParams.set('options', '-c statement_timeout=30000');
    const store = new PostgresStore({ connectionString: url.toString(), schema: testSchema.schema, poolSize: 1 });
    try {
      await store.start();
      const tables = await queryRows<{ table_name: string }>(
        testSchema.connectionString,
        "select table_name from information_schema.tables where table_schema = $1 and table_name = 'tokens'",
        [testSchema.schema],
      );
      expect(tables).toHaveLength(1);
    } finally {
      await store.close();
      await testSchema.drop();
    }
  });

  it('applies migrations once when several stores start on one schema at the same time', async () => {
    const testSchema = await createTestSchema();
    const { connectionString, schema } = testSchema;
    const stores = [1, 2, 3].map(() => new PostgresStore({ connectionString, schema, poolSize: 2 }));
    try {
      await Promise.all(stores.map((store) => store.start()));
      for (const store of stores) expect(await store.appliedMigrations()).toEqual(['0001_tokens_and_audit', '0002_registry', '0003_gateway_routes', '0004_message_topology']);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
      await testSchema.drop();
    }
  });

  it('rejects start() quickly with PORTICO_ERR_STORE_UNAVAILABLE naming host and port, never the password', async () => {
    const store = new PostgresStore({
      connectionString: 'postgres://portico:s3cret-pa55@127.0.0.1:1/portico',
      connectionTimeoutMs: 2_000,
    });
    const started = Date.now();

    const error: unknown = await store.start().then(
      () => undefined,
      (failure: unknown) => failure,
    );

    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error).toBeInstanceOf(PorticoError);
    const portico = error as PorticoError;
    expect(portico.code).toBe('PORTICO_ERR_STORE_UNAVAILABLE');
    expect(portico.retryable).toBe(true);
    expect(portico.message).toContain('127.0.0.1:1');
    expect(portico.message).not.toContain('s3cret-pa55');
    expect(portico.cause).toBeDefined();
    await store.close();
  });
});

async function queryRows<T extends pg.QueryResultRow>(connectionString: string, text: string, values: unknown[]): Promise<T[]> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}
