import { compareStrings, instanceHealth } from '../../registry/registry.js';
import { type RegistryBackend } from '../../registry/registry-backend.js';

/** One instance a service's requests may go to. */
export interface Target {
  instanceId: string;
  address: string;
  port: number;
  weight: number;
}

/** Every registered service and its targets: empty when none of its instances may take requests; a service with no instance at all is absent. */
export type TargetSnapshot = ReadonlyMap<string, readonly Target[]>;

export interface RegistryProviderOptions {
  registry: Pick<RegistryBackend, 'services' | 'instances' | 'subscribe'>;
  /** Receives every new snapshot; unchanged services keep their array (compare by identity). */
  publish: (snapshot: TargetSnapshot) => void;
  logger?: { error(obj: object, msg?: string): void };
  /**
   * Changes are gathered this long before the services they touch are re-read (default 10 ms): a storm
   * of registrations costs a rebuild per window rather than one per change, well within the 100 ms a
   * change may take to be routable.
   */
  coalesceMs?: number;
}

function sameTargets(a: readonly Target[], b: readonly Target[]): boolean {
  return (
    a.length === b.length &&
    a.every((target, i) => {
      const other = b[i] as Target;
      return target.instanceId === other.instanceId && target.address === other.address && target.port === other.port && target.weight === other.weight;
    })
  );
}

/**
 * Follows the registry's change events (never polling) and publishes which instances each service's
 * requests may go to: those passing their checks and not in maintenance, with their passing weight.
 * Changes are gathered for a short window (`coalesceMs`), the services they touch are re-read, and a
 * new snapshot is published only when some service's targets changed.
 */
export class RegistryProvider {
  readonly #options: RegistryProviderOptions;
  #snapshot: TargetSnapshot = new Map();
  readonly #dirty = new Set<string>();
  #scheduled = false;
  #rebuilding: Promise<void> = Promise.resolve();
  #unsubscribe: (() => void) | undefined;
  #closed = false;

  constructor(options: RegistryProviderOptions) {
    this.#options = options;
  }

  get snapshot(): TargetSnapshot {
    return this.#snapshot;
  }

  async start(): Promise<void> {
    this.#unsubscribe = this.#options.registry.subscribe((event) => this.#markDirty(event.service));
    const { value: services } = await this.#options.registry.services();
    for (const service of services) this.#dirty.add(service.name);
    await this.#rebuild();
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe?.();
  }

  /** Resolves once every change seen so far is in the published snapshot (for tests and shutdown). */
  async settled(): Promise<void> {
    while (this.#scheduled || this.#dirty.size > 0) {
      await this.#rebuilding;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await this.#rebuilding;
  }

  #markDirty(service: string): void {
    this.#dirty.add(service);
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setTimeout(() => {
      this.#scheduled = false;
      this.#rebuilding = this.#rebuilding.then(() => this.#rebuild());
    }, this.#options.coalesceMs ?? 10);
  }

  async #rebuild(): Promise<void> {
    if (this.#closed || this.#dirty.size === 0) return;
    const services = [...this.#dirty];
    this.#dirty.clear();
    try {
      const reads = await Promise.all(services.map((service) => this.#options.registry.instances({ service })));
      let next: Map<string, readonly Target[]> | undefined;
      services.forEach((service, i) => {
        const instances = reads[i]?.value ?? [];
        const targets = instances
          .filter((instance) => instanceHealth(instance) === 'passing')
          .map((instance) => ({ instanceId: instance.id, address: instance.address, port: instance.port, weight: Math.max(1, instance.weights.passing) }))
          .sort((a, b) => compareStrings(a.instanceId, b.instanceId));
        const current = this.#snapshot.get(service);
        if (instances.length === 0 ? current === undefined : current !== undefined && sameTargets(current, targets)) return;
        next ??= new Map(this.#snapshot);
        if (instances.length === 0) next.delete(service);
        else next.set(service, targets);
      });
      if (next === undefined || this.#closed) return;
      this.#snapshot = next;
      this.#options.publish(next);
    } catch (error) {
      // Keep routing on the last snapshot; try these services again with the next change.
      for (const service of services) this.#dirty.add(service);
      this.#options.logger?.error({ err: error }, 'reading the registry for the gateway failed');
    }
  }
}
