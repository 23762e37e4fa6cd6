import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashTokenSecret } from '../../../src/auth/token-secret.js';
import { FIRST_ADMIN_TOKEN_NAME, SYSTEM_PRINCIPAL, TokenService } from '../../../src/auth/token-service.js';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';

describe('TokenService.ensureFirstAdmin', () => {
  let store: SqliteStore;
  let tokens: TokenService;

  beforeEach(async () => {
    store = new SqliteStore({ filename: ':memory:' });
    await store.start();
    tokens = new TokenService(store);
  });
  afterEach(() => store.close());

  it('generates an admin token on an empty store, returns its secret, and audits it', async () => {
    const result = await tokens.ensureFirstAdmin(undefined);
    expect(result.created).toBe(true);
    const secret = result.generatedSecret!;
    expect(await tokens.authenticate(secret)).toMatchObject({ name: FIRST_ADMIN_TOKEN_NAME, role: 'admin' });
    const [entry] = await store.audit.list({ limit: 10 });
    expect(entry).toMatchObject({ actorId: null, actorName: 'system', action: 'token.create', details: { role: 'admin', source: 'generated' } });
  });

  it('takes the configured secret and returns nothing to print', async () => {
    const configured = 'x'.repeat(40);
    expect(await tokens.ensureFirstAdmin(configured)).toEqual({ created: true });
    const [token] = await store.tokens.list();
    expect(token?.hash).toBe(hashTokenSecret(configured));
  });

  it('does nothing once any token exists', async () => {
    await tokens.create(SYSTEM_PRINCIPAL, { name: 'someone', role: 'viewer' });
    expect(await tokens.ensureFirstAdmin(undefined)).toEqual({ created: false });
    expect(await store.tokens.count()).toBe(1);
  });

  it('makes exactly one admin token when several starts race', async () => {
    const results = await Promise.all([1, 2, 3].map(() => tokens.ensureFirstAdmin(undefined)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(await store.tokens.count()).toBe(1);
  });
});
