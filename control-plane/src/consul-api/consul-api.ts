import { type FastifyPluginAsync } from 'fastify';
import { type TokenService } from '../auth/token-service.js';
import { type RegistryService } from '../registry/registry-service.js';

export interface ConsulApiOptions {
  registry: RegistryService;
  tokens: TokenService;
}

/** The Consul-compatible HTTP API (`/v1/...`) over the active registry backend. */
export const consulApi: FastifyPluginAsync<ConsulApiOptions> = async () => {};
