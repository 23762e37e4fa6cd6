import { type Static, Type } from 'typebox';
import { Timestamp } from './common.js';

/** The `data` of a `route.changed` event on `GET /api/v1/routes/events`. */
export const RouteChangedData = Type.Object(
  {
    action: Type.Union([Type.Literal('created'), Type.Literal('updated'), Type.Literal('deleted')]),
    id: Type.String({ description: 'The route\'s id.' }),
    name: Type.String({ description: 'The route\'s name.' }),
    at: Timestamp,
  },
  { description: 'Which route changed. Read /api/v1/routes again for the routes as they are now.' },
);
export type RouteChangedData = Static<typeof RouteChangedData>;
