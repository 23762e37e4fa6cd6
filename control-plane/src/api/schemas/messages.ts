import { Type } from 'typebox';
import { MESSAGE_TYPE_PATTERN, SERVICE_NAME_PATTERN } from '@portico/sdk/bus/envelope';

export const MessageBody = Type.Object(
  {
    kind: Type.Union([Type.Literal('event'), Type.Literal('command')], {
      description: 'event: to every service that consumes the type (the topology); command: to the one `service`.',
    }),
    type: Type.String({ pattern: MESSAGE_TYPE_PATTERN.source, description: 'The message type: letters, digits, ".", "_" and "-", up to 128.' }),
    service: Type.Optional(Type.String({ pattern: SERVICE_NAME_PATTERN.source, description: 'Commands only (and required for them): the service whose queue gets it.' })),
    payload: Type.Unknown({ description: 'Any JSON value.' }),
  },
  { additionalProperties: false },
);

export const SentMessage = Type.Object({
  id: Type.String({ description: 'The message id (UUIDv7), also its job id in every queue.' }),
  deliveredTo: Type.Array(Type.String(), { description: 'The queues it was added to; empty for an event no service consumes.' }),
});
