import { type FastifyPluginAsync } from 'fastify';
import { type Metrics } from '../../telemetry/metrics.js';

/** `/metrics` in Prometheus text format, plus request counts and durations for every API route. */
export const metricsRoutes: FastifyPluginAsync<{ metrics: Metrics }> = async (app, { metrics }) => {
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    return reply.type(metrics.contentType).send(await metrics.render());
  });
};
