import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type AuditRepository } from '../../store/store.js';
import { authErrorResponses } from '../schemas/common.js';
import { AuditPage, AuditQuerystring } from '../schemas/audit.js';

export interface AuditRoutesOptions {
  audit: AuditRepository;
}

/** `/api/v1/audit`: every change made through the API, newest first. */
export const auditRoutes: FastifyPluginAsyncTypebox<AuditRoutesOptions> = async (app, { audit }) => {
  app.get(
    '/audit',
    {
      config: { permission: 'audit:read' },
      schema: {
        tags: ['audit'],
        summary: 'The audit log, newest first, paged with `before`.',
        querystring: AuditQuerystring,
        response: { 200: AuditPage, ...authErrorResponses },
      },
    },
    async (request) => {
      const { limit, before, action } = request.query;
      // One extra row tells whether an older page exists without a second query.
      const rows = await audit.list({ limit: limit + 1, before, action });
      const entries = rows.slice(0, limit);
      return {
        entries: entries.map((entry) => ({ ...entry, at: entry.at.toISOString() })),
        next: rows.length > limit ? (entries.at(-1)?.id ?? null) : null,
      };
    },
  );
};
