import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { principalOf } from '../auth.js';
import { authErrorResponses } from '../schemas/common.js';
import { Role } from '../schemas/tokens.js';

/** `/api/v1/me`: who the presented token is (the dashboard's sign-in check). */
export const meRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/me',
    {
      config: { permission: 'self:read' },
      schema: {
        tags: ['tokens'],
        summary: 'The caller: token id, name and role.',
        response: {
          200: Type.Object({ id: Type.Union([Type.String(), Type.Null()]), name: Type.String(), role: Role, services: Type.Union([Type.Array(Type.String()), Type.Null()]) }),
          ...authErrorResponses,
        },
      },
    },
    async (request) => principalOf(request),
  );
};
