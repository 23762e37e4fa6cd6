import { describe, expect, it } from 'vitest';
import { defaultInstanceId } from '../../src/instance-id.js';

describe('defaultInstanceId', () => {
  const target = { service: 'catalog', address: '10.0.0.7', port: 4002, host: 'node-a' };

  it('is the same for the same service, host, address and port: a restart keeps its id', () => {
    expect(defaultInstanceId(target)).toBe(defaultInstanceId({ ...target }));
    expect(defaultInstanceId(target)).toMatch(/^catalog-[0-9a-f]{12}$/);
  });

  it('differs when any of them differs', () => {
    const ids = new Set([
      defaultInstanceId(target),
      defaultInstanceId({ ...target, service: 'inventory' }),
      defaultInstanceId({ ...target, host: 'node-b' }),
      defaultInstanceId({ ...target, address: '10.0.0.8' }),
      defaultInstanceId({ ...target, port: 4003 }),
    ]);
    expect(ids.size).toBe(5);
  });

  it('fits the registry\'s id alphabet and length for the longest service name', () => {
    expect(defaultInstanceId({ ...target, service: 'a'.repeat(63) })).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/);
  });
});
