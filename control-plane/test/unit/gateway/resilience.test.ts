import { describe, expect, it, vi } from 'vitest';
import { OutlierDetector } from '../../../src/gateway/outlier-detector.js';
import { RetryBudget } from '../../../src/gateway/retry-budget.js';
import { type ServiceRoute } from '../../../src/gateway/route-table.js';
import { Upstream } from '../../../src/gateway/upstream.js';

const upstream = (id: string) => new Upstream(id, `http://${id}:80`, `${id}:80`, 1, undefined as never);
const route = (upstreams: Upstream[]): ServiceRoute => ({ service: 's', targets: [], upstreams, balancer: { pick: () => undefined } });

describe('RetryBudget', () => {
  it('allows retries as a share of requests, beyond a small reserve', () => {
    const budget = new RetryBudget({ ratio: 0.2, reservePerSecond: 2 });
    expect([budget.tryWithdraw(), budget.tryWithdraw(), budget.tryWithdraw()]).toEqual([true, true, false]);
    for (let i = 0; i < 100; i++) budget.deposit();
    let retries = 0;
    while (budget.tryWithdraw()) retries += 1;
    expect(retries).toBeGreaterThanOrEqual(20);
    expect(retries).toBeLessThanOrEqual(21);
  });
});

describe('OutlierDetector', () => {
  it('ejects an instance after consecutive failures, for longer each time, and lets it back', () => {
    vi.useFakeTimers();
    try {
      const ejected: number[] = [];
      const detector = new OutlierDetector({ consecutiveFailures: 2, baseEjectionMs: 1_000, onEject: (_service, _upstream, forMs) => ejected.push(forMs) });
      const [a, b, c] = [upstream('a'), upstream('b'), upstream('c')];
      const r = route([a, b, c]);
      detector.failure(r, a);
      detector.success(a);
      detector.failure(r, a);
      expect(a.ejected).toBe(false);
      detector.failure(r, a);
      expect(a.ejected).toBe(true);
      vi.advanceTimersByTime(1_000);
      expect(a.ejected).toBe(false);
      detector.failure(r, a);
      detector.failure(r, a);
      expect(ejected).toEqual([1_000, 2_000]);
      vi.advanceTimersByTime(1_999);
      expect(a.ejected).toBe(true);
      vi.advanceTimersByTime(1);
      expect(a.ejected).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it('never ejects more than the set share of a service\'s instances', () => {
    const detector = new OutlierDetector({ consecutiveFailures: 1, maxEjectedShare: 0.5 });
    const all = [upstream('a'), upstream('b'), upstream('c'), upstream('d')];
    for (const one of all) detector.failure(route(all), one);
    expect(all.filter((one) => one.ejected)).toHaveLength(2);
  });
});
