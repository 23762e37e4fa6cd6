import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src/backoff.js';

describe('Backoff', () => {
  it('doubles from the initial delay up to the cap, each delay within [ceiling/2, ceiling]', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1_000, random: () => 0 });
    const high = new Backoff({ initialMs: 100, maxMs: 1_000, random: () => 1 });
    expect(Array.from({ length: 6 }, () => low.next())).toEqual([50, 100, 200, 400, 500, 500]);
    expect(Array.from({ length: 6 }, () => high.next())).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });

  it('counts attempts and starts over after a reset', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1_000, random: () => 1 });
    backoff.next();
    backoff.next();
    expect(backoff.attempts).toBe(2);
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect(backoff.next()).toBe(100);
  });

  it('never overflows after very many attempts', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 10_000, random: () => 1 });
    for (let i = 0; i < 2_000; i++) backoff.next();
    expect(backoff.next()).toBe(10_000);
  });
});
