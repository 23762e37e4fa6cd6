import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearer, createTestApp, useTestApp } from '../../support/test-app.js';

describe('bad input is refused with a coded 4xx and changes nothing', () => {
  const t = useTestApp();

  const post = (payload: string, contentType = 'application/json') =>
    t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { ...bearer(t.adminToken), 'content-type': contentType }, payload });

  const cases: Array<{ what: string; send: () => ReturnType<typeof post>; status: number; code: string; message: RegExp }> = [
    { what: 'malformed JSON', send: () => post('{"name": "a", "role": '), status: 400, code: 'PORTICO_ERR_REQUEST_MALFORMED_JSON', message: /not valid JSON/ },
    { what: 'an empty JSON body', send: () => post(''), status: 400, code: 'PORTICO_ERR_REQUEST_MALFORMED_JSON', message: /JSON/ },
    { what: 'a wrong type', send: () => post(JSON.stringify({ name: 123, role: 'viewer' })), status: 400, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/name must be of type string/ },
    { what: 'an unknown field', send: () => post(JSON.stringify({ name: `u-${randomUUID()}`, role: 'viewer', rol: 'admin' })), status: 400, code: 'PORTICO_ERR_REQUEST_INVALID', message: /unknown field "rol"/ },
    { what: 'a missing field', send: () => post(JSON.stringify({ name: `m-${randomUUID()}` })), status: 400, code: 'PORTICO_ERR_REQUEST_INVALID', message: /missing required field "role"/ },
    { what: 'a role that does not exist', send: () => post(JSON.stringify({ name: `r-${randomUUID()}`, role: 'root' })), status: 400, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/role/ },
    { what: 'a name with spaces', send: () => post(JSON.stringify({ name: 'two words', role: 'viewer' })), status: 400, code: 'PORTICO_ERR_REQUEST_INVALID', message: /body\/name/ },
    { what: 'an array instead of an object', send: () => post('[]'), status: 400, code: 'PORTICO_ERR_REQUEST_INVALID', message: /must be of type object/ },
    { what: 'a 5 MB body', send: () => post(JSON.stringify({ name: 'big', role: 'viewer', pad: 'x'.repeat(5 * 1024 * 1024) })), status: 413, code: 'PORTICO_ERR_REQUEST_TOO_LARGE', message: /larger than the limit of 1048576 bytes/ },
    { what: 'a body that is not JSON', send: () => post('name=a&role=admin', 'application/x-www-form-urlencoded'), status: 415, code: 'PORTICO_ERR_REQUEST_UNSUPPORTED_MEDIA_TYPE', message: /content type/ },
  ];

  for (const c of cases) {
    it(`${c.what} → ${c.status} ${c.code}`, async () => {
      const before = await t.counts();
      const res = await c.send();
      expect(res.statusCode, res.body).toBe(c.status);
      const body = res.json<{ code: string; message: string; statusCode: number }>();
      expect(body.code).toBe(c.code);
      expect(body.statusCode).toBe(c.status);
      expect(body.message).toMatch(c.message);
      expect(await t.counts()).toEqual(before);
    });
  }

  it('says which field is wrong in details', async () => {
    const res = await post(JSON.stringify({ name: `d-${randomUUID()}`, role: 'viewer', extra: true }));
    expect(res.json().details).toEqual([{ location: 'body', problem: 'unknown field "extra"' }]);
  });

  it('refuses bad query parameters the same way', async () => {
    for (const url of ['/api/v1/audit?limit=abc', '/api/v1/audit?limit=0', '/api/v1/audit?limit=100000', '/api/v1/audit?sort=asc']) {
      const res = await t.app.inject({ method: 'GET', url, headers: bearer(t.adminToken) });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().code).toBe('PORTICO_ERR_REQUEST_INVALID');
      expect(res.json().message).toMatch(/querystring/);
    }
  });

  it('honours a smaller configured body limit', async () => {
    const small = await createTestApp({ redisUrl: t.redisUrl, bodyLimit: 2048 });
    try {
      const res = await small.app.inject({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: bearer(small.adminToken),
        payload: { name: 'n', role: 'viewer', pad: 'x'.repeat(4096) },
      });
      expect(res.statusCode).toBe(413);
      expect(res.json().message).toContain('2048 bytes');
    } finally {
      await small.close();
    }
  });
});
