import { describe, expect, it } from 'vitest';
import { checkEvictionPolicy, type ConfigReader } from '../../../src/broker/eviction-policy.js';
import { PorticoError } from '../../../src/errors.js';

function redisWith(reply: unknown): ConfigReader & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    config: async (subcommand, parameter) => {
      asked.push(`${subcommand} ${parameter}`);
      if (reply instanceof Error) throw reply;
      return reply;
    },
  };
}

function logger() {
  const warnings: Array<{ object: object; message?: string }> = [];
  return { warnings, warn: (object: object, message?: string) => void warnings.push({ object, message }) };
}

const url = 'redis://:secret@cache.internal:6379';

describe('checkEvictionPolicy', () => {
  it('accepts noeviction without a word, in either mode', async () => {
    for (const production of [false, true]) {
      const log = logger();
      const redis = redisWith(['maxmemory-policy', 'noeviction']);
      await expect(checkEvictionPolicy({ redis, url, production, logger: log })).resolves.toEqual({ policy: 'noeviction', ok: true });
      expect(redis.asked).toEqual(['GET maxmemory-policy']);
      expect(log.warnings).toEqual([]);
    }
  });

  it('warns loudly about a policy that evicts, outside production', async () => {
    const log = logger();
    await expect(checkEvictionPolicy({ redis: redisWith(['maxmemory-policy', 'allkeys-lru']), url, production: false, logger: log })).resolves.toEqual({ policy: 'allkeys-lru', ok: false });
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]!.message).toMatch(/^!!! .*maxmemory-policy "allkeys-lru".*noeviction.*PORTICO_ENV=production would refuse to start/);
    expect(JSON.stringify(log.warnings)).not.toContain('secret');
  });

  it('refuses to start in production with a configuration error naming the policy and the fix', async () => {
    const log = logger();
    const error = await checkEvictionPolicy({ redis: redisWith(['maxmemory-policy', 'volatile-lru']), url, production: true, logger: log }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PorticoError);
    expect(error).toMatchObject({ code: 'PORTICO_ERR_CONFIG_INVALID', details: { maxmemoryPolicy: 'volatile-lru' } });
    expect((error as PorticoError).message).toMatch(/maxmemory-policy "volatile-lru".*Set "maxmemory-policy noeviction".*PORTICO_ENV=production refuses to start/);
    expect((error as PorticoError).message).not.toContain('secret');
    expect(log.warnings).toEqual([]);
  });

  it('warns and carries on when Redis will not say (CONFIG renamed or forbidden), even in production', async () => {
    for (const reply of [new Error("ERR unknown command 'CONFIG'"), []]) {
      const log = logger();
      await expect(checkEvictionPolicy({ redis: redisWith(reply), url, production: true, logger: log })).resolves.toEqual({ policy: undefined, ok: true });
      expect(log.warnings).toHaveLength(1);
      expect(log.warnings[0]!.message).toContain('noeviction');
    }
  });
});
