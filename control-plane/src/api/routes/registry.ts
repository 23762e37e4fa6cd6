import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type RegistryService } from '../../registry/registry-service.js';

export interface RegistryRoutesOptions {
  registry: RegistryService;
}

/** `/api/v1/services`, `/api/v1/instances`, `/api/v1/events`, `/api/v1/sd/prometheus`. */
export const registryRoutes: FastifyPluginAsyncTypebox<RegistryRoutesOptions> = async () => {};
