import { type GatewayRoute } from '../gateway-route.js';
import { create as apiKey, type ApiKeyConfig } from './api-key/api-key.js';
import { type AggregateConfig, create as aggregate, type ServiceCaller } from './aggregate/aggregate.js';
import { create as cache, type CacheConfig } from './cache/cache.js';
import { create as cors, type CorsConfig } from './cors/cors.js';
import { create as jwt, type JwtConfig } from './jwt/jwt.js';
import { type Middleware } from './middleware.js';
import { type BucketStore, create as rateLimit, type RateLimitConfig } from './rate-limit/rate-limit.js';

/** The middlewares a route may have, by name; each is optional. */
export interface RouteMiddlewares {
  cors?: CorsConfig;
  apiKey?: ApiKeyConfig;
  jwt?: JwtConfig;
  rateLimit?: RateLimitConfig;
  cache?: CacheConfig;
  aggregate?: AggregateConfig;
}

export interface PipelineDeps {
  /** Token buckets for `rateLimit.store: memory` (per process) and `redis` (shared). */
  buckets: { memory: BucketStore; redis?: BucketStore };
  onError?: (error: unknown) => void;
  /** How the aggregate middleware asks a service, through the gateway's balancing and pools. */
  call: ServiceCaller;
  defaultTimeoutMs: number;
}

/**
 * A route's middlewares in the order a request meets them, whatever order they were written in: CORS
 * (a preflight is answered before anything else), authentication (API key, then JWT), rate limiting
 * (which can key on the consumer authentication found), the cache (so a cached answer is still
 * authenticated and counted against the limit), and aggregation, which answers GETs itself.
 */
export function compileMiddlewares(route: GatewayRoute, deps: PipelineDeps): Middleware[] {
  const { cors: corsConfig, apiKey: apiKeyConfig, jwt: jwtConfig, rateLimit: rateLimitConfig, cache: cacheConfig } = route.middlewares;
  const pipeline: Middleware[] = [];
  if (corsConfig !== undefined) pipeline.push(cors(corsConfig));
  if (apiKeyConfig !== undefined) pipeline.push(apiKey(apiKeyConfig));
  if (jwtConfig !== undefined) pipeline.push(jwt(jwtConfig));
  if (rateLimitConfig !== undefined) {
    const buckets = rateLimitConfig.store === 'redis' ? (deps.buckets.redis ?? deps.buckets.memory) : deps.buckets.memory;
    pipeline.push(rateLimit(rateLimitConfig, { route: route.name, buckets, onError: deps.onError }));
  }
  if (cacheConfig !== undefined) pipeline.push(cache(cacheConfig));
  if (route.middlewares.aggregate !== undefined) pipeline.push(aggregate(route.middlewares.aggregate, { call: deps.call, defaultTimeoutMs: deps.defaultTimeoutMs }));
  return pipeline;
}
