import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PorticoError } from '../../errors.js';
import { type MessagePublisher } from '../../messaging/message-publisher.js';
import { principalOf } from '../auth.js';
import { authErrorResponses } from '../schemas/common.js';
import { MessageBody, SentMessage } from '../schemas/messages.js';

export interface MessageRoutesOptions {
  messages: MessagePublisher;
}

const error = Type.Ref('ErrorResponse');

/** `/api/v1/messages`: an operator sends an event or a command on the bus, as a service would. */
export const messageRoutes: FastifyPluginAsyncTypebox<MessageRoutesOptions> = async (app, { messages }) => {
  app.post(
    '/messages',
    {
      config: { permission: 'queues:write' },
      schema: {
        tags: ['messages'],
        summary: 'Send an event to every service consuming its type, or a command to one service\'s queue (which must exist). 202 with the queues it reached.',
        body: MessageBody,
        response: { 202: SentMessage, ...authErrorResponses, 404: error, 503: error },
      },
    },
    async (request, reply) => {
      const { kind, type, service, payload } = request.body;
      if ((kind === 'command') !== (service !== undefined)) {
        const problem = kind === 'command' ? 'a command needs "service"' : 'an event goes to every subscriber: it takes no "service"';
        throw new PorticoError('PORTICO_ERR_REQUEST_INVALID', { message: `Invalid message: ${problem}.`, details: [{ location: 'body/service', problem }] });
      }
      const header = (name: string) => {
        const value = request.headers[name];
        return typeof value === 'string' ? value : undefined;
      };
      const trace = { traceparent: header('traceparent'), tracestate: header('tracestate') };
      const context = { ...(trace.traceparent === undefined ? {} : { traceparent: trace.traceparent }), ...(trace.tracestate === undefined ? {} : { tracestate: trace.tracestate }) };
      const sent = await messages.send(
        principalOf(request),
        kind === 'command' ? { kind, service: service as string, type, payload, ...context } : { kind, type, payload, ...context },
      );
      return reply.code(202).send(sent);
    },
  );
};
