import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { GatewayMetrics } from '../../../src/gateway/gateway-metrics.js';

/** The exposition's sample lines, `name{labels} value`, by name and labels. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('GatewayMetrics', () => {
  it('counts requests and their durations by service, route, method and code, as Prometheus reads them', async () => {
    const registry = new Registry();
    const metrics = new GatewayMetrics(registry);
    metrics.observe('inventory', 'discovery', 'GET', 200, 0.0004);
    metrics.observe('inventory', 'discovery', 'GET', 200, 0.003);
    metrics.observe('inventory', 'discovery', 'GET', 200, 12);
    metrics.observe('inventory', 'discovery', 'POST', 503, 0.001);

    const text = await registry.metrics();
    expect(text).toContain('# TYPE portico_gateway_requests_total counter');
    expect(text).toContain('# TYPE portico_gateway_request_duration_seconds histogram');
    const got = samples(text);
    const get = 'service="inventory",route="discovery",method="GET",code="200"';
    const post = 'service="inventory",route="discovery",method="POST",code="503"';
    expect(got.get(`portico_gateway_requests_total{${get}}`)).toBe(3);
    expect(got.get(`portico_gateway_requests_total{${post}}`)).toBe(1);
    // Buckets are cumulative; an observation on a bound counts in that bucket (le: less or equal).
    expect(got.get(`portico_gateway_request_duration_seconds_bucket{le="0.0005",${get}}`)).toBe(1);
    expect(got.get(`portico_gateway_request_duration_seconds_bucket{le="0.0025",${get}}`)).toBe(1);
    expect(got.get(`portico_gateway_request_duration_seconds_bucket{le="0.005",${get}}`)).toBe(2);
    expect(got.get(`portico_gateway_request_duration_seconds_bucket{le="10",${get}}`)).toBe(2);
    expect(got.get(`portico_gateway_request_duration_seconds_bucket{le="+Inf",${get}}`)).toBe(3);
    expect(got.get(`portico_gateway_request_duration_seconds_bucket{le="0.001",${post}}`)).toBe(1);
    expect(got.get(`portico_gateway_request_duration_seconds_bucket{le="0.0005",${post}}`)).toBe(0);
    expect(got.get(`portico_gateway_request_duration_seconds_sum{${get}}`)).toBeCloseTo(12.0034, 6);
    expect(got.get(`portico_gateway_request_duration_seconds_count{${get}}`)).toBe(3);

    // The JSON form (what tests and the admin API read) agrees.
    const json = await registry.getMetricsAsJSON();
    const requests = json.find((metric) => metric.name === 'portico_gateway_requests_total');
    expect(requests?.values).toContainEqual({ labels: { service: 'inventory', route: 'discovery', method: 'GET', code: '200' }, value: 3 });
  });

  it('reports the requests in flight per service when scraped, and forgets everything on reset', async () => {
    const registry = new Registry();
    const metrics = new GatewayMetrics(registry);
    metrics.inflightOf('catalog').value += 2;
    metrics.inflightOf('catalog').value -= 1;
    metrics.inflightOf('user').value += 1;
    metrics.observe('user', 'discovery', 'GET', 200, 0.01);
    let got = samples(await registry.metrics());
    expect(got.get('portico_gateway_inflight_requests{service="catalog"}')).toBe(1);
    expect(got.get('portico_gateway_inflight_requests{service="user"}')).toBe(1);

    registry.resetMetrics();
    got = samples(await registry.metrics());
    expect([...got.keys()].some((key) => key.startsWith('portico_gateway_requests_total'))).toBe(false);
    expect([...got.keys()].some((key) => key.startsWith('portico_gateway_request_duration_seconds'))).toBe(false);
    // Counting starts afresh after a reset.
    metrics.observe('user', 'discovery', 'GET', 200, 0.01);
    got = samples(await registry.metrics());
    expect(got.get('portico_gateway_requests_total{service="user",route="discovery",method="GET",code="200"}')).toBe(1);
  });

  it('keeps a series per service, route, method and code, whichever of them repeat', async () => {
    const registry = new Registry();
    const metrics = new GatewayMetrics(registry);
    const observations: Array<[string, string, string, number]> = [
      ['catalog', 'discovery', 'GET', 200],
      ['catalog', 'route:a', 'GET', 200],
      ['user', 'discovery', 'GET', 200],
      ['catalog', 'discovery', 'HEAD', 200],
      ['catalog', 'discovery', 'GET', 404],
      // The method as an HTTP/2 request gives it: a string made per request, equal but not the same.
      ['catalog', 'discovery', ['G', 'E', 'T'].join(''), 200],
    ];
    for (const [service, route, method, code] of observations) metrics.observe(service, route, method, code, 0.001);
    const got = samples(await registry.metrics());
    const count = (service: string, route: string, method: string, code: number) =>
      got.get(`portico_gateway_requests_total{service="${service}",route="${route}",method="${method}",code="${code}"}`);
    expect(count('catalog', 'discovery', 'GET', 200)).toBe(2);
    expect(count('catalog', 'route:a', 'GET', 200)).toBe(1);
    expect(count('user', 'discovery', 'GET', 200)).toBe(1);
    expect(count('catalog', 'discovery', 'HEAD', 200)).toBe(1);
    expect(count('catalog', 'discovery', 'GET', 404)).toBe(1);
    expect([...got.keys()].filter((key) => key.startsWith('portico_gateway_requests_total{')).length).toBe(5);
  });
});
