import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type CircuitState } from '../../../src/gateway/circuit-breaker.js';
import { ServiceGuard } from '../../../src/gateway/service-guard.js';

function clock() {
  let now = 0;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('CircuitBreaker', () => {
  it('opens when the failure share of the window reaches the ratio, and not before the minimum', () => {
    const time = clock();
    const states: CircuitState[] = [];
    const breaker = new CircuitBreaker({ minimumRequests: 10, failureRatio: 0.5, openMs: 1_000, now: time.now, onStateChange: (s) => states.push(s) });
    for (let i = 0; i < 4; i++) breaker.record(false);
    expect(breaker.state).toBe('closed'); // 4 of 4 failed, but fewer than the minimum
    for (let i = 0; i < 5; i++) breaker.record(true);
    breaker.record(false); // 5 of 10
    expect(breaker.state).toBe('open');
    expect(breaker.allow()).toBe(false);
    expect(breaker.retryAfterMs).toBe(1_000);
    expect(states).toEqual(['open']);
  });

  it('forgets failures older than the window', () => {
    const time = clock();
    const breaker = new CircuitBreaker({ windowMs: 1_000, minimumRequests: 4, failureRatio: 0.5, now: time.now });
    for (let i = 0; i < 3; i++) breaker.record(false);
    time.advance(1_100);
    breaker.record(false);
    for (let i = 0; i < 3; i++) breaker.record(true);
    expect(breaker.state).toBe('closed'); // 1 of 4 in the window
  });

  it('lets one probe through after the open period; its success closes, its failure reopens', () => {
    const time = clock();
    const states: CircuitState[] = [];
    const breaker = new CircuitBreaker({ minimumRequests: 1, failureRatio: 0.5, openMs: 1_000, now: time.now, onStateChange: (s) => states.push(s) });
    breaker.record(false);
    time.advance(1_000);
    expect(breaker.allow()).toBe(true);
    expect(breaker.state).toBe('half_open');
    expect(breaker.allow()).toBe(false); // one probe at a time
    breaker.record(false);
    expect(breaker.state).toBe('open');
    time.advance(999);
    expect(breaker.allow()).toBe(false);
    time.advance(1);
    expect(breaker.allow()).toBe(true);
    breaker.cancel(); // the probe's client left: another probe may go
    expect(breaker.allow()).toBe(true);
    breaker.record(true);
    expect(breaker.state).toBe('closed');
    expect(breaker.allow()).toBe(true);
    expect(states).toEqual(['open', 'half_open', 'open', 'half_open', 'closed']);
  });
});

describe('ServiceGuard', () => {
  it('refuses requests beyond the bulkhead until one leaves, and while the circuit is open', () => {
    const guard = new ServiceGuard({ service: 's', route: '' }, { maxConcurrent: 2, breaker: { minimumRequests: 1, openMs: 60_000 } });
    expect(guard.enter()).toBeUndefined();
    expect(guard.enter()).toBeUndefined();
    expect(guard.enter()).toEqual({ reason: 'overloaded' });
    guard.leave(true);
    expect(guard.enter()).toBeUndefined();
    guard.leave(false);
    guard.leave(undefined);
    expect(guard.inflight).toBe(0);
    expect(guard.enter()).toMatchObject({ reason: 'circuit_open' });
  });
});
