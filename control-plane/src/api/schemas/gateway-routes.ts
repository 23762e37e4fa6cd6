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

const Cors = Type.Object(
  {
    origins: Type.Array(Type.String({ minLength: 1, maxLength: 500 }), { minItems: 1, maxItems: 100, description: 'Allowed origins ("https://shop.example"), or "*".' }),
    methods: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 20 }), { maxItems: 20 })),
    headers: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 50 })),
    credentials: Type.Optional(Type.Boolean()),
    maxAgeSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400 })),
  },
  { additionalProperties: false },
);

const ApiKeyIn = Type.Object(
  {
    header: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'The header the key comes in (default x-api-key).' })),
    keys: Type.Array(
      Type.Object(
        {
          name: Type.String({ minLength: 1, maxLength: 100, description: 'The consumer, forwarded as X-Consumer.' }),
          key: Type.Optional(Type.String({ minLength: 16, maxLength: 500, description: 'The key itself (kept only as its SHA-256).' })),
          hash: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Or the SHA-256 of the key, in hex (as a read of the route shows it).' })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 1000 },
    ),
  },
  { additionalProperties: false },
);

const RateLimit = Type.Object(
  {
    requestsPerSecond: Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000 }),
    burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Bucket size (default: one second\'s worth).' })),
    key: Type.Optional(Type.String({ description: '"ip" (default), "consumer" (after apiKey), or "header:<name>".' })),
    store: Type.Optional(Type.Union([Type.Literal('memory'), Type.Literal('redis')], { description: 'redis: one limit shared by every gateway replica.' })),
  },
  { additionalProperties: false },
);

const Jwt = Type.Object(
  {
    issuer: Type.String({ minLength: 1, maxLength: 500, description: 'The identity provider\'s issuer (iss), exactly.' }),
    audience: Type.Union([Type.String({ minLength: 1, maxLength: 500 }), Type.Array(Type.String({ minLength: 1, maxLength: 500 }), { minItems: 1, maxItems: 20 })]),
    jwksUrl: Type.String({ minLength: 1, maxLength: 2000, description: 'Where the provider publishes its signing keys (JWKS).' }),
    algorithms: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 10, description: 'Default RS256, ES256, EdDSA.' })),
    claims: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 100 }), Type.String({ minLength: 1, maxLength: 100 }), { description: 'Verified claims forwarded as headers, claim → header (default sub → x-auth-subject).' })),
  },
  { additionalProperties: false },
);

const Cache = Type.Object(
  {
    ttlSeconds: Type.Number({ exclusiveMinimum: 0, maximum: 86_400, description: 'How long an answer is served from the cache.' }),
    maxEntries: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Default 1,000; least recently used go first.' })),
    maxBodyBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 104_857_600, description: 'Larger answers are not kept (default 1 MiB).' })),
  },
  { additionalProperties: false },
);

const Aggregate = Type.Object(
  {
    parts: Type.Array(
      Type.Object(
        {
          name: Type.String({ minLength: 1, maxLength: 100, description: 'The key of this part in the combined answer.' }),
          service: ServiceName,
          path: Type.String({ minLength: 1, maxLength: 2000, description: 'The path asked of the service; the request\'s query string is added.' }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 20 },
    ),
    timeout: Type.Optional(Type.String({ description: 'How long each part may take, e.g. "2s" (default: the route\'s timeout).' })),
  },
  { additionalProperties: false },
);

const Resilience = Type.Object(
  {
    retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 5, description: 'Retries after a connection failure, each on another instance, for idempotent requests (default 2).' })),
    maxConcurrent: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'This route\'s own bulkhead: requests in flight through it at most; more get 503.' })),
    circuitBreaker: Type.Optional(
      Type.Object(
        {
          failureRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Open when at least this share of the last 10 s of requests failed (default 0.5).' })),
          minimumRequests: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Never open on fewer requests in the window (default 20).' })),
          openFor: Type.Optional(Type.String({ description: 'How long the circuit stays open before one probe goes through, e.g. "5s" (default).' })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'The route\'s own resilience settings. A route with maxConcurrent or circuitBreaker is guarded apart from the service\'s other routes.',
  },
);

const MiddlewaresIn = Type.Object(
  { cors: Type.Optional(Cors), apiKey: Type.Optional(ApiKeyIn), jwt: Type.Optional(Jwt), rateLimit: Type.Optional(RateLimit), cache: Type.Optional(Cache), aggregate: Type.Optional(Aggregate) },
  { additionalProperties: false, description: 'Applied in this order, whatever order they are written in.' },
);

const MiddlewaresView = Type.Object({
  cors: Type.Optional(Cors),
  apiKey: Type.Optional(Type.Object({ header: Type.Optional(Type.String()), keys: Type.Array(Type.Object({ name: Type.String(), hash: Type.String() })) })),
  jwt: Type.Optional(Jwt),
  rateLimit: Type.Optional(RateLimit),
  cache: Type.Optional(Cache),
  aggregate: Type.Optional(Aggregate),
});

export const RouteBody = Type.Object(
  {
    ...routeFields,
    host: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: 'Only requests for this host (case-insensitive, without a port). Absent: any host.' })),
    methods: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 20 }), { minItems: 1, maxItems: 20, description: 'Only these methods. Absent: any method.' })),
    stripPrefix: Type.Optional(Type.Boolean({ description: 'Forward the path without the prefix (default false).' })),
    timeout: Type.Optional(Type.String({ description: 'Per attempt, how long an instance may take to start answering, e.g. "2s". Absent: PORTICO_GATEWAY_TIMEOUT.' })),
    balancer: Type.Optional(Balancer),
    middlewares: Type.Optional(MiddlewaresIn),
    resilience: Type.Optional(Resilience),
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
  middlewares: MiddlewaresView,
  resilience: Resilience,
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

export const RouteList = Type.Object({ routes: Type.Array(RouteView) });

export const RouteParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
