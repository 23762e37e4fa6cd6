import { describe, expect, it } from 'vitest';
import { DeadlineWheel } from '../../../src/registry/deadline-wheel.js';

describe('DeadlineWheel', () => {
  it('hands out a key only once its deadline has passed (at most one resolution later), and only once', () => {
    const wheel = new DeadlineWheel(100, 1_000);
    wheel.add('a', 1_250);
    wheel.add('b', 1_350);
    expect(wheel.takeDue(1_249)).toEqual([]);
    expect(wheel.takeDue(1_299)).toEqual([]);
    expect(wheel.takeDue(1_300)).toEqual(['a']);
    expect(wheel.takeDue(1_399)).toEqual([]);
    expect(wheel.takeDue(1_400)).toEqual(['b']);
    expect(wheel.takeDue(5_000)).toEqual([]);
    expect(wheel.size).toBe(0);
  });

  it('makes a deadline already past due at the next bucket', () => {
    const wheel = new DeadlineWheel(100, 10_000);
    wheel.takeDue(10_500);
    wheel.add('late', 9_000);
    expect(wheel.takeDue(10_600)).toEqual(['late']);
  });

  it('keeps each entry of a key that moved: the owner decides which one still counts', () => {
    const wheel = new DeadlineWheel(100, 0);
    wheel.add('k', 200);
    wheel.add('k', 700);
    expect(wheel.takeDue(300)).toEqual(['k']);
    expect(wheel.size).toBe(1);
    expect(wheel.takeDue(700)).toEqual(['k']);
  });

  it('hands out many keys due in one bucket once each', () => {
    const wheel = new DeadlineWheel(50, 0);
    for (let i = 0; i < 1000; i++) wheel.add(`k${i % 10}`, 40 + (i % 7));
    expect(wheel.takeDue(50).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`).sort());
  });
});
