import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { type DeadLetters } from '../../messaging/dead-letters.js';
import { type QueueAdmin } from '../../messaging/queue-admin.js';
import { principalOf } from '../auth.js';
import { authErrorResponses } from '../schemas/common.js';
import { JobLocationQuerystring, JobPage, JobParams, JobsQuerystring, QueueList, QueueParams, RemoveResult, ReplayBody, ReplayReport, RetryResult } from '../schemas/queues.js';

export interface QueueRoutesOptions {
  queues: QueueAdmin;
  deadLetters: DeadLetters;
}

const tags = ['queues'];
const error = Type.Ref('ErrorResponse');
const unavailable = { 503: error };

/**
 * `/api/v1/queues`: the service queues over BullMQ, their jobs and dead letters, and an operator's
 * actions on them. The control plane is not on the message path: this reads and acts on Redis directly.
 */
export const queueRoutes: FastifyPluginAsyncTypebox<QueueRoutesOptions> = async (app, { queues, deadLetters }) => {
  app.get(
    '/queues',
    {
      config: { permission: 'queues:read' },
      schema: { tags, summary: 'Every service queue with its counts, dead letters, rates and consumers.', response: { 200: QueueList, ...authErrorResponses, ...unavailable } },
    },
    async () => ({ queues: await queues.list() }),
  );

  app.get(
    '/queues/:name/jobs',
    {
      config: { permission: 'queues:read' },
      schema: {
        tags,
        summary: 'One page of a queue\'s jobs in a state; state=dead lists its dead letters.',
        params: QueueParams,
        querystring: JobsQuerystring,
        response: { 200: JobPage, ...authErrorResponses, 404: error, ...unavailable },
      },
    },
    async (request) => queues.jobs(request.params.name, request.query.state, { limit: request.query.limit, offset: request.query.offset }),
  );

  app.post(
    '/queues/:name/jobs/:id/retry',
    {
      config: { permission: 'queues:write' },
      schema: {
        tags,
        summary: 'Retry a failed job (it waits again), or replay the dead letter with that id as a new job. 409 for a job in another state or a dead letter with no message.',
        params: JobParams,
        querystring: JobLocationQuerystring,
        response: { 200: RetryResult, ...authErrorResponses, 404: error, 409: error, ...unavailable },
      },
    },
    async (request) => queues.retry(principalOf(request), request.params.name, request.params.id, request.query.from),
  );

  app.delete(
    '/queues/:name/jobs/:id',
    {
      config: { permission: 'queues:write' },
      schema: {
        tags,
        summary: 'Discard the dead letter with that id, or else remove the queue\'s job (409 while a worker processes it); `from` picks one of the two.',
        params: JobParams,
        querystring: JobLocationQuerystring,
        response: { 200: RemoveResult, ...authErrorResponses, 404: error, 409: error, ...unavailable },
      },
    },
    async (request) => ({ queue: request.params.name, id: request.params.id, ...(await queues.remove(principalOf(request), request.params.name, request.params.id, request.query.from)) }),
  );

  app.post(
    '/queues/:name/dlq/replay',
    {
      config: { permission: 'queues:write' },
      schema: {
        tags,
        summary: 'Replay dead letters (those named by ids, or all, oldest first, 1000 per call) into the queue as new jobs; malformed ones are skipped and listed.',
        params: QueueParams,
        body: ReplayBody,
        response: { 200: ReplayReport, ...authErrorResponses, 404: error, ...unavailable },
      },
    },
    async (request) => deadLetters.replay(principalOf(request), request.params.name, request.body?.ids),
  );
};
