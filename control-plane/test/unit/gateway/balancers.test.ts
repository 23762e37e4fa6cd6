import { describe, expect, it } from 'vitest';
import { LeastRequestBalancer } from '../../../src/gateway/balancers/least-request.js';
import { RoundRobinBalancer } from '../../../src/gateway/balancers/round-robin.js';
import { Upstream } from '../../../src/gateway/upstream.js';

const upstream = (id: string, weight = 1) => new Upstream(id, `http://${id}:80`, `${id}:80`, weight, undefined as never);

function counts(picks: Array<Upstream | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pick of picks) if (pick !== undefined) out[pick.instanceId] = (out[pick.instanceId] ?? 0) + 1;
  return out;
}

describe('RoundRobinBalancer', () => {
  it('gives each instance its weight\'s share, interleaved (smooth weighted round robin)', () => {
    const all = [upstream('a', 5), upstream('b', 1), upstream('c', 1)];
    const balancer = new RoundRobinBalancer();
    const picks = Array.from({ length: 7 }, () => balancer.pick(all)?.instanceId);
    expect(picks).toEqual(['a', 'a', 'b', 'a', 'c', 'a', 'a']);
    expect(counts(Array.from({ length: 700 }, () => balancer.pick(all)))).toEqual({ a: 500, b: 100, c: 100 });
  });

  it('skips excluded instances, and ejected ones while any other is left', () => {
    const [a, b, c] = [upstream('a'), upstream('b'), upstream('c')];
    const balancer = new RoundRobinBalancer();
    expect(counts(Array.from({ length: 10 }, () => balancer.pick([a, b, c], new Set([a]))))).toEqual({ b: 5, c: 5 });
    b.ejected = true;
    expect(counts(Array.from({ length: 10 }, () => balancer.pick([a, b, c], new Set([a]))))).toEqual({ c: 10 });
    c.ejected = true;
    expect(balancer.pick([a, b, c], new Set([a]))).toBeDefined();
    expect(balancer.pick([a, b, c], new Set([a, b, c]))).toBeUndefined();
    expect(balancer.pick([a], new Set([a]))).toBeUndefined();
  });
});

describe('LeastRequestBalancer', () => {
  it('of two random choices, takes the one with fewer requests in flight per weight', () => {
    const [a, b, c] = [upstream('a'), upstream('b'), upstream('c')];
    a.inflight = 10;
    b.inflight = 0;
    c.inflight = 5;
    // Draws 0 and 1 (a and b), then 1 and 2 (b and c), then 0 and 2 (a and c).
    const draws = [0, 0, 0.4, 0.6, 0, 0.9];
    const balancer = new LeastRequestBalancer(() => draws.shift() as number);
    expect(balancer.pick([a, b, c])).toBe(b);
    expect(balancer.pick([a, b, c])).toBe(b);
    expect(balancer.pick([a, b, c])).toBe(c);
  });

  it('spreads load towards idle instances over many picks, and never picks an excluded one', () => {
    const all = [upstream('a'), upstream('b'), upstream('c'), upstream('d')];
    all[0]!.inflight = 100;
    const balancer = new LeastRequestBalancer();
    const picked = counts(Array.from({ length: 1_000 }, () => balancer.pick(all, new Set([all[3]!]))));
    expect(picked.d).toBeUndefined();
    expect(picked.a).toBeUndefined(); // a loses every draw it is in
    expect(picked.b! + picked.c!).toBe(1_000);
  });

  it('skips ejected instances while any other is left', () => {
    const [a, b] = [upstream('a'), upstream('b')];
    a.ejected = true;
    const balancer = new LeastRequestBalancer();
    expect(counts(Array.from({ length: 20 }, () => balancer.pick([a, b])))).toEqual({ b: 20 });
    b.ejected = true;
    expect(balancer.pick([a, b])).toBeDefined();
  });
});
