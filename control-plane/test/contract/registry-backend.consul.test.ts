import { describe, expect, it } from 'vitest';
import { ConsulRegistryBackend } from '../../src/registry/backends/consul-registry-backend.js';
import { createTestApp } from '../support/test-app.js';
import { freePort } from '../support/control-plane-process.js';
import { describeRegistryBackendContract } from './registry-backend.contract.js';

// The probe for readiness is never pinged here; no Redis is needed.
const REDIS_URL = process.env.PORTICO_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Portico's own Consul-compatible API, served over a real socket, as the Consul agent. */
async function porticoAsConsul() {
  const t = await createTestApp({ redisUrl: REDIS_URL });
  const port = await freePort();
  await t.app.listen({ host: '127.0.0.1', port });
  const token = await t.tokenFor('operator');
  return { t, addr: `127.0.0.1:${port}`, token };
}

describeRegistryBackendContract('ConsulRegistryBackend against Portico’s Consul-compatible API', async () => {
  const { t, addr, token } = await porticoAsConsul();
  const backend = new ConsulRegistryBackend({ addr, token, initialSyncTimeoutMs: 5000 });
  await backend.start();
  return {
    backend,
    cleanup: async () => {
      await backend.close();
      await t.close();
    },
  };
});

// Against a real Consul agent wherever one is configured. Consul reaps critical services no sooner
// than a minute, every 30 s, so the timings follow.
const realConsul = process.env.PORTICO_CONSUL_ADDR;
if (realConsul !== undefined && realConsul !== '') {
  describeRegistryBackendContract(
    `ConsulRegistryBackend against Consul at ${realConsul}`,
    async () => {
      const backend = new ConsulRegistryBackend({ addr: realConsul, token: process.env.PORTICO_CONSUL_TOKEN });
      await backend.start();
      return { backend, cleanup: () => backend.close() };
    },
    { deregisterAfterMs: 60_000, reapLagMs: 31_000 },
  );
}

describe('ConsulRegistryBackend when Consul is away', () => {
  it('starts stale, keeps serving, and recovers when Consul comes back', async () => {
    const port = await freePort();
    const backend = new ConsulRegistryBackend({ addr: `127.0.0.1:${port}`, token: 'none', initialSyncTimeoutMs: 300, backoffMaxMs: 200 });
    try {
      await backend.start();
      expect(backend.status()).toMatchObject({ stale: true });
      expect((await backend.services()).value).toEqual([]);

      const t = await createTestApp({ redisUrl: REDIS_URL });
      try {
        await t.app.listen({ host: '127.0.0.1', port });
        const recovering = new ConsulRegistryBackend({ addr: `127.0.0.1:${port}`, token: await t.tokenFor('operator'), backoffMaxMs: 200 });
        await recovering.start();
        expect(recovering.status()).toEqual({ stale: false });
        await recovering.close();
      } finally {
        await t.close();
      }
    } finally {
      await backend.close();
    }
  });

  it('keeps the last known state and reports stale when Consul goes away', async () => {
    const { t, addr, token } = await porticoAsConsul();
    const backend = new ConsulRegistryBackend({ addr, token, backoffMaxMs: 200 });
    try {
      await backend.start();
      await backend.register({ id: 'kept-1', service: 'kept', address: '127.0.0.1', port: 1 }, null);
      await t.close();
      const deadline = Date.now() + 10_000;
      while (!backend.status().stale && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(backend.status().stale).toBe(true);
      expect(backend.status().reason).toContain(addr);
      expect((await backend.instances({ service: 'kept' })).value.map((i) => i.id)).toEqual(['kept-1']);
    } finally {
      await backend.close();
    }
  });
});
