import { randomUUID } from 'node:crypto';
import { type LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { type TestApp } from '../../support/test-app.js';

/** Consul's own token header. */
export const consulToken = (secret: string) => ({ 'x-consul-token': secret });

/** A service name no other test uses. */
export const uniqueName = (prefix = 'svc'): string => `${prefix}-${randomUUID().slice(0, 18)}`;

/** `PUT /v1/agent/service/register` with a JSON body (or raw text), as an admin unless told otherwise. */
export function register(t: TestApp, body: unknown, options: { secret?: string; raw?: string; headers?: Record<string, string> } = {}): Promise<LightMyRequestResponse> {
  return t.app.inject({
    method: 'PUT',
    url: '/v1/agent/service/register',
    headers: { ...consulToken(options.secret ?? t.adminToken), 'content-type': 'application/json', ...options.headers },
    payload: options.raw ?? JSON.stringify(body),
  });
}

/** A GET on the Consul API as an admin; the JSON body and the index header. */
export async function read<T>(t: TestApp, url: string, secret = t.adminToken): Promise<{ status: number; body: T; index: number; res: LightMyRequestResponse }> {
  const res = await t.app.inject({ method: 'GET', url, headers: consulToken(secret) });
  expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
  return { status: res.statusCode, body: res.json<T>(), index: Number(res.headers['x-consul-index']), res };
}

/** A PUT on the Consul API as an admin that must succeed with Consul's empty 200. */
export async function put(t: TestApp, url: string, secret = t.adminToken, payload?: unknown): Promise<void> {
  const res = await t.app.inject({ method: 'PUT', url, headers: consulToken(secret), ...(payload === undefined ? {} : { payload: payload as object }) });
  expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
  expect(res.body).toBe('');
}

/** A Consul-style error: the status, a plain-text body, with the Portico code in it. */
export function expectConsulError(res: LightMyRequestResponse, status: number, code: string, text?: RegExp): void {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^text\/plain/);
  expect(res.body).toContain(`(${code})`);
  if (text !== undefined) expect(res.body).toMatch(text);
}
