import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { type TokenService } from '../../auth/token-service.js';
import { type TokenRecord } from '../../store/store.js';
import { principalOf } from '../auth.js';
import { authErrorResponses } from '../schemas/common.js';
import { CreateTokenBody, CreatedToken, TokenList, TokenParams, TokenView } from '../schemas/tokens.js';

export interface TokenRoutesOptions {
  tokens: TokenService;
}

/** The public view of a token: everything but its hash. */
export function tokenView(token: TokenRecord) {
  return {
    id: token.id,
    name: token.name,
    role: token.role,
    prefix: token.prefix,
    createdAt: token.createdAt.toISOString(),
    createdBy: token.createdBy,
    services: token.services,
  };
}

/** `/api/v1/tokens`: issue, list and revoke API tokens (admin only). */
export const tokenRoutes: FastifyPluginAsyncTypebox<TokenRoutesOptions> = async (app, { tokens }) => {
  app.post(
    '/tokens',
    {
      config: { permission: 'tokens:write' },
      schema: {
        tags: ['tokens'],
        summary: 'Create a token. Its secret is in this response only.',
        body: CreateTokenBody,
        response: { 201: CreatedToken, ...authErrorResponses, 409: Type.Ref('ErrorResponse') },
      },
    },
    async (request, reply) => {
      const { token, secret } = await tokens.create(principalOf(request), request.body);
      return reply.code(201).send({ token: tokenView(token), secret });
    },
  );

  app.get(
    '/tokens',
    {
      config: { permission: 'tokens:read' },
      schema: { tags: ['tokens'], summary: 'List tokens (never their secrets).', response: { 200: TokenList, ...authErrorResponses } },
    },
    async () => ({ tokens: (await tokens.list()).map(tokenView) }),
  );

  app.get(
    '/tokens/:id',
    {
      config: { permission: 'tokens:read' },
      schema: {
        tags: ['tokens'],
        summary: 'One token (never its secret).',
        params: TokenParams,
        response: { 200: TokenView, ...authErrorResponses, 404: Type.Ref('ErrorResponse') },
      },
    },
    async (request) => tokenView(await tokens.get(request.params.id)),
  );

  app.delete(
    '/tokens/:id',
    {
      config: { permission: 'tokens:write' },
      schema: {
        tags: ['tokens'],
        summary: 'Revoke a token at once. The last admin token cannot be revoked.',
        params: TokenParams,
        response: { 204: Type.Null(), ...authErrorResponses, 404: Type.Ref('ErrorResponse'), 409: Type.Ref('ErrorResponse') },
      },
    },
    async (request, reply) => {
      await tokens.remove(principalOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
};
