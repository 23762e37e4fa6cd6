import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { installAuth } from '../../../src/api/auth.js';
import { type TokenService } from '../../../src/auth/token-service.js';

describe('installAuth', () => {
  const tokens = { authenticate: () => Promise.resolve(undefined) } as unknown as TokenService;

  it('refuses to register an admin route that names no permission', async () => {
    const app = Fastify();
    const registering = app.register(async (scope) => {
      installAuth(scope, tokens);
      scope.get('/open', async () => 'oops');
    });
    await expect(registering).rejects.toThrow('Route GET /open must declare config.permission.');
  });

  it('refuses a permission that does not exist', async () => {
    const app = Fastify();
    const registering = app.register(async (scope) => {
      installAuth(scope, tokens);
      scope.get('/typo', { config: { permission: 'tokens:wirte' as never } }, async () => 'oops');
    });
    await expect(registering).rejects.toThrow('Route GET /typo must declare config.permission.');
  });

  it('accepts a route that names a permission', async () => {
    const app = Fastify();
    await app.register(async (scope) => {
      installAuth(scope, tokens);
      scope.get('/fine', { config: { permission: 'audit:read' } }, async () => 'ok');
    });
    await expect(app.ready()).resolves.toBeDefined();
    await app.close();
  });
});
