/**
 * BullMQ's production guidance: Redis must never evict keys (`maxmemory-policy noeviction`), or under
 * memory pressure it silently drops jobs, locks and queue metadata. Checked once at start-up.
 */

import { PorticoError } from '../errors.js';
import { redactUrl } from './redis-probe.js';

/** The one command the check sends; an ioredis client fits. */
export interface ConfigReader {
  config(subcommand: 'GET', parameter: string): Promise<unknown>;
}

export interface EvictionPolicyCheckOptions {
  redis: ConfigReader;
  /** Shown in messages (its password hidden). */
  url: string;
  /** `PORTICO_ENV=production`: a policy that evicts refuses the start instead of warning. */
  production: boolean;
  logger: { warn(object: object, message?: string): void };
}

/** What the check found: the policy, or undefined when Redis would not say (CONFIG disabled, as on some managed services). */
export interface EvictionPolicyCheck {
  policy: string | undefined;
  ok: boolean;
}

/**
 * Read `CONFIG GET maxmemory-policy`. Anything but `noeviction` is logged as a loud warning, or, in
 * production, refused. A Redis that will not answer CONFIG (renamed or forbidden on managed services)
 * is warned about and accepted: the policy cannot be known, and the operator may have set it right.
 *
 * @throws PorticoError `PORTICO_ERR_CONFIG_INVALID` in production when the policy evicts (main exits 78).
 */
export async function checkEvictionPolicy(options: EvictionPolicyCheckOptions): Promise<EvictionPolicyCheck> {
  const url = redactUrl(options.url);
  let policy: string | undefined;
  try {
    const reply = await options.redis.config('GET', 'maxmemory-policy');
    if (Array.isArray(reply) && typeof reply[1] === 'string') policy = reply[1];
  } catch (error) {
    options.logger.warn({ err: error, redis: url }, 'cannot read the maxmemory-policy of Redis (CONFIG GET refused): make sure it is "noeviction", or Redis may drop queued messages under memory pressure');
    return { policy: undefined, ok: true };
  }
  if (policy === undefined) {
    options.logger.warn({ redis: url }, 'Redis did not say its maxmemory-policy: make sure it is "noeviction", or Redis may drop queued messages under memory pressure');
    return { policy, ok: true };
  }
  if (policy === 'noeviction') return { policy, ok: true };
  const problem = `Redis at ${url} has maxmemory-policy "${policy}": under memory pressure it evicts keys, and with them queued messages, job locks and queue state. Set "maxmemory-policy noeviction" (BullMQ's requirement)`;
  if (options.production) {
    throw new PorticoError('PORTICO_ERR_CONFIG_INVALID', { message: `${problem}; PORTICO_ENV=production refuses to start otherwise.`, details: { maxmemoryPolicy: policy } });
  }
  options.logger.warn({ redis: url, maxmemoryPolicy: policy }, `!!! ${problem}. PORTICO_ENV=production would refuse to start. !!!`);
  return { policy, ok: false };
}
