/**
 * Go-style duration strings (`500ms`, `10s`, `1m30s`, `1.5h`), the form Consul and its operators use
 * for intervals and timeouts.
 *
 * Written here rather than taken from npm: `parse-duration`, the maintained candidate, reads a bare
 * `10` as 10 ms, accepts `-1s` and English such as `3 hours`, so a typo would pass silently.
 */

const MS_PER_UNIT: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 MICRO SIGN, as Go accepts
  'μs': 1e-3, // U+03BC GREEK SMALL LETTER MU, as Go accepts
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

// Longer units first so that `ms` is not read as `m` followed by garbage.
const SEGMENT = /(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|s|m|h)/y;

/**
 * Parses a Go-style duration into milliseconds.
 *
 * Grammar: one or more `<number><unit>` segments with no spaces, where the number is a non-negative
 * decimal (`1`, `1.5`) and the unit is one of `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`; segments add
 * up (`1m30s` is 90 000). As in Go, the bare `0` is also accepted. Signs, spaces, a missing unit
 * (`10`) and unknown units are rejected. The result may be fractional below one millisecond
 * (`1500us` is 1.5).
 *
 * @param text - The duration as written, e.g. `"10s"`.
 * @returns The duration in milliseconds.
 * @throws RangeError with a readable message when `text` is not a duration; callers turn it into
 *   their own coded error (configuration, request or command-line).
 */
export function parseDuration(text: string): number {
  if (text === '0') return 0;
  if (text === '') throw new RangeError('a duration cannot be empty: write it like "10s", "500ms" or "1m30s"');

  let total = 0;
  let index = 0;
  while (index < text.length) {
    SEGMENT.lastIndex = index;
    const match = SEGMENT.exec(text);
    if (match === null) {
      throw new RangeError(`"${text}" is not a duration: write it like "10s", "500ms" or "1m30s" (units: ns, us, ms, s, m, h)`);
    }
    const [whole, amount = '', unit = ''] = match;
    total += Number(amount) * (MS_PER_UNIT[unit] ?? Number.NaN);
    index += whole.length;
  }

  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`"${text}" is too long a duration`);
  }
  // Decimal fractions are inexact in binary (`0.3s`); Go's resolution is the nanosecond, so is ours.
  return Math.round(total * 1e6) / 1e6;
}
