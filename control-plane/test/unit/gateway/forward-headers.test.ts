import { describe, expect, it } from 'vitest';
import { continueTrace, forwardRequestHeaders, forwardResponseHeaders } from '../../../src/gateway/forward-headers.js';

const context = { remoteAddress: '10.1.2.3', proto: 'http', prefix: '/catalog' };

function asMap(flat: string[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (let i = 0; i < flat.length; i += 2) map.set(flat[i]!.toLowerCase(), [...(map.get(flat[i]!.toLowerCase()) ?? []), flat[i + 1]!]);
  return map;
}

describe('forwardRequestHeaders', () => {
  it('drops hop-by-hop headers and the ones Connection names, and keeps end-to-end ones as sent', () => {
    const headers = asMap(
      forwardRequestHeaders(
        ['Host', 'gw.example', 'Connection', 'keep-alive, X-Secret', 'Keep-Alive', 'timeout=5', 'X-Secret', 's', 'TE', 'trailers', 'Upgrade', 'h2c',
          'Transfer-Encoding', 'chunked', 'Proxy-Authorization', 'Basic x', 'Accept', 'a/b', 'Set-Cookie-Like', '1', 'Accept', 'c/d'],
        context,
      ),
    );
    for (const name of ['connection', 'keep-alive', 'x-secret', 'te', 'upgrade', 'transfer-encoding', 'proxy-authorization', 'host']) expect(headers.has(name), name).toBe(false);
    expect(headers.get('accept')).toEqual(['a/b', 'c/d']);
    expect(headers.get('set-cookie-like')).toEqual(['1']);
  });

  it('sets the forwarding headers, extending the client\'s X-Forwarded-For and Forwarded', () => {
    const headers = asMap(forwardRequestHeaders(['Host', 'gw.example:8080', 'X-Forwarded-For', '192.0.2.1', 'Forwarded', 'for=192.0.2.1', 'X-Forwarded-Host', 'evil', 'X-Forwarded-Prefix', '/admin'], context));
    expect(headers.get('x-forwarded-for')).toEqual(['192.0.2.1, 10.1.2.3']);
    expect(headers.get('forwarded')).toEqual(['for=192.0.2.1, for=10.1.2.3;proto=http;host="gw.example:8080"']);
    expect(headers.get('x-forwarded-proto')).toEqual(['http']);
    expect(headers.get('x-forwarded-host')).toEqual(['gw.example:8080']);
    expect(headers.get('x-forwarded-prefix')).toEqual(['/catalog']);
  });

  it('never lets a client strip the gateway\'s own headers by naming them in Connection', () => {
    const headers = asMap(
      forwardRequestHeaders(['Host', 'h', 'Connection', 'X-Forwarded-For, Forwarded, X-Forwarded-Proto, traceparent', 'X-Forwarded-For', '6.6.6.6'], { ...context, remoteAddress: '::1' }),
    );
    expect(headers.get('x-forwarded-for')).toEqual(['::1']);
    expect(headers.get('forwarded')).toEqual(['for="[::1]";proto=http;host="h"']);
    expect(headers.get('x-forwarded-proto')).toEqual(['http']);
    expect(headers.get('traceparent')?.[0]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('matches header names in any case, and drops what a middleware took, even under a forwarding header\'s name', () => {
    const headers = asMap(
      forwardRequestHeaders(
        ['HOST', 'h', 'X-FORWARDED-FOR', '192.0.2.9', 'TRACEPARENT', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-api-KEY', 'secret', 'X-Forwarded-Host', 'evil', 'Accept', '*/*'],
        { ...context, drop: ['x-api-key'] },
      ),
    );
    expect(headers.has('x-api-key')).toBe(false);
    expect(headers.get('x-forwarded-for')).toEqual(['192.0.2.9, 10.1.2.3']);
    expect(headers.get('x-forwarded-host')).toEqual(['h']);
    expect(headers.get('traceparent')?.[0]).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(headers.get('accept')).toEqual(['*/*']);
    const dropped = asMap(forwardRequestHeaders(['Host', 'h', 'X-Forwarded-For', '6.6.6.6'], { ...context, drop: ['x-forwarded-for'] }));
    expect(dropped.get('x-forwarded-for')).toEqual(['10.1.2.3']);
  });
});

describe('forwardResponseHeaders', () => {
  it('drops hop-by-hop headers and the ones the response\'s Connection names', () => {
    const raw = ['Content-Type', 'text/plain', 'Connection', 'keep-alive, X-Hop', 'Keep-Alive', 'timeout=5', 'X-Hop', '1', 'Transfer-Encoding', 'chunked', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'];
    expect(forwardResponseHeaders(raw)).toEqual(['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']);
  });

  it.each(['keep-alive', 'Keep-Alive', 'close', 'CLOSE'])('drops Connection: %s with the other hop-by-hop headers, in any case', (value) => {
    const raw = ['Server', 'nginx', 'CONNECTION', value, 'keep-alive', 'timeout=5', 'Content-Length', '3', 'Upgrade', 'h2c', 'PROXY-AUTHENTICATE', 'Basic', 'X-Keep', '1'];
    expect(forwardResponseHeaders(raw)).toEqual(['Server', 'nginx', 'Content-Length', '3', 'X-Keep', '1']);
  });
});

describe('continueTrace', () => {
  it('gives each new trace its own ids, across refills of its random pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const next = continueTrace(undefined);
      expect(next).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      seen.add(next.slice(3, 35));
      seen.add(next.slice(36, 52));
    }
    expect(seen.size).toBe(4_000);
  });

  it('keeps the trace id and flags of a valid traceparent with a new parent id', () => {
    const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
    const next = continueTrace(incoming);
    expect(next).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-00$/);
    expect(next).not.toBe(incoming);
    expect(continueTrace(incoming)).not.toBe(next);
  });

  it.each([undefined, 'garbage', '00-00000000000000000000000000000000-b7ad6b7169203331-01', '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01'])('starts a new sampled trace for %j', (incoming) => {
    const next = continueTrace(incoming);
    expect(next).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(next.slice(3, 35)).not.toBe('0'.repeat(32));
  });
});
