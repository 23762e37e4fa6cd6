import { validate, version } from 'uuid';
import { describe, expect, it } from 'vitest';
import { createEnvelope, newMessageId } from '../../../src/bus/envelope.js';

describe('message ids', () => {
  it('are UUIDv7s that sort in the order they were made, many within one millisecond', () => {
    const before = Date.now();
    const ids = Array.from({ length: 20_000 }, () => newMessageId());
    const after = Date.now();
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of [ids[0], ids[9_999], ids[19_999]] as string[]) {
      expect(validate(id)).toBe(true);
      expect(version(id)).toBe(7);
    }
    // 20,000 ids take a few milliseconds: most share one with others, and still sort.
    for (let i = 1; i < ids.length; i++) expect((ids[i - 1] as string) < (ids[i] as string)).toBe(true);
    const msecs = (id: string) => parseInt(id.replace(/-/g, '').slice(0, 12), 16);
    expect(msecs(ids[0] as string)).toBeGreaterThanOrEqual(before);
    // A carry from the sequence can put an id a millisecond or so ahead of the clock, never far.
    expect(msecs(ids[19_999] as string)).toBeLessThanOrEqual(after + 5);
  });

  it('are what an envelope gets unless it is given one', () => {
    const made = createEnvelope({ kind: 'event', type: 'product.availability_changed', source: 'inventory', payload: {} });
    const later = newMessageId();
    expect(version(made.id)).toBe(7);
    expect(made.id < later).toBe(true);
    expect(createEnvelope({ kind: 'event', type: 't', source: 'inventory', payload: {}, id: made.id }).id).toBe(made.id);
  });
});
