import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Where the PostgreSQL tests connect: `PORTICO_TEST_DATABASE_URL`, or a local server with trust auth. */
export const TEST_DATABASE_URL = process.env.PORTICO_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestSchema {
  connectionString: string;
  /** A fresh, empty schema, `portico_test_<random>`. */
  schema: string;
  /** Drop the schema and everything in it. Safe to call more than once. */
  drop(): Promise<void>;
}

/** Create a schema of its own for one test, so tests never see each other's tables or rows. */
export async function createTestSchema(): Promise<TestSchema> {
  const schema = `portico_test_${randomBytes(6).toString('hex')}`;
  await query(`create schema "${schema}"`);
  return {
    connectionString: TEST_DATABASE_URL,
    schema,
    drop: () => query(`drop schema if exists "${schema}" cascade`),
  };
}

async function query(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
