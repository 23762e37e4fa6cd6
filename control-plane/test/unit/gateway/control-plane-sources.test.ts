import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type InstanceView } from '../../../src/api/schemas/registry.js';
import { PorticoError } from '../../../src/errors.js';
import { ControlPlaneRegistrySource } from '../../../src/gateway/providers/control-plane-registry-source.js';
import { ControlPlaneRouteSource, routeFromView } from '../../../src/gateway/providers/control-plane-route-source.js';
import { type RegistryEvent } from '../../../src/registry/registry-backend.js';
import { instanceHealth } from '../../../src/registry/registry.js';

/**
 * The gateway's control-plane sources against a fake control plane: a node:http server answering the
 * few routes they read, whose event streams the test writes to, drops and replays at will.
 */

const TOKEN = 'good-token';
const reconnect = { initialMs: 20, maxMs: 100 };

function view(id: string, service: string, options: { status?: 'passing' | 'critical'; port?: number; modifyIndex?: number } = {}): InstanceView {
  return {
    id,
    service,
    address: '127.0.0.1',
    port: options.port ?? 4000,
    tags: [],
    meta: {},
    weights: { passing: 1, warning: 1 },
    health: options.status ?? 'passing',
    maintenance: null,
    registeredAt: '2026-01-01T00:00:00.000Z',
    registeredBy: null,
    createIndex: 1,
    modifyIndex: options.modifyIndex ?? 1,
    checks: [
      {
        id: `service:${id}`,
        name: 'ttl',
        kind: 'ttl',
        status: options.status ?? 'passing',
        output: '',
        statusSince: '2026-01-01T00:00:00.000Z',
        lastResultAt: null,
        ttl: '10m',
        ttlExpiresAt: null,
        successBeforePassing: 0,
        failuresBeforeCritical: 0,
      },
    ],
  };
}

interface Stream {
  res: ServerResponse;
  lastEventId: string | undefined;
}

class FakeControlPlane {
  readonly services = new Map<string, { index: number; instances: InstanceView[] }>();
  index = 1;
  routes: unknown[] = [];
  readonly reads: string[] = [];
  readonly streams: Stream[] = [];
  /** While set, `GET /services/:name` waits for it. */
  gate: Promise<void> | undefined;
  #server: Server;
  #port = 0;

  constructor() {
    this.#server = this.#make();
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(port, '127.0.0.1', resolve));
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  /** Stop answering: every connection dropped (as when the process dies). */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
    this.streams.length = 0;
    this.#server = this.#make();
  }

  /** Write one SSE message to every open stream of `path`. */
  send(path: string, message: { id?: string; event: string; data: unknown }): void {
    for (const stream of this.streams) {
      if ((stream.res as ServerResponse & { path?: string }).path !== path) continue;
      stream.res.write(`${message.id === undefined ? '' : `id: ${message.id}\n`}event: ${message.event}\ndata: ${JSON.stringify(message.data)}\n\n`);
    }
  }

  /** End every open stream (the client reconnects). */
  endStreams(): void {
    for (const stream of this.streams.splice(0)) stream.res.end();
  }

  #make(): Server {
    return createServer((req, res) => void this.#handle(req, res));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').replace(/^\/api\/v1\//, '');
    this.reads.push(path);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(401, { code: 'PORTICO_ERR_AUTH_INVALID_TOKEN', message: 'no', statusCode: 401 });
    if (path === 'events' || path === 'routes/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': connected\n\n');
      Object.assign(res, { path });
      const header = req.headers['last-event-id'];
      this.streams.push({ res, lastEventId: typeof header === 'string' ? header : undefined });
      return;
    }
    if (path === 'services') return json(200, { services: [...this.services.keys()].map((name) => ({ name })), index: this.index });
    if (path.startsWith('services/')) {
      await this.gate;
      const name = decodeURIComponent(path.slice('services/'.length));
      const service = this.services.get(name);
      if (service === undefined || service.instances.length === 0) return json(404, { code: 'PORTICO_ERR_REGISTRY_SERVICE_NOT_FOUND', message: 'none', statusCode: 404 });
      return json(200, { name, instances: service.instances, index: service.index });
    }
    if (path === 'routes') return json(200, { routes: this.routes });
    return json(404, { code: 'PORTICO_ERR_REQUEST_NOT_FOUND', message: 'no route', statusCode: 404 });
  }
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function fake(): Promise<FakeControlPlane> {
  const server = new FakeControlPlane();
  await server.listen();
  closers.push(() => server.stop());
  return server;
}

function registrySource(server: FakeControlPlane, token = TOKEN): ControlPlaneRegistrySource {
  const source = new ControlPlaneRegistrySource({ controlPlane: server.url, token, reconnect, requestTimeoutMs: 2_000 });
  closers.push(() => source.close());
  return source;
}

const ids = async (source: ControlPlaneRegistrySource, service: string) => (await source.instances({ service })).value.map((instance) => instance.id);

describe('ControlPlaneRegistrySource', () => {
  it('reads every service once subscribed, then follows the events', async () => {
    const server = await fake();
    server.services.set('alpha', { index: 2, instances: [view('a1', 'alpha', { port: 4001 })] });
    server.index = 2;
    const source = registrySource(server);
    const events: RegistryEvent[] = [];
    source.subscribe((event) => events.push(event));
    await source.start();

    expect(server.reads.slice(0, 3)).toEqual(['events', 'services', 'services/alpha']);
    expect(source.status()).toEqual({ loaded: true, live: true });
    expect((await source.services()).value).toEqual([{ name: 'alpha', tags: [], instances: { passing: 1, warning: 0, critical: 0 } }]);
    const [a1] = (await source.instances({ service: 'alpha' })).value;
    expect(a1).toMatchObject({ id: 'a1', port: 4001, weights: { passing: 1, warning: 1 } });
    expect(a1?.checks[0]).toMatchObject({ kind: 'ttl', ttlMs: 600_000, status: 'passing' });
    expect(instanceHealth(a1!)).toBe('passing');
    expect(events.map((event) => [event.type, event.instanceId])).toEqual([['instance.registered', 'a1']]);

    server.send('events', { id: '3', event: 'instance.registered', data: { index: 3, at: new Date().toISOString(), service: 'alpha', instanceId: 'a2', health: 'passing', instance: view('a2', 'alpha') } });
    server.send('events', { id: '4', event: 'instance.health_changed', data: { index: 4, at: new Date().toISOString(), service: 'alpha', instanceId: 'a1', health: 'critical', instance: view('a1', 'alpha', { status: 'critical' }) } });
    await until(async () => (await source.instances({ service: 'alpha', passingOnly: true })).value.length === 1 && (await ids(source, 'alpha')).length === 2, 'both events');
    expect((await source.instances({ service: 'alpha', passingOnly: true })).value.map((instance) => instance.id)).toEqual(['a2']);
    server.send('events', { id: '5', event: 'instance.deregistered', data: { index: 5, at: new Date().toISOString(), service: 'alpha', instanceId: 'a2', reason: 'api' } });
    await until(async () => (await ids(source, 'alpha')).length === 1, 'the deregistration');
    expect(events.map((event) => event.type)).toEqual(['instance.registered', 'instance.registered', 'instance.updated', 'instance.deregistered']);
  });

  it('applies the events that arrive during its read after it, except those the read already shows', async () => {
    const server = await fake();
    server.services.set('alpha', { index: 2, instances: [view('a1', 'alpha', { port: 1111 })] });
    let open!: () => void;
    server.gate = new Promise<void>((resolve) => (open = resolve));
    const source = registrySource(server);
    const started = source.start();
    await until(() => server.reads.includes('services/alpha'), 'the read of alpha');

    // The read (answered after these) will show index 3 with port 2222: event 3 is in it already, event 4 is not.
    server.send('events', { id: '3', event: 'instance.updated', data: { index: 3, at: new Date().toISOString(), service: 'alpha', instanceId: 'a1', health: 'passing', instance: view('a1', 'alpha', { port: 3333 }) } });
    server.send('events', { id: '4', event: 'instance.registered', data: { index: 4, at: new Date().toISOString(), service: 'alpha', instanceId: 'a2', health: 'passing', instance: view('a2', 'alpha') } });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(source.status().loaded).toBe(false);
    server.services.set('alpha', { index: 3, instances: [view('a1', 'alpha', { port: 2222 })] });
    open();
    await started;
    const instances = (await source.instances({ service: 'alpha' })).value;
    expect(instances.map((instance) => [instance.id, instance.port])).toEqual([
      ['a1', 2222],
      ['a2', 4000],
    ]);
  });

  it('resumes with Last-Event-ID, and a reset replaces everything it held', async () => {
    const server = await fake();
    server.services.set('alpha', { index: 2, instances: [view('a1', 'alpha')] });
    const source = registrySource(server);
    await source.start();
    server.send('events', { id: '7', event: 'instance.registered', data: { index: 7, at: new Date().toISOString(), service: 'alpha', instanceId: 'a2', health: 'passing', instance: view('a2', 'alpha') } });
    await until(async () => (await ids(source, 'alpha')).length === 2, 'a2');
    const events: RegistryEvent[] = [];
    source.subscribe((event) => events.push(event));

    server.endStreams();
    await until(() => server.streams.length === 1, 'the reconnection');
    expect(server.streams[0]?.lastEventId).toBe('7');
    server.send('events', { id: '20', event: 'reset', data: { index: 20, services: [{ name: 'beta', instances: [view('b1', 'beta')] }] } });
    await until(async () => (await ids(source, 'beta')).length === 1, 'the reset');
    expect(await ids(source, 'alpha')).toEqual([]);
    expect((await source.services()).value.map((service) => service.name)).toEqual(['beta']);
    expect(events.map((event) => [event.type, event.instanceId]).sort()).toEqual([
      ['instance.deregistered', 'a1'],
      ['instance.deregistered', 'a2'],
      ['instance.registered', 'b1'],
    ]);
    // Resumed, the source read nothing again: the stream brought it all.
    expect(server.reads.filter((read) => read === 'services')).toHaveLength(1);
    // Events older than the reset's index change nothing.
    server.send('events', { id: '15', event: 'instance.registered', data: { index: 15, at: new Date().toISOString(), service: 'beta', instanceId: 'b0', health: 'passing', instance: view('b0', 'beta') } });
    server.send('events', { id: '21', event: 'instance.registered', data: { index: 21, at: new Date().toISOString(), service: 'beta', instanceId: 'b2', health: 'passing', instance: view('b2', 'beta') } });
    await until(async () => (await ids(source, 'beta')).length === 2, 'b2');
    expect(await ids(source, 'beta')).toEqual(['b1', 'b2']);
  });

  it('reads everything again after a fresh subscription (nothing to resume from)', async () => {
    const server = await fake();
    server.services.set('alpha', { index: 2, instances: [view('a1', 'alpha')] });
    const source = registrySource(server);
    await source.start();
    server.services.set('alpha', { index: 3, instances: [view('a9', 'alpha')] });
    server.endStreams();
    await until(async () => (await ids(source, 'alpha'))[0] === 'a9', 'the second read');
    expect(server.streams[0]?.lastEventId).toBeUndefined();
    expect(server.reads.filter((read) => read === 'services')).toHaveLength(2);
  });

  it('keeps the last known state while the control plane is away, and follows it again when it is back', async () => {
    const server = await fake();
    server.services.set('alpha', { index: 2, instances: [view('a1', 'alpha')] });
    const source = registrySource(server);
    await source.start();
    server.send('events', { id: '3', event: 'instance.registered', data: { index: 3, at: new Date().toISOString(), service: 'alpha', instanceId: 'a2', health: 'passing', instance: view('a2', 'alpha') } });
    await until(async () => (await ids(source, 'alpha')).length === 2, 'a2');
    const port = Number(new URL(server.url).port);

    await server.stop();
    await until(() => !source.status().live, 'the outage');
    expect(source.status()).toMatchObject({ loaded: true, live: false, reason: expect.stringMatching(/registry's event stream/) as unknown });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await ids(source, 'alpha')).toEqual(['a1', 'a2']);

    await server.listen(port);
    await until(() => server.streams.length === 1, 'the reconnection', 5_000);
    expect(server.streams[0]?.lastEventId).toBe('3');
    await until(() => source.status().live, 'live again');
    server.send('events', { id: '4', event: 'instance.deregistered', data: { index: 4, at: new Date().toISOString(), service: 'alpha', instanceId: 'a1', reason: 'api' } });
    await until(async () => (await ids(source, 'alpha')).length === 1, 'the change after the outage');
  });

  it('fails its start with a configuration error naming PORTICO_GATEWAY_TOKEN when the token is refused', async () => {
    const server = await fake();
    const source = registrySource(server, 'wrong');
    const error = await source.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PorticoError);
    expect(error).toMatchObject({ code: 'PORTICO_ERR_CONFIG_INVALID', message: expect.stringMatching(/^PORTICO_GATEWAY_TOKEN: .*401 PORTICO_ERR_AUTH_INVALID_TOKEN/) as unknown });
    expect(source.status()).toMatchObject({ loaded: false, live: false });
  });
});

describe('ControlPlaneRouteSource', () => {
  const routeView = (name: string, extra: Record<string, unknown> = {}) => ({
    id: `id-${name}`,
    name,
    pathPrefix: `/${name}`,
    service: 'catalog',
    host: null,
    methods: null,
    stripPrefix: false,
    timeout: null,
    balancer: 'round_robin',
    middlewares: {},
    resilience: {},
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-02T00:00:00.000Z',
    ...extra,
  });

  it('turns a route as the API shows it back into the gateway\'s form', () => {
    const route = routeFromView(
      routeView('shop', {
        timeout: '1500ms',
        middlewares: { aggregate: { parts: [{ name: 'a', service: 'catalog', path: '/items' }], timeout: '2s' }, apiKey: { keys: [{ name: 'web', hash: 'f'.repeat(64) }] } },
        resilience: { retries: 1, circuitBreaker: { failureRatio: 0.5, openFor: '1m' } },
      }),
    );
    expect(route).toMatchObject({
      id: 'id-shop',
      timeoutMs: 1500,
      middlewares: { aggregate: { parts: [{ name: 'a' }], timeoutMs: 2000 }, apiKey: { keys: [{ name: 'web', hash: 'f'.repeat(64) }] } },
      resilience: { retries: 1, circuitBreaker: { failureRatio: 0.5, openMs: 60_000 } },
    });
    expect(route).not.toHaveProperty('timeout');
    expect(route.createdAt).toEqual(new Date('2026-01-01T00:00:00.000Z'));
    expect(route.updatedAt.getTime()).toBe(Date.parse('2026-01-02T00:00:00.000Z'));
    const { middlewares, resilience, ...bare } = routeView('bare');
    void middlewares;
    void resilience;
    expect(routeFromView(bare)).toMatchObject({ timeoutMs: null, middlewares: {}, resilience: {} });
    expect(() => routeFromView({ name: 'x' })).toThrow(/id/);
    expect(() => routeFromView(routeView('bad', { timeout: 'soon' }))).toThrow();
  });

  it('reads the routes once subscribed and after each change, and tells subscribers only when they differ', async () => {
    const server = await fake();
    server.routes = [routeView('one')];
    const source = new ControlPlaneRouteSource({ controlPlane: server.url, token: TOKEN, reconnect });
    closers.push(() => source.close());
    let told = 0;
    source.subscribe(() => told++);
    await source.start();
    expect(server.reads.slice(0, 2)).toEqual(['routes/events', 'routes']);
    expect((await source.list()).map((route) => route.name)).toEqual(['one']);
    expect(told).toBe(1);

    server.routes = [routeView('one'), routeView('two', { timeout: '2s' })];
    server.send('routes/events', { event: 'route.changed', data: { action: 'created', id: 'id-two', name: 'two', at: new Date().toISOString() } });
    await until(async () => (await source.list()).length === 2, 'the new route');
    expect((await source.list())[1]?.timeoutMs).toBe(2000);
    expect(told).toBe(2);

    // A change that changes nothing (as read) tells no one; a burst costs far fewer reads than changes.
    const before = server.reads.filter((read) => read === 'routes').length;
    for (let i = 0; i < 20; i++) server.send('routes/events', { event: 'route.changed', data: { action: 'updated', id: 'id-two', name: 'two', at: new Date().toISOString() } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(told).toBe(2);
    expect(server.reads.filter((read) => read === 'routes').length - before).toBeLessThan(20);

    // Away and back: read again, as changes may have been missed meanwhile.
    server.routes = [routeView('three')];
    server.endStreams();
    await until(async () => (await source.list()).map((route) => route.name).join() === 'three', 'the read after the reconnection');
    expect(source.status()).toEqual({ loaded: true, live: true });
  });

  it('keeps the last routes while the control plane is away', async () => {
    const server = await fake();
    server.routes = [routeView('kept')];
    const source = new ControlPlaneRouteSource({ controlPlane: server.url, token: TOKEN, reconnect });
    closers.push(() => source.close());
    await source.start();
    await server.stop();
    await until(() => !source.status().live, 'the outage');
    expect(source.status().loaded).toBe(true);
    expect((await source.list()).map((route) => route.name)).toEqual(['kept']);
  });
});
