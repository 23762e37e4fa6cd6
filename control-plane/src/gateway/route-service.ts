import { randomUUID } from 'node:crypto';
import { type Principal } from '../auth/token-service.js';
import { PorticoError } from '../errors.js';
import { type Store, type StoreSession } from '../store/store.js';
import { canonicalRoute, type GatewayRoute, type RouteSpec, routesOverlap } from './gateway-route.js';

/** One change to the explicit routes, as subscribers are told of it. */
export interface RouteChange {
  action: 'created' | 'updated' | 'deleted';
  id: string;
  name: string;
  at: Date;
}

/**
 * The gateway's explicit routes as the admin API changes them: each change is checked (canonical
 * form, no other route matching the same requests), written with its audit entry in one transaction,
 * then announced to subscribers (the gateway), which apply it at once.
 */
export class RouteService {
  readonly #store: Store;
  readonly #listeners = new Set<(change: RouteChange) => void>();

  constructor(store: Store) {
    this.#store = store;
  }

  list(): Promise<GatewayRoute[]> {
    return this.#store.routes.list();
  }

  /** @throws PorticoError `PORTICO_ERR_ROUTE_NOT_FOUND`. */
  async get(id: string): Promise<GatewayRoute> {
    const route = await this.#store.routes.get(id);
    if (route === undefined) throw new PorticoError('PORTICO_ERR_ROUTE_NOT_FOUND', { message: `No route has the id "${id}".`, details: { id } });
    return route;
  }

  /** @throws PorticoError `PORTICO_ERR_REQUEST_INVALID`, `PORTICO_ERR_ROUTE_NAME_TAKEN`, `PORTICO_ERR_ROUTE_CONFLICT`. */
  async create(actor: Principal, spec: RouteSpec): Promise<GatewayRoute> {
    const canonical = canonicalRoute(spec);
    const route = await this.#store.transaction(async (session) => {
      await refuseOverlap(session, canonical, undefined);
      const now = new Date();
      const created = await session.routes.create({ ...canonical, id: randomUUID(), createdAt: now, updatedAt: now });
      await audit(session, actor, 'route.create', created);
      return created;
    });
    this.#changed('created', route);
    return route;
  }

  /** Replace a route's fields. @throws as `create`, and `PORTICO_ERR_ROUTE_NOT_FOUND`. */
  async update(actor: Principal, id: string, spec: RouteSpec): Promise<GatewayRoute> {
    const canonical = canonicalRoute(spec);
    const route = await this.#store.transaction(async (session) => {
      const current = await session.routes.get(id);
      if (current === undefined) throw new PorticoError('PORTICO_ERR_ROUTE_NOT_FOUND', { message: `No route has the id "${id}".`, details: { id } });
      await refuseOverlap(session, canonical, id);
      const updated = await session.routes.update({ ...canonical, id, createdAt: current.createdAt, updatedAt: new Date() });
      await audit(session, actor, 'route.update', updated);
      return updated;
    });
    this.#changed('updated', route);
    return route;
  }

  /** @throws PorticoError `PORTICO_ERR_ROUTE_NOT_FOUND`. */
  async remove(actor: Principal, id: string): Promise<GatewayRoute> {
    const route = await this.#store.transaction(async (session) => {
      const removed = await session.routes.remove(id);
      await audit(session, actor, 'route.delete', removed);
      return removed;
    });
    this.#changed('deleted', route);
    return route;
  }

  /** Be told after every change (in-process gateway, `GET /api/v1/routes/events`). Returns the unsubscribe function. */
  subscribe(listener: (change: RouteChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(action: RouteChange['action'], route: GatewayRoute): void {
    const change: RouteChange = { action, id: route.id, name: route.name, at: new Date() };
    for (const listener of this.#listeners) listener(change);
  }
}

async function refuseOverlap(session: StoreSession, route: RouteSpec, ownId: string | undefined): Promise<void> {
  const clash = (await session.routes.list()).find((other) => other.id !== ownId && routesOverlap(other, route));
  if (clash !== undefined) {
    throw new PorticoError('PORTICO_ERR_ROUTE_CONFLICT', {
      message: `The route "${clash.name}" already matches requests for ${route.host ?? 'any host'} under ${route.pathPrefix}${clash.methods === null ? '' : ` (${clash.methods.join(', ')})`}.`,
      details: { route: clash.name, id: clash.id },
    });
  }
}

async function audit(session: StoreSession, actor: Principal, action: string, route: GatewayRoute): Promise<void> {
  await session.audit.append({
    actorId: actor.id,
    actorName: actor.name,
    action,
    target: `route:${route.id}`,
    details: { name: route.name, pathPrefix: route.pathPrefix, host: route.host, service: route.service },
  });
}
