import { mayManageService, type Principal } from '../auth/token-service.js';
import { PorticoError } from '../errors.js';
import { type Store, type Subscription } from '../store/store.js';
import { buildTopology, checkConsumes, type ServiceTopology, serviceTopology, type Topology } from './topology.js';

/** One change to the topology, as subscribers are told of it. */
export interface TopologyChange {
  /** `declared`: the service's set was replaced; `deleted`: its subscriptions were removed. */
  action: 'declared' | 'deleted';
  service: string;
  at: Date;
}

/**
 * The message topology as the admin API reads and changes it. A service's set of message types is
 * declared whole (by an operator, or by the service's own agent token); each change is checked, written
 * with its audit entry in one transaction, then announced to subscribers (`GET /api/v1/topology/events`).
 * Declaring the set a service has already changes nothing: no write, no audit entry, no announcement,
 * so services may declare at every start.
 */
export class TopologyService {
  readonly #store: Store;
  readonly #listeners = new Set<(change: TopologyChange) => void>();

  constructor(store: Store) {
    this.#store = store;
  }

  /** The whole topology, as stored now. */
  async read(): Promise<Topology> {
    return buildTopology(await this.#store.topology.list());
  }

  /**
   * Make `consumes` the whole set of message types `service` consumes (an empty set removes its
   * subscriptions). Admins and operators may declare for any service, an agent token for its own.
   * @returns the service's entry as it now is.
   * @throws PorticoError `PORTICO_ERR_TOPOLOGY_SERVICE_FORBIDDEN`, `PORTICO_ERR_TOPOLOGY_TOO_MANY_TYPES`,
   *   `PORTICO_ERR_TOPOLOGY_INVALID_TYPE`.
   */
  async declare(actor: Principal, service: string, consumes: readonly string[]): Promise<ServiceTopology> {
    if (!mayManageService(actor, service)) {
      throw new PorticoError('PORTICO_ERR_TOPOLOGY_SERVICE_FORBIDDEN', {
        message: `The token "${actor.name}" may not declare the message types of the service "${service}".`,
        details: { service },
      });
    }
    checkConsumes(consumes);
    const now = new Date();
    const result = await this.#store.transaction(async (session) => {
      const replacement = await session.topology.replace(service, consumes, now);
      if (replacement.changed) {
        const before = types(replacement.before);
        const after = types(replacement.after);
        await session.audit.append({
          actorId: actor.id,
          actorName: actor.name,
          action: 'topology.declare',
          target: `service:${service}`,
          details: {
            consumes: after,
            added: after.filter((type) => !before.includes(type)),
            removed: before.filter((type) => !after.includes(type)),
          },
        });
      }
      return replacement;
    });
    if (result.changed) this.#changed('declared', service);
    return serviceTopology(service, result.after, now);
  }

  /**
   * Remove every subscription of `service`.
   * @returns the service's entry as it was.
   * @throws PorticoError `PORTICO_ERR_TOPOLOGY_SERVICE_NOT_FOUND` when it had none.
   */
  async remove(actor: Principal, service: string): Promise<ServiceTopology> {
    const removed = await this.#store.transaction(async (session) => {
      const rows = await session.topology.removeService(service);
      if (rows.length === 0) {
        throw new PorticoError('PORTICO_ERR_TOPOLOGY_SERVICE_NOT_FOUND', { message: `The service "${service}" consumes no message types.`, details: { service } });
      }
      await session.audit.append({
        actorId: actor.id,
        actorName: actor.name,
        action: 'topology.delete',
        target: `service:${service}`,
        details: { consumes: types(rows) },
      });
      return rows;
    });
    this.#changed('deleted', service);
    return serviceTopology(service, removed, new Date());
  }

  /** Be told after every change (`GET /api/v1/topology/events`). Returns the unsubscribe function. */
  subscribe(listener: (change: TopologyChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(action: TopologyChange['action'], service: string): void {
    const change: TopologyChange = { action, service, at: new Date() };
    for (const listener of this.#listeners) listener(change);
  }
}

function types(subscriptions: readonly Subscription[]): string[] {
  return subscriptions.map((subscription) => subscription.messageType);
}
