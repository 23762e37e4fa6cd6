import { createHash } from 'node:crypto';
import { sendError } from '../../respond.js';
import { type Middleware, type MiddlewareContext } from '../middleware.js';

export interface ApiKeyConfig {
  /** The header the key is sent in (default `x-api-key`). */
  header?: string;
  /** The consumers allowed in, each with the SHA-256 (hex) of its key. */
  keys: Array<{ name: string; hash: string }>;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * API-key authentication: the request must carry a known key, or it gets 401 and never reaches an
 * instance. Keys are kept as SHA-256 hashes only. The instance gets the consumer's name in
 * `X-Consumer`, and the key itself is not forwarded.
 */
export function create(config: ApiKeyConfig): Middleware {
  const header = (config.header ?? 'x-api-key').toLowerCase();
  const consumers = new Map(config.keys.map((key) => [key.hash.toLowerCase(), key.name]));
  return {
    name: 'apiKey',
    handle(context: MiddlewareContext, next: () => void): void {
      const presented = context.req.headers[header];
      const key = Array.isArray(presented) ? presented[0] : presented;
      if (key === undefined || key === '') {
        sendError(context.res, 'PORTICO_ERR_GATEWAY_UNAUTHORIZED', `This route needs an API key in ${header}.`, { 'www-authenticate': `ApiKey header="${header}"` });
        return;
      }
      // Looked up by hash: what timing could reveal is about the hash, never the key.
      const name = consumers.get(hashApiKey(key));
      if (name === undefined) {
        sendError(context.res, 'PORTICO_ERR_GATEWAY_UNAUTHORIZED', 'The API key is not valid for this route.', { 'www-authenticate': `ApiKey header="${header}"` });
        return;
      }
      context.droppedHeaders.push(header);
      context.consumer = name;
      context.upstreamHeaders.push('x-consumer', name);
      next();
    },
  };
}
