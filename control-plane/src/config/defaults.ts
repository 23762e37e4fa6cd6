/**
 * The value of every setting the operator leaves unset. Names and defaults of the fixed points
 * (`PORTICO_PORT` 8400, `PORTICO_GATEWAY_PORT` 8080, `PORTICO_DATA_DIR` `./.portico`,
 * `PORTICO_REDIS_URL` `redis://127.0.0.1:6379`) are relied on by docs and scripts: keep them.
 */

import { type PorticoConfig } from './schema.js';

/**
 * Defaults before the loader reads anything. `dataDir` is still relative here: the loader resolves it
 * against the working directory like a value the operator wrote. `redisUrlIsDefault` is not a
 * setting but a fact the loader records, so it has no default.
 */
export const CONFIG_DEFAULTS: Readonly<Omit<PorticoConfig, 'redisUrlIsDefault'>> = {
  host: '127.0.0.1',
  port: 8400,
  gatewayPort: 8080,
  dataDir: './.portico',
  databaseUrl: undefined,
  redisUrl: 'redis://127.0.0.1:6379',
  consul: { addr: undefined, token: undefined },
  adminToken: undefined,
  samples: true,
  env: 'development',
  logLevel: 'info',
  bodyLimit: 1_048_576,
  shutdownTimeoutMs: 10_000,
  gatewayTimeoutMs: 30_000,
  gatewayConnectTimeoutMs: 5_000,
  gatewayMaxConcurrent: 1_000,
  gatewayTlsCert: undefined,
  gatewayTlsKey: undefined,
  gatewayControlPlane: undefined,
  gatewayToken: undefined,
  configFile: undefined,
};
