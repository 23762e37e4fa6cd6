import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Deadline } from '../../../src/gateway/http1/deadline.js';

describe('Deadline', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is reached once, when the last deadline set passes, however often it was moved on', () => {
    let reached = 0;
    const deadline = new Deadline(() => (reached += 1));
    // Moved on every 10 ms for a second, as a busy connection does on every exchange.
    for (let t = 0; t < 1_000; t += 10) {
      deadline.set(100);
      vi.advanceTimersByTime(10);
    }
    expect(reached).toBe(0);
    // Last set at 990 ms: reached at 1,090 ms, not before.
    vi.advanceTimersByTime(88);
    expect(reached).toBe(0);
    vi.advanceTimersByTime(3);
    expect(reached).toBe(1);
    vi.advanceTimersByTime(1_000);
    expect(reached).toBe(1);
  });

  it('uses one timer, started again only when it fires before the deadline', () => {
    const deadline = new Deadline(() => undefined);
    const started = vi.spyOn(globalThis, 'setTimeout');
    for (let i = 0; i < 1_000; i++) {
      deadline.set(50);
      vi.advanceTimersByTime(1);
    }
    // A timer per period of 50 ms at most (the first, then one per firing), not one per set.
    expect(started.mock.calls.length).toBeLessThanOrEqual(1_000 / 50 + 1);
    started.mockRestore();
  });

  it('moves earlier when set for less time than the pending timer has left', () => {
    let reachedAt = -1;
    const deadline = new Deadline(() => (reachedAt = performance.now()));
    const from = performance.now();
    deadline.set(10_000);
    vi.advanceTimersByTime(100);
    deadline.set(200);
    vi.advanceTimersByTime(1_000);
    expect(reachedAt - from).toBeGreaterThanOrEqual(299);
    expect(reachedAt - from).toBeLessThanOrEqual(301);
  });

  it('is not reached once cleared or cancelled, and can be set again after', () => {
    let reached = 0;
    const deadline = new Deadline(() => (reached += 1));
    deadline.set(100);
    vi.advanceTimersByTime(50);
    deadline.clear();
    vi.advanceTimersByTime(500);
    expect(reached).toBe(0);
    deadline.set(100);
    deadline.cancel();
    vi.advanceTimersByTime(500);
    expect(reached).toBe(0);
    deadline.set(100);
    vi.advanceTimersByTime(101);
    expect(reached).toBe(1);
  });
});
