import { Type } from 'typebox';
import { Timestamp } from './common.js';

export const AuditEntryView = Type.Object(
  {
    id: Type.Integer(),
    at: Timestamp,
    actorId: Type.Union([Type.String(), Type.Null()]),
    actorName: Type.String(),
    action: Type.String(),
    target: Type.String(),
    details: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  },
  { description: 'One change: who did what to which target, and when.' },
);

export const AuditQuerystring = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'Only entries older than this id (paging).' })),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  },
  { additionalProperties: false },
);

export const AuditPage = Type.Object({
  entries: Type.Array(AuditEntryView),
  next: Type.Union([Type.Integer(), Type.Null()], { description: 'Pass as `before` for the next, older page; null at the end.' }),
});
