import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hashTokenSecret } from '../../../src/auth/token-secret.js';
import { bearer, createTestApp, useTestApp } from '../../support/test-app.js';

interface CreatedToken {
  token: { id: string; name: string; role: string; prefix: string; createdAt: string; createdBy: string | null };
  secret: string;
}

describe('/api/v1/tokens', () => {
  const t = useTestApp();

  async function create(name: string, role = 'operator'): Promise<CreatedToken> {
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(t.adminToken), payload: { name, role } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<CreatedToken>();
  }

  it('issues a token whose secret works, is shown once, and is stored only as a hash', async () => {
    const name = `ci-${randomUUID()}`;
    const created = await create(name);
    expect(created.secret).toMatch(/^ptc_[A-Za-z0-9_-]{43}$/);
    expect(created.token).toMatchObject({ name, role: 'operator', prefix: created.secret.slice(0, 12) });
    expect(created.token.createdBy).not.toBeNull();

    const me = await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(created.secret) });
    expect(me.json()).toEqual({ id: created.token.id, name, role: 'operator', services: null });

    const stored = await t.store.tokens.get(created.token.id);
    expect(stored?.hash).toBe(hashTokenSecret(created.secret));
    expect(JSON.stringify(stored)).not.toContain(created.secret);

    for (const url of ['/api/v1/tokens', `/api/v1/tokens/${created.token.id}`, '/api/v1/audit?limit=500']) {
      const res = await t.app.inject({ method: 'GET', url, headers: bearer(t.adminToken) });
      expect(res.statusCode).toBe(200);
      expect(res.body, url).not.toContain(created.secret);
      expect(res.body, url).not.toContain(created.secret.slice(12));
      expect(res.body, url).not.toContain(stored!.hash);
    }
  });

  it('never writes a secret to the log, even on failures', async () => {
    const created = await create(`log-${randomUUID()}`);
    await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(created.secret) });
    await t.app.inject({ method: 'GET', url: '/api/v1/tokens', headers: bearer(created.secret) }); // 403
    await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(`${created.secret}x`) }); // 401
    await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { ...bearer(created.secret), 'content-type': 'application/json' }, payload: '{"name":' });
    expect(t.logLines.length).toBeGreaterThan(0);
    const log = t.logLines.join('');
    expect(log).not.toContain(created.secret);
    expect(log).not.toContain(t.adminToken);
  });

  it('lists tokens and reads one, without secrets or hashes', async () => {
    const created = await create(`list-${randomUUID()}`, 'viewer');
    const list = await t.app.inject({ method: 'GET', url: '/api/v1/tokens', headers: bearer(t.adminToken) });
    const tokens = list.json<{ tokens: Array<Record<string, unknown>> }>().tokens;
    expect(tokens.find((tok) => tok.id === created.token.id)).toEqual(created.token);
    for (const tok of tokens) expect(Object.keys(tok).sort()).toEqual(['createdAt', 'createdBy', 'id', 'name', 'prefix', 'role', 'services']);
    const one = await t.app.inject({ method: 'GET', url: `/api/v1/tokens/${created.token.id}`, headers: bearer(t.adminToken) });
    expect(one.json()).toEqual(created.token);
  });

  it('issues agent tokens for named services only', async () => {
    const ok = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(t.adminToken), payload: { name: `agent-${randomUUID()}`, role: 'agent', services: ['catalog', 'user_service'] } });
    expect(ok.statusCode).toBe(201);
    expect(ok.json().token.services).toEqual(['catalog', 'user_service']);
    const me = await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(ok.json().secret) });
    expect(me.json()).toMatchObject({ role: 'agent', services: ['catalog', 'user_service'] });

    const before = await t.counts();
    for (const payload of [
      { name: `a-${randomUUID()}`, role: 'agent' },
      { name: `a-${randomUUID()}`, role: 'agent', services: [] },
      { name: `a-${randomUUID()}`, role: 'agent', services: ['bad name'] },
      { name: `v-${randomUUID()}`, role: 'viewer', services: ['catalog'] },
    ]) {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(t.adminToken), payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().code).toBe('PORTICO_ERR_REQUEST_INVALID');
      expect(res.json().message).toMatch(/services/);
    }
    expect(await t.counts()).toEqual(before);
  });

  it('refuses a duplicate name with 409 and writes nothing', async () => {
    const name = `dup-${randomUUID()}`;
    await create(name);
    const before = await t.counts();
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(t.adminToken), payload: { name, role: 'viewer' } });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'PORTICO_ERR_TOKEN_NAME_TAKEN', statusCode: 409 });
    expect(await t.counts()).toEqual(before);
  });

  it('revokes a token, audits it, and answers 404 for it afterwards', async () => {
    const created = await create(`del-${randomUUID()}`);
    const del = await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${created.token.id}`, headers: bearer(t.adminToken) });
    expect(del.statusCode).toBe(204);
    expect(del.body).toBe('');
    const again = await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${created.token.id}`, headers: bearer(t.adminToken) });
    expect(again.statusCode).toBe(404);
    expect(again.json().code).toBe('PORTICO_ERR_TOKEN_NOT_FOUND');
    const get = await t.app.inject({ method: 'GET', url: `/api/v1/tokens/${created.token.id}`, headers: bearer(t.adminToken) });
    expect(get.statusCode).toBe(404);

    const audit = await t.app.inject({ method: 'GET', url: '/api/v1/audit?limit=10', headers: bearer(t.adminToken) });
    const entries = audit.json<{ entries: Array<{ action: string; target: string; actorName: string; at: string }> }>().entries;
    const target = `token:${created.token.id}`;
    expect(entries.filter((e) => e.target === target).map((e) => e.action)).toEqual(['token.delete', 'token.create']);
    const me = (await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(t.adminToken) })).json<{ name: string }>();
    expect(entries.find((e) => e.target === target)?.actorName).toBe(me.name);
    expect(Date.now() - Date.parse(entries[0]!.at)).toBeLessThan(60_000);
  });

  it('refuses to revoke the last admin token', async () => {
    const dir = await createTestApp({ redisUrl: t.redisUrl });
    try {
      const me = (await dir.app.inject({ method: 'GET', url: '/api/v1/me', headers: bearer(dir.adminToken) })).json<{ id: string }>();
      const before = await dir.counts();
      const res = await dir.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${me.id}`, headers: bearer(dir.adminToken) });
      expect(res.statusCode).toBe(409);
      expect(res.json().code).toBe('PORTICO_ERR_TOKEN_LAST_ADMIN');
      expect(await dir.counts()).toEqual(before);
      // With a second admin, the first may go.
      await dir.tokenFor('admin');
      const ok = await dir.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${me.id}`, headers: bearer(dir.adminToken) });
      expect(ok.statusCode).toBe(204);
    } finally {
      await dir.close();
    }
  });
});
