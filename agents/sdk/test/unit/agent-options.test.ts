import { describe, expect, it } from 'vitest';
import { AgentError } from '../../src/agent-error.js';
import { resolveAgentConfig } from '../../src/agent-options.js';

const base = { service: 'catalog', port: 4002, controlPlane: 'http://127.0.0.1:8400', token: 'ptc_x' };

describe('resolveAgentConfig', () => {
  it('applies the defaults: 10s interval, timeout the interval (at most 10s), TTL 2 × interval + timeout, 1m, 5s drain', () => {
    const config = resolveAgentConfig(base);
    expect(config).toMatchObject({ address: '127.0.0.1', intervalMs: 10_000, timeoutMs: 10_000, ttlMs: 30_000, deregisterAfterMs: 60_000, drainMs: 5_000 });
    expect(config.reconnect).toEqual({ initialMs: 1_000, maxMs: 10_000 });
    expect(config.id).toMatch(/^catalog-[0-9a-f]{12}$/);
    expect(resolveAgentConfig({ ...base, interval: '1m' }).timeoutMs).toBe(10_000);
  });

  it('reads Go-style durations and milliseconds alike', () => {
    const config = resolveAgentConfig({ ...base, interval: '500ms', timeout: 200, deregisterAfter: '1m30s', drain: '0s' });
    expect(config).toMatchObject({ intervalMs: 500, timeoutMs: 200, ttlMs: 1_200, deregisterAfterMs: 90_000, drainMs: 0 });
    expect(config.reconnect).toEqual({ initialMs: 125, maxMs: 500 });
  });

  it('never deregisters with deregisterAfter 0 or null', () => {
    expect(resolveAgentConfig({ ...base, deregisterAfter: '0' }).deregisterAfterMs).toBeUndefined();
    expect(resolveAgentConfig({ ...base, deregisterAfter: null }).deregisterAfterMs).toBeUndefined();
  });

  it('keeps a base path in the control plane URL', () => {
    expect(resolveAgentConfig({ ...base, controlPlane: 'https://ops.example.com/portico' }).controlPlane.href).toBe('https://ops.example.com/portico/');
  });

  it('reports every problem at once, by option', () => {
    let error: unknown;
    try {
      resolveAgentConfig({ service: 'bad name', port: 70_000, controlPlane: 'ftp://x', token: '', interval: '10', address: 'not an address', meta: { 'bad key': 'v' }, tags: ['a', 'a'] });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(AgentError);
    expect(error).toMatchObject({ code: 'PORTICO_ERR_AGENT_INVALID_OPTIONS', kind: 'invalid_options', fatal: true });
    const problems = (error as AgentError).details as string[];
    for (const option of ['service:', 'port:', 'controlPlane:', 'token:', 'interval:', 'address:', 'meta:', 'tags:']) {
      expect(problems.some((problem) => problem.startsWith(option)), option).toBe(true);
    }
    expect((error as Error).message).toMatch(/interval: "10" is not a duration/);
  });

  it('refuses an interval below the control plane\'s 100ms minimum', () => {
    expect(() => resolveAgentConfig({ ...base, interval: '50ms' })).toThrow(/interval: must be at least 100 ms/);
  });
});
