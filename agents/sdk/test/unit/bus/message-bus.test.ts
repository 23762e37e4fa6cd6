import { describe, expect, it } from 'vitest';
import { MessageBus, StaticTopology } from '../../../src/bus/index.js';

// Nothing here reaches Redis: the connections are lazy until a command, and `close` ends them.
const options = { redis: { lazyConnect: true, host: '127.0.0.1', port: 1 }, topology: new StaticTopology() };

describe('MessageBus options', () => {
  it('refuses a service name a queue cannot carry, with a coded error', async () => {
    for (const service of ['', 'has space', 'colon:name', 'x'.repeat(64)]) {
      expect(() => new MessageBus({ ...options, service })).toThrow(expect.objectContaining({ code: 'PORTICO_ERR_BUS_INVALID_MESSAGE', kind: 'invalid_options' }));
    }
    await new MessageBus({ ...options, service: 'Catalog_v2.eu-1' }).close();
  });

  it('refuses a handler for an invalid type or with a retry policy that cannot run', async () => {
    const bus = new MessageBus({ ...options, service: 'catalog' });
    expect(() => bus.on('bad type!', () => undefined)).toThrow(expect.objectContaining({ code: 'PORTICO_ERR_BUS_INVALID_MESSAGE' }));
    expect(() => bus.on('sku_set_availability', () => undefined, { attempts: 0 })).toThrow(expect.objectContaining({ code: 'PORTICO_ERR_BUS_INVALID_MESSAGE' }));
    expect(() => bus.on('sku_set_availability', () => undefined, { delayMs: 5_000, maxDelayMs: 1_000 })).toThrow(expect.objectContaining({ code: 'PORTICO_ERR_BUS_INVALID_MESSAGE' }));
    expect(bus.on('sku_set_availability', () => undefined, { attempts: 3 })).toBe(bus);
    await bus.close();
  });

  it('refuses to publish or send a message it cannot carry, with a coded error, before touching Redis', async () => {
    const bus = new MessageBus({ ...options, service: 'inventory' });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expect(bus.publish('product.availability_changed', { count: 1n })).rejects.toMatchObject({ code: 'PORTICO_ERR_BUS_INVALID_MESSAGE', message: expect.stringContaining('JSON') });
    await expect(bus.send('catalog', 'sku_set_availability', circular)).rejects.toMatchObject({ code: 'PORTICO_ERR_BUS_INVALID_MESSAGE' });
    await expect(bus.send('no such:service', 'sku_set_availability', {})).rejects.toMatchObject({ code: 'PORTICO_ERR_BUS_INVALID_MESSAGE' });
    await expect(bus.publish('bad type!', {})).rejects.toMatchObject({ code: 'PORTICO_ERR_BUS_INVALID_MESSAGE' });
    await bus.close();
  });
});
