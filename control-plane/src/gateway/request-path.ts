/**
 * The gateway routes on a normalised path and forwards exactly the path it routed, so a service can
 * never be reached under another service's name, and an upstream never sees a path the gateway did not
 * decide on. Normalising here means:
 *
 * - `\` is read as `/` (as browsers do), and runs of `/` become one;
 * - `;parameters` are dropped from every segment (`/a;x=1/..;/b` is `/a/../b`);
 * - `%2e` / `%2E` are dots, so `%2e%2e` is a `..` segment; `.` and `..` segments are resolved, never
 *   above the root;
 * - an encoded slash or backslash (`%2f`, `%5c`), a `#`, a control character or a malformed
 *   percent-escape is refused: there is no reading of such a path both sides would agree on.
 *
 * Other percent-escapes are kept as they are (`/c%61talog` is not `/catalog`: it names no service).
 */

export type NormalisedPath = { ok: true; path: string; query: string } | { ok: false; problem: string };

const HEX = /^[0-9A-Fa-f]{2}$/;
/* eslint-disable no-control-regex -- control characters are exactly what these look for */
const NEEDS_WORK = /[\\;%#\x00-\x1f\x7f]|\/\/|\/\./;
const REFUSED = /[#\x00-\x1f\x7f]/;
/* eslint-enable no-control-regex */

export function normaliseRequestPath(target: string): NormalisedPath {
  let pathAndQuery = target;
  if (!pathAndQuery.startsWith('/')) {
    // absolute-form (`GET http://host/path`), which a server must accept (RFC 9112, 3.2.2).
    const scheme = /^https?:\/\/[^/?#]*/i.exec(pathAndQuery);
    if (scheme === null) return { ok: false, problem: 'the request target must be a path starting with "/"' };
    pathAndQuery = pathAndQuery.slice(scheme[0].length);
    if (!pathAndQuery.startsWith('/')) pathAndQuery = `/${pathAndQuery}`;
  }
  const at = pathAndQuery.indexOf('?');
  const raw = at < 0 ? pathAndQuery : pathAndQuery.slice(0, at);
  const query = at < 0 ? '' : pathAndQuery.slice(at);

  // Fast path: nothing to normalise in the common case.
  if (!NEEDS_WORK.test(raw)) return { ok: true, path: raw, query };

  if (REFUSED.test(raw)) return { ok: false, problem: 'the path contains a "#" or a control character' };
  const segments: string[] = [];
  // Like RFC 3986's remove_dot_segments, a path ending in "/", "." or ".." keeps a trailing slash.
  let trailing = false;
  for (let segment of raw.replace(/\\/g, '/').split('/').slice(1)) {
    const parameters = segment.indexOf(';');
    if (parameters >= 0) segment = segment.slice(0, parameters);
    if (segment.includes('%')) {
      for (let i = segment.indexOf('%'); i >= 0; i = segment.indexOf('%', i + 1)) {
        if (!HEX.test(segment.slice(i + 1, i + 3))) return { ok: false, problem: 'the path contains a malformed percent-escape' };
      }
      if (/%(2f|5c)/i.test(segment)) return { ok: false, problem: 'the path contains an encoded "/" or "\\"' };
      if (/%00/.test(segment)) return { ok: false, problem: 'the path contains an encoded NUL' };
      segment = segment.replace(/%2e/gi, '.');
    }
    trailing = segment === '' || segment === '.' || segment === '..';
    if (segment === '..') segments.pop();
    else if (!trailing) segments.push(segment);
  }
  trailing &&= segments.length > 0;
  return { ok: true, path: `/${segments.join('/')}${trailing ? '/' : ''}`, query };
}
