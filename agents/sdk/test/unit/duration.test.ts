import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1h2m3s4ms', 3_723_004],
    ['1.5s', 1_500],
    ['0.3s', 300],
    ['1500us', 1.5],
    ['1500µs', 1.5],
    ['2000000ns', 2],
    ['0s', 0],
    ['0', 0],
  ])('reads %j as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['10', 'abc', '-1s', '+1s', '', ' 10s', '10s ', '10 s', '1m 30s', 's', '1x', '10sfoo', '1.s', '.5s', '1d', '3 hours', 'NaN', 'Infinitys'])(
    'rejects %j',
    (text) => {
      expect(() => parseDuration(text)).toThrow(RangeError);
    },
  );

  it('names the text and the expected form in its message', () => {
    expect(() => parseDuration('10')).toThrow(/"10" is not a duration: write it like "10s"/);
  });

  it('rejects a duration too long to represent', () => {
    expect(() => parseDuration('99999999999999999999h')).toThrow(/too long/);
  });
});
