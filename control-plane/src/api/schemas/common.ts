import { Type } from 'typebox';
import { ErrorCatalogue } from '../../errors.js';

/** Every error response. */
export const ErrorResponse = Type.Object(
  {
    code: Type.String({ enum: Object.keys(ErrorCatalogue), description: 'Stable error code, PORTICO_ERR_<AREA>_<WHAT>.' }),
    message: Type.String({ description: 'What went wrong, for a person.' }),
    statusCode: Type.Integer(),
    details: Type.Optional(Type.Unknown()),
  },
  { $id: 'ErrorResponse', description: 'An error, with a stable code.' },
);

/** Responses every authenticated admin route may give besides its own. */
export const authErrorResponses = {
  400: Type.Ref('ErrorResponse'),
  401: Type.Ref('ErrorResponse'),
  403: Type.Ref('ErrorResponse'),
} as const;

export const Timestamp = Type.String({ format: 'date-time' });
