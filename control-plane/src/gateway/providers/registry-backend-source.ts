import { type Indexed, type InstanceQuery, type RegistryBackend, type RegistryEvent } from '../../registry/registry-backend.js';
import { type Instance, type ServiceSummary } from '../../registry/registry.js';
import { type GatewaySource, type SourceStatus } from './gateway-source.js';

/**
 * A registry backend read directly by a gateway that runs on its own: `portico gateway` with
 * `PORTICO_CONSUL_ADDR` follows Consul through `ConsulRegistryBackend`'s read side (its blocking-query
 * mirror), which needs no store. The gateway never writes through it.
 *
 * `start()` waits for the backend's first sync (the Consul backend gives up waiting after its
 * `initialSyncTimeoutMs` and serves an empty, stale mirror until Consul answers); the state counts as
 * loaded from the first time the backend is not stale after that.
 */
export class RegistryBackendSource implements Pick<RegistryBackend, 'services' | 'instances' | 'subscribe'>, GatewaySource {
  readonly #backend: RegistryBackend;
  #started = false;
  #loaded = false;

  constructor(backend: RegistryBackend) {
    this.#backend = backend;
  }

  async start(): Promise<void> {
    await this.#backend.start();
    this.#started = true;
    this.status();
  }

  close(): Promise<void> {
    return this.#backend.close();
  }

  status(): SourceStatus {
    const { stale, reason } = this.#backend.status();
    if (this.#started && !stale) this.#loaded = true;
    return { loaded: this.#loaded, live: !stale, ...(reason === undefined ? {} : { reason }) };
  }

  services(): Promise<Indexed<ServiceSummary[]>> {
    return this.#backend.services();
  }

  instances(query: InstanceQuery): Promise<Indexed<Instance[]>> {
    return this.#backend.instances(query);
  }

  subscribe(listener: (event: RegistryEvent) => void): () => void {
    // A change is a moment the backend answered: note it, so a later outage still counts as "loaded".
    return this.#backend.subscribe((event) => {
      if (this.#started) this.status();
      listener(event);
    });
  }
}
