import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PorticoError } from '../../src/errors.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { describeStoreContract } from './store.contract.js';

describeStoreContract('SqliteStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'portico-store-'));
  const filename = join(dir, 'portico.db');
  return {
    store: new SqliteStore({ filename }),
    reopen: () => new SqliteStore({ filename }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('SqliteStore', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portico-store-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates missing parent directories, readable by the owner only, and puts the file in WAL mode', async () => {
    const filename = join(dir, 'nested', 'deeper', 'portico.db');
    const store = new SqliteStore({ filename });
    await store.start();
    try {
      expect((await stat(join(dir, 'nested', 'deeper'))).mode & 0o777).toBe(0o700);
      const inspector = new BetterSqlite3(filename, { readonly: true });
      try {
        // journal_mode is a property of the file: another connection sees it.
        expect(inspector.pragma('journal_mode', { simple: true })).toBe('wal');
      } finally {
        inspector.close();
      }
    } finally {
      await store.close();
    }
  });

  it('reports a file that cannot be opened as PORTICO_ERR_STORE_UNAVAILABLE, naming the file', async () => {
    const blocker = join(dir, 'not-a-directory');
    await writeFile(blocker, 'a file where a directory should be');
    const filename = join(blocker, 'portico.db');
    const store = new SqliteStore({ filename });

    const error: unknown = await store.start().then(
      () => undefined,
      (failure: unknown) => failure,
    );

    expect(error).toBeInstanceOf(PorticoError);
    expect((error as PorticoError).code).toBe('PORTICO_ERR_STORE_UNAVAILABLE');
    expect((error as PorticoError).message).toContain(filename);
    expect((error as PorticoError).cause).toBeDefined();
    await store.close();
  });

  it('works in memory, where data lives only as long as the store', async () => {
    const store = new SqliteStore({ filename: ':memory:' });
    await store.start();
    try {
      await store.audit.append({ actorId: null, actorName: 'system', action: 'test.memory', target: 'memory' });
      expect(await store.audit.list({ limit: 10 })).toHaveLength(1);
      expect(await store.appliedMigrations()).toEqual(['0001_tokens_and_audit', '0002_registry', '0003_gateway_routes', '0004_message_topology']);
    } finally {
      await store.close();
    }
  });
});
