import { PorticoError } from '../../errors.js';
import { type GatewayRoute } from '../../gateway/gateway-route.js';
import { type RouteRepository } from '../store.js';
import { type GatewayRoutesTable } from './database.js';
import { type Insertable } from 'kysely';
import { type RepositoryContext, guarded } from './repository-context.js';
import { toEpochMillis, toNumber } from './row-mapping.js';

type RouteRow = { id: string; name: string; doc: string; created_at: number | string; updated_at: number | string };

function toRoute(row: RouteRow): GatewayRoute {
  const doc = JSON.parse(row.doc) as Omit<GatewayRoute, 'id' | 'name' | 'createdAt' | 'updatedAt' | 'resilience'> & Partial<Pick<GatewayRoute, 'resilience'>>;
  // Routes stored before per-route resilience settings existed have none: the gateway's defaults.
  return { ...doc, resilience: doc.resilience ?? {}, id: row.id, name: row.name, createdAt: new Date(toNumber(row.created_at)), updatedAt: new Date(toNumber(row.updated_at)) };
}

function toRow(route: GatewayRoute): Insertable<GatewayRoutesTable> {
  const { id, name, createdAt, updatedAt, ...doc } = route;
  return { id, name, doc: JSON.stringify(doc), created_at: toEpochMillis(createdAt), updated_at: toEpochMillis(updatedAt) };
}

function notFound(id: string): PorticoError {
  return new PorticoError('PORTICO_ERR_ROUTE_NOT_FOUND', { message: `No route has the id "${id}".`, details: { id } });
}

/** `RouteRepository` over kysely: one JSON document per route beside its id, name and times. */
export class KyselyRouteRepository implements RouteRepository {
  readonly #context: RepositoryContext;

  constructor(context: RepositoryContext) {
    this.#context = context;
  }

  async list(): Promise<GatewayRoute[]> {
    return guarded(this.#context, async (db) => (await db.selectFrom('gateway_routes').selectAll().orderBy('name').execute()).map(toRoute));
  }

  async get(id: string): Promise<GatewayRoute | undefined> {
    return guarded(this.#context, async (db) => {
      const row = await db.selectFrom('gateway_routes').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? undefined : toRoute(row);
    });
  }

  async create(route: GatewayRoute): Promise<GatewayRoute> {
    return guarded(this.#context, async (db) => {
      await db.insertInto('gateway_routes').values(toRow(route)).execute();
      return route;
    });
  }

  async update(route: GatewayRoute): Promise<GatewayRoute> {
    return guarded(this.#context, async (db) => {
      const { id, name, doc, updated_at } = toRow(route);
      const result = await db.updateTable('gateway_routes').set({ name, doc, updated_at }).where('id', '=', id).executeTakeFirst();
      if (result.numUpdatedRows === 0n) throw notFound(id);
      const row = await db.selectFrom('gateway_routes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      return toRoute(row);
    });
  }

  async remove(id: string): Promise<GatewayRoute> {
    return guarded(this.#context, async (db) => {
      const row = await db.deleteFrom('gateway_routes').where('id', '=', id).returningAll().executeTakeFirst();
      if (row === undefined) throw notFound(id);
      return toRoute(row);
    });
  }
}
