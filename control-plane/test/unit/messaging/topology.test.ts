import { describe, expect, it } from 'vitest';
import { PorticoError } from '../../../src/errors.js';
import { buildTopology, checkConsumes, MAX_CONSUMED_TYPES, serviceTopology } from '../../../src/messaging/topology.js';

const at = (ms: number) => new Date(1_700_000_000_000 + ms);
const sub = (service: string, messageType: string, declaredAt = at(0)) => ({ service, messageType, declaredAt });

function thrown(work: () => void): PorticoError {
  try {
    work();
  } catch (error) {
    expect(error).toBeInstanceOf(PorticoError);
    return error as PorticoError;
  }
  throw new Error('expected a PorticoError');
}

describe('buildTopology', () => {
  it('groups subscriptions by service, with its queue, and indexes types by consumer, all sorted', () => {
    const topology = buildTopology([
      sub('catalog', 'product.availability_changed', at(1)),
      sub('catalog', 'sku_set_availability', at(1)),
      sub('inventory', 'product.availability_changed', at(2)),
      sub('user', 'constructor', at(3)),
      sub('user', 'product.availability_changed', at(3)),
    ]);
    expect(topology.services).toEqual([
      { service: 'catalog', queue: 'catalog_service_queue', consumes: ['product.availability_changed', 'sku_set_availability'], declaredAt: at(1) },
      { service: 'inventory', queue: 'inventory_service_queue', consumes: ['product.availability_changed'], declaredAt: at(2) },
      { service: 'user', queue: 'user_service_queue', consumes: ['constructor', 'product.availability_changed'], declaredAt: at(3) },
    ]);
    expect(Object.keys(topology.types)).toEqual(['constructor', 'product.availability_changed', 'sku_set_availability']);
    expect(topology.types['product.availability_changed']).toEqual(['catalog', 'inventory', 'user']);
    expect(topology.types.constructor).toEqual(['user']);
    expect(JSON.parse(JSON.stringify(topology.types))).toEqual(topology.types);
  });

  it('is empty for no subscriptions', () => {
    expect(buildTopology([])).toEqual({ services: [], types: {} });
  });
});

describe('serviceTopology', () => {
  it('takes the declaration time from the rows, or the one given when there are none', () => {
    expect(serviceTopology('user', [sub('user', 'a', at(5))], at(9))).toEqual({ service: 'user', queue: 'user_service_queue', consumes: ['a'], declaredAt: at(5) });
    expect(serviceTopology('user', [], at(9))).toEqual({ service: 'user', queue: 'user_service_queue', consumes: [], declaredAt: at(9) });
  });
});

describe('checkConsumes', () => {
  it('accepts valid, distinct types up to the limit, and none at all', () => {
    expect(() => checkConsumes([])).not.toThrow();
    expect(() => checkConsumes(['product.availability_changed', 'sku_set_availability', 'A-1', 'x'.repeat(128)])).not.toThrow();
    expect(() => checkConsumes(Array.from({ length: MAX_CONSUMED_TYPES }, (_, i) => `t${i}`))).not.toThrow();
  });

  it('refuses more than the limit', () => {
    const error = thrown(() => checkConsumes(Array.from({ length: MAX_CONSUMED_TYPES + 1 }, (_, i) => `t${i}`)));
    expect(error.code).toBe('PORTICO_ERR_TOPOLOGY_TOO_MANY_TYPES');
    expect(error.statusCode).toBe(400);
    expect(error.details).toEqual({ limit: 256, given: 257 });
  });

  it('reports every invalid or repeated type at once, by position', () => {
    const error = thrown(() => checkConsumes(['ok', '', 'with space', 'ok', '_leading', 'x'.repeat(129), 'ok']));
    expect(error.code).toBe('PORTICO_ERR_TOPOLOGY_INVALID_TYPE');
    expect((error.details as Array<{ location: string }>).map((p) => p.location)).toEqual([
      'body/consumes/1',
      'body/consumes/2',
      'body/consumes/3',
      'body/consumes/4',
      'body/consumes/5',
      'body/consumes/6',
    ]);
    expect(error.message).toContain('"ok" is listed at consumes/0 already');
  });

  it('keeps a huge bad type out of the message', () => {
    const error = thrown(() => checkConsumes(['y'.repeat(10_000)]));
    expect(error.message.length).toBeLessThan(400);
  });
});
