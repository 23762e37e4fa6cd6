import { Type } from 'typebox';
import { ROUTE_NAME_PATTERN } from '../../gateway/gateway-route.js';
import { Timestamp } from './common.js';
import { ServiceName } from './tokens.js';

const Balancer = Type.Union([Type.Literal('round_robin'), Type.Literal('least_request')], {
  description: 'round_robin: smooth weighted round robin (default); least_request: fewer requests in flight, of two random choices.',
});

const routeFields = {
  name: Type.String({ pattern: ROUTE_NAME_PATTERN, description: 'Unique; lower-case letters, digits and -; the `route` label of the gateway\'s metrics.' }),
  pathPrefix: Type.String({
    minLength: 1,
    maxLength: 2000,
    description: 'Requests whose normalised path is this prefix or below it (at a segment boundary) match, e.g. "/shop/catalog". Written in normal form.',
  }),
  service: ServiceName,
};

export const RouteBody = Type.Object(
  {
    ...routeFields,
    host: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: 'Only requests for this host (case-insensitive, without a port). Absent: any host.' })),
    methods: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 20 }), { minItems: 1, maxItems: 20, description: 'Only these methods. Absent: any method.' })),
    stripPrefix: Type.Optional(Type.Boolean({ description: 'Forward the path without the prefix (default false).' })),
    timeout: Type.Optional(Type.String({ description: 'Per attempt, how long an instance may take to start answering, e.g. "2s". Absent: PORTICO_GATEWAY_TIMEOUT.' })),
    balancer: Type.Optional(Balancer),
  },
  { additionalProperties: false },
);

export const RouteView = Type.Object({
  id: Type.String(),
  ...routeFields,
  host: Type.Union([Type.String(), Type.Null()]),
  methods: Type.Union([Type.Array(Type.String()), Type.Null()]),
  stripPrefix: Type.Boolean(),
  timeout: Type.Union([Type.String(), Type.Null()], { description: 'As a duration in milliseconds, e.g. "2000ms"; null: the gateway\'s default.' }),
  balancer: Balancer,
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const RouteList = Type.Object({ routes: Type.Array(RouteView) });

export const RouteParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
