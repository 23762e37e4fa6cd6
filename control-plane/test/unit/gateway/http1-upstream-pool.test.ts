import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect, createServer as createNetServer, type Server as NetServer, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { Http1Pool, type Http1PoolOptions, type UpstreamHandler, type UpstreamRequest } from '../../../src/gateway/http1/upstream-pool.js';

/** Records one exchange as the pool reports it. */
class Recorder implements UpstreamHandler {
  events: string[] = [];
  statusCode = 0;
  statusMessage = '';
  headers: string[] = [];
  chunks: Buffer[] = [];
  bytes = 0;
  error: (Error & { code?: string }) | undefined;
  abort: ((reason?: Error) => void) | undefined;
  resume: (() => void) | undefined;
  /** onData answers false (pause) while this is true. */
  refuseData = false;
  /** Keep the body's chunks (off for the multi-megabyte tests, which only count). */
  keep = true;
  onConnectHook: ((abort: (reason?: Error) => void) => void) | undefined;
  readonly done: Promise<void>;
  #settle!: () => void;

  constructor() {
    this.done = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  get body(): string {
    return Buffer.concat(this.chunks).toString();
  }

  header(name: string): string | undefined {
    for (let i = 0; i < this.headers.length; i += 2) if (this.headers[i]!.toLowerCase() === name) return this.headers[i + 1];
    return undefined;
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.events.push('connect');
    this.abort = abort;
    this.onConnectHook?.(abort);
  }

  onHeaders(statusCode: number, rawHeaders: string[], resume: () => void, statusMessage: string): boolean {
    this.events.push('headers');
    this.statusCode = statusCode;
    this.statusMessage = statusMessage;
    this.headers = rawHeaders;
    this.resume = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.events.at(-1) !== 'data') this.events.push('data');
    this.bytes += chunk.length;
    if (this.keep) this.chunks.push(Buffer.from(chunk));
    return !this.refuseData;
  }

  onComplete(): void {
    this.events.push('complete');
    this.#settle();
  }

  onError(error: Error & { code?: string }): void {
    this.events.push('error');
    this.error = error;
    this.#settle();
  }
}

const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Upstream {
  port: number;
  /** Server-side sockets, in the order they were accepted. */
  sockets: Socket[];
  /** Server-side sockets that have closed. */
  closed: Set<Socket>;
}

async function listen(server: Server | NetServer, sockets: Socket[], closed: Set<Socket>): Promise<number> {
  server.on('connection', (socket: Socket) => {
    sockets.push(socket);
    socket.once('close', () => closed.add(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as AddressInfo).port;
}

async function httpUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void, configure?: (server: Server) => void): Promise<Upstream & { server: Server }> {
  const server = createServer(handler);
  configure?.(server);
  const sockets: Socket[] = [];
  const closed = new Set<Socket>();
  return { server, port: await listen(server, sockets, closed), sockets, closed };
}

async function rawUpstream(onConnection: (socket: Socket) => void): Promise<Upstream> {
  const server = createNetServer(onConnection);
  const sockets: Socket[] = [];
  const closed = new Set<Socket>();
  return { port: await listen(server, sockets, closed), sockets, closed };
}

/** Calls `onRequest` with each request head (up to the blank line) a raw upstream receives on `socket`. */
function onRequestHeads(socket: Socket, onRequest: (head: string, index: number) => void): void {
  let buffered = '';
  let index = 0;
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    let end: number;
    while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
      const head = buffered.slice(0, end);
      buffered = buffered.slice(end + 4);
      onRequest(head, index++);
    }
  });
}

function makePool(port: number, options: Partial<Http1PoolOptions> = {}): Http1Pool {
  const pool = new Http1Pool({ address: '127.0.0.1', port, host: `127.0.0.1:${port}` }, { connections: 4, connectTimeoutMs: 2_000, keepAliveTimeoutMs: 10_000, ...options });
  cleanups.push(() => pool.destroy());
  return pool;
}

function get(path = '/', more: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { method: 'GET', path, headers: [], body: null, headersTimeout: 0, ...more };
}

async function send(pool: Http1Pool, request: UpstreamRequest, recorder = new Recorder()): Promise<Recorder> {
  pool.dispatch(request, recorder);
  await recorder.done;
  return recorder;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('Http1Pool responses', () => {
  it('reads a Content-Length response and sends the request head as given', async () => {
    let seen: IncomingMessage | undefined;
    const upstream = await httpUpstream((req, res) => {
      seen = req;
      res.setHeader('x-answer', '42');
      res.end('hello');
    });
    const pool = makePool(upstream.port);
    const r = await send(pool, get('/a/b?x=1&y=%20z', { headers: ['x-one', '1', 'X-Two', 'two'] }));
    expect(r.events).toEqual(['connect', 'headers', 'data', 'complete']);
    expect([r.statusCode, r.statusMessage, r.body]).toEqual([200, 'OK', 'hello']);
    expect(r.header('content-length')).toBe('5');
    expect(r.header('x-answer')).toBe('42');
    expect(seen!.url).toBe('/a/b?x=1&y=%20z');
    expect(seen!.rawHeaders.slice(0, 6)).toEqual(['host', `127.0.0.1:${upstream.port}`, 'x-one', '1', 'X-Two', 'two']);
  });

  it('reads a chunked response', async () => {
    const upstream = await httpUpstream((_req, res) => {
      res.write('ab');
      setTimeout(() => res.end('cd'), 20);
    });
    const r = await send(makePool(upstream.port), get());
    expect(r.header('transfer-encoding')).toBe('chunked');
    expect(r.body).toBe('abcd');
    expect(r.events.at(-1)).toBe('complete');
  });

  it('reads a close-delimited response to its end, and does not reuse its connection', async () => {
    const upstream = await rawUpstream((socket) =>
      onRequestHeads(socket, () => {
        socket.write('HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nhello ');
        setTimeout(() => socket.end('world'), 20);
      }),
    );
    const pool = makePool(upstream.port);
    const r = await send(pool, get());
    expect([r.statusCode, r.body, r.events.at(-1)]).toEqual([200, 'hello world', 'complete']);
    expect((await send(pool, get())).body).toBe('hello world');
    expect(upstream.sockets).toHaveLength(2);
  });

  it('expects no body in a response to HEAD, and keeps using the connection', async () => {
    const upstream = await httpUpstream((req, res) => {
      res.setHeader('content-length', '5');
      res.end(req.method === 'HEAD' ? undefined : 'hello');
    });
    const pool = makePool(upstream.port);
    const head = await send(pool, get('/', { method: 'HEAD', headersTimeout: 2_000 }));
    expect(head.events).toEqual(['connect', 'headers', 'complete']);
    expect(head.header('content-length')).toBe('5');
    const after = await send(pool, get('/', { headersTimeout: 2_000 }));
    expect([after.statusCode, after.body]).toEqual([200, 'hello']);
    expect(upstream.sockets).toHaveLength(1);
  });

  it('expects no body after 204 and 304, whatever their headers say', async () => {
    const upstream = await rawUpstream((socket) =>
      onRequestHeads(socket, (head) => {
        if (head.startsWith('GET /204')) socket.write('HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n');
        else if (head.startsWith('GET /304')) socket.write('HTTP/1.1 304 Not Modified\r\netag: "x"\r\ncontent-length: 7\r\n\r\n');
        else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }),
    );
    const pool = makePool(upstream.port, { connections: 1 });
    const noContent = await send(pool, get('/204', { headersTimeout: 2_000 }));
    expect([noContent.statusCode, noContent.events]).toEqual([204, ['connect', 'headers', 'complete']]);
    const notModified = await send(pool, get('/304', { headersTimeout: 2_000 }));
    expect([notModified.statusCode, notModified.events]).toEqual([304, ['connect', 'headers', 'complete']]);
    expect((await send(pool, get('/ok', { headersTimeout: 2_000 }))).body).toBe('ok');
    expect(upstream.sockets).toHaveLength(1);
  });

  it('skips 100 Continue and 103 Early Hints before the final response', async () => {
    const upstream = await rawUpstream((socket) =>
      onRequestHeads(socket, () => {
        socket.write('HTTP/1.1 100 Continue\r\n\r\n');
        setTimeout(() => socket.write('HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone'), 20);
      }),
    );
    const pool = makePool(upstream.port);
    const r = await send(pool, get());
    expect(r.events).toEqual(['connect', 'headers', 'data', 'complete']);
    expect([r.statusCode, r.statusMessage, r.body, r.header('link')]).toEqual([201, 'Created', 'done', undefined]);
    expect((await send(pool, get())).statusCode).toBe(201);
    expect(upstream.sockets).toHaveLength(1);
  });

  it('passes every header of a response with more than the parser hands over at once', async () => {
    const upstream = await httpUpstream((_req, res) => {
      for (let i = 0; i < 50; i++) res.setHeader(`x-h${i}`, String(i));
      res.end('ok');
    });
    const r = await send(makePool(upstream.port), get());
    for (let i = 0; i < 50; i++) expect(r.header(`x-h${i}`)).toBe(String(i));
    expect(r.body).toBe('ok');
  });
});

describe('Http1Pool connections', () => {
  it('reuses a keep-alive connection for sequential requests, the most recently freed first', async () => {
    const waiting: ServerResponse[] = [];
    const upstream = await httpUpstream((req, res) => {
      res.setHeader('x-port', String(req.socket.remotePort));
      if (req.url === '/hold') {
        waiting.push(res);
        return;
      }
      res.end('ok');
    });
    const pool = makePool(upstream.port, { connections: 2 });
    const first = await send(pool, get());
    const second = await send(pool, get());
    expect(upstream.sockets).toHaveLength(1);
    expect(second.header('x-port')).toBe(first.header('x-port'));

    // Two at once need two connections; the one freed last serves the next request.
    const a = new Recorder();
    const b = new Recorder();
    pool.dispatch(get('/hold'), a);
    pool.dispatch(get('/hold'), b);
    await until(() => waiting.length === 2);
    waiting[1]!.end('b');
    await sleep(20);
    waiting[0]!.end('a');
    await Promise.all([a.done, b.done]);
    expect(upstream.sockets).toHaveLength(2);
    const lastFreed = waiting[0]!.getHeader('x-port');
    expect((await send(pool, get())).header('x-port')).toBe(lastFreed);
  });

  it('opens at most `connections` sockets and queues the rest first in, first out', async () => {
    const arrived: string[] = [];
    let open = 0;
    let mostOpen = 0;
    const upstream = await httpUpstream((req, res) => {
      arrived.push(req.url!);
      open += 1;
      mostOpen = Math.max(mostOpen, open);
      setTimeout(() => {
        open -= 1;
        res.end(req.url);
      }, 30);
    });
    const pool = makePool(upstream.port, { connections: 2 });
    const recorders = Array.from({ length: 7 }, () => new Recorder());
    recorders.forEach((recorder, i) => pool.dispatch(get(`/${i}`), recorder));
    await Promise.all(recorders.map((recorder) => recorder.done));
    expect(recorders.map((recorder) => recorder.body)).toEqual(['/0', '/1', '/2', '/3', '/4', '/5', '/6']);
    expect(mostOpen).toBe(2);
    expect(upstream.sockets).toHaveLength(2);
    expect([...arrived.slice(0, 2)].sort()).toEqual(['/0', '/1']);
    expect(arrived.slice(2)).toEqual(['/2', '/3', '/4', '/5', '/6']);
  });

  it('drops idle connections the upstream closes, so the next request does not fail', async () => {
    const upstream = await rawUpstream((socket) =>
      onRequestHeads(socket, () => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        // The upstream's own idle timeout, with no Keep-Alive hint to warn the client.
        setTimeout(() => socket.end(), 30);
      }),
    );
    const pool = makePool(upstream.port, { connections: 1 });
    expect((await send(pool, get())).body).toBe('ok');
    await sleep(150);
    const second = await send(pool, get());
    expect([second.events.at(-1), second.body]).toEqual(['complete', 'ok']);
    expect(upstream.sockets).toHaveLength(2);
  });

  it('closes idle connections after keepAliveTimeoutMs, or sooner when the upstream says it will', async () => {
    const ended: number[] = [];
    const upstream = await rawUpstream((socket) => {
      socket.on('end', () => ended.push(Date.now()));
      onRequestHeads(socket, (head) => socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\n${head.includes('hint') ? 'Keep-Alive: timeout=1\r\n' : ''}\r\nok`));
    });
    const quick = makePool(upstream.port, { keepAliveTimeoutMs: 100 });
    let done = Date.now();
    await send(quick, get());
    await until(() => ended.length === 1);
    expect(ended[0]! - done).toBeGreaterThanOrEqual(90);
    expect(ended[0]! - done).toBeLessThan(1_000);

    const hinted = makePool(upstream.port, { keepAliveTimeoutMs: 60_000 });
    await send(hinted, get('/hint'));
    done = Date.now();
    await until(() => ended.length === 2);
    // `timeout=1`: the client gives up before the server's second, with a margin.
    expect(ended[1]! - done).toBeGreaterThanOrEqual(400);
    expect(ended[1]! - done).toBeLessThan(1_000);
  });

  it('does not reuse a connection after `Connection: close`', async () => {
    const upstream = await httpUpstream((_req, res) => {
      res.setHeader('connection', 'close');
      res.end('bye');
    });
    const pool = makePool(upstream.port);
    expect((await send(pool, get())).body).toBe('bye');
    expect((await send(pool, get())).body).toBe('bye');
    expect(upstream.sockets).toHaveLength(2);
  });

  it('does not reuse a connection that carried bytes after the response', async () => {
    const upstream = await rawUpstream((socket) =>
      onRequestHeads(socket, (head) => {
        const ok = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';
        // The start of a second response, in the same packet, or on its own once the first is read.
        if (head.startsWith('GET /same')) socket.write(`${ok}HTTP/1.1 200 OK\r\n`);
        else if (head.startsWith('GET /whole')) socket.write(`${ok}HTTP/1.1 204 No Content\r\n\r\n`);
        else if (head.startsWith('GET /later')) {
          socket.write(ok);
          setTimeout(() => socket.write('HTTP/1.1 200 OK\r\n'), 20);
        } else socket.write(ok);
      }),
    );
    const pool = makePool(upstream.port, { connections: 1 });
    expect((await send(pool, get('/same'))).body).toBe('ok');
    expect((await send(pool, get('/next'))).body).toBe('ok');
    expect(upstream.sockets).toHaveLength(2);
    expect((await send(pool, get('/later'))).body).toBe('ok');
    await sleep(60);
    expect((await send(pool, get('/next'))).body).toBe('ok');
    expect(upstream.sockets).toHaveLength(3);
    // A whole second response in the same packet.
    expect((await send(pool, get('/whole'))).body).toBe('ok');
    expect((await send(pool, get('/next'))).body).toBe('ok');
    expect(upstream.sockets).toHaveLength(4);
  });
});

describe('Http1Pool failures', () => {
  it('passes on ECONNREFUSED', async () => {
    const r = await send(makePool(await freePort()), get());
    expect(r.events).toEqual(['connect', 'error']);
    expect(r.error?.code).toBe('ECONNREFUSED');
  });

  it('gives up connecting after connectTimeoutMs (a listener whose accept queue is full)', async () => {
    // A child process listens with a backlog of 1 and blocks its event loop, so it never accepts: once
    // its accept queue is full, the kernel drops further SYNs and a connect hangs.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const s = require('net').createServer();
         s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () =>
           process.stdout.write(s.address().port + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanups.push(() => child.kill('SIGKILL'));
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    const port = Number(line.toString().trim());
    const fillers = Array.from({ length: 4 }, () => connect({ host: '127.0.0.1', port }).on('error', () => undefined));
    cleanups.push(() => fillers.forEach((filler) => filler.destroy()));
    await sleep(200);
    const started = Date.now();
    const r = await send(makePool(port, { connectTimeoutMs: 250 }), get());
    expect(r.error?.code).toBe('ERR_UPSTREAM_CONNECT_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(240);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('gives up waiting for the response headers after headersTimeout', async () => {
    const upstream = await rawUpstream((socket) => socket.resume());
    const started = Date.now();
    const r = await send(makePool(upstream.port), get('/', { headersTimeout: 150 }));
    expect(r.events).toEqual(['connect', 'error']);
    expect(r.error?.code).toBe('ERR_UPSTREAM_HEADERS_TIMEOUT');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await until(() => upstream.closed.size === 1);
  });

  it('lets a slow body run past headersTimeout once the headers came, on new and reused connections', async () => {
    const upstream = await httpUpstream((_req, res) => {
      res.write('a');
      setTimeout(() => res.end('b'), 250);
    });
    const pool = makePool(upstream.port, { connections: 1 });
    for (let i = 0; i < 2; i++) {
      const r = await send(pool, get('/', { headersTimeout: 100 }));
      expect([r.events.at(-1), r.body]).toEqual(['complete', 'ab']);
    }
    expect(upstream.sockets).toHaveLength(1);
  });

  it('reports ERR_UPSTREAM_CLOSED when a reused connection closes without a response byte', async () => {
    const upstream = await rawUpstream((socket) =>
      onRequestHeads(socket, (_head, index) => {
        if (index === 0) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        else socket.destroy();
      }),
    );
    const pool = makePool(upstream.port);
    expect((await send(pool, get())).body).toBe('ok');
    const r = await send(pool, get());
    expect(r.events).toEqual(['connect', 'error']);
    expect(r.error?.code).toBe('ERR_UPSTREAM_CLOSED');
    expect(upstream.sockets).toHaveLength(1);
  });

  it('reports ERR_UPSTREAM_RESPONSE_INCOMPLETE when the upstream closes mid-body', async () => {
    const upstream = await rawUpstream((socket) =>
      onRequestHeads(socket, (head) => {
        if (head.startsWith('GET /chunked')) socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
        else socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello');
        setTimeout(() => socket.end(), 20);
      }),
    );
    const pool = makePool(upstream.port);
    for (const path of ['/length', '/chunked']) {
      const r = await send(pool, get(path));
      expect(r.events).toEqual(['connect', 'headers', 'data', 'error']);
      expect(r.body).toBe('hello');
      expect(r.error?.code).toBe('ERR_UPSTREAM_RESPONSE_INCOMPLETE');
    }
  });

  it('reports ERR_UPSTREAM_BAD_RESPONSE for garbage and for a protocol switch', async () => {
    const upstream = await rawUpstream((socket) =>
      onRequestHeads(socket, (head) => {
        if (head.startsWith('GET /garbage')) socket.write('SSH-2.0-OpenSSH_9.6\r\n\r\n');
        else if (head.startsWith('GET /bad-length')) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab');
        else socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
      }),
    );
    const pool = makePool(upstream.port);
    for (const path of ['/garbage', '/bad-length', '/switch']) {
      const r = await send(pool, get(path));
      expect(r.events).toEqual(['connect', 'error']);
      expect(r.error?.code).toBe('ERR_UPSTREAM_BAD_RESPONSE');
    }
  });
});

describe('Http1Pool request bodies', () => {
  const echo = () =>
    httpUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        res.setHeader('x-length', String(req.headers['content-length']));
        res.setHeader('x-te', String(req.headers['transfer-encoding']));
        res.end(`${body.length} ${sha(body)}`);
      });
    });

  it('sends a body with a Content-Length raw, and one without in chunked encoding, byte for byte', async () => {
    const upstream = await echo();
    const pool = makePool(upstream.port, { connections: 1 });
    const data = randomBytes(300_000);
    const pieces = () => [data.subarray(0, 1), data.subarray(1, 70_000), data.subarray(70_000, 70_000), data.subarray(70_000)];

    const sized = await send(pool, { method: 'POST', path: '/', headers: ['content-length', String(data.length)], body: Readable.from(pieces()), headersTimeout: 0 });
    expect(sized.body).toBe(`${data.length} ${sha(data)}`);
    expect([sized.header('x-length'), sized.header('x-te')]).toEqual([String(data.length), 'undefined']);

    const chunked = await send(pool, { method: 'PUT', path: '/', headers: [], body: Readable.from(pieces()), headersTimeout: 0 });
    expect(chunked.body).toBe(`${data.length} ${sha(data)}`);
    expect([chunked.header('x-length'), chunked.header('x-te')]).toEqual(['undefined', 'chunked']);

    const empty = await send(pool, { method: 'POST', path: '/', headers: [], body: Readable.from([]), headersTimeout: 0 });
    expect(empty.body).toBe(`0 ${sha(Buffer.alloc(0))}`);
    expect(upstream.sockets).toHaveLength(1);
  });

  it('aborts the exchange when the body fails, or does not match its Content-Length', async () => {
    const upstream = await echo();
    const pool = makePool(upstream.port);
    const failing = new Readable({ read() {} });
    failing.push('part');
    setTimeout(() => failing.destroy(new Error('client went away')), 30);
    const failed = await send(pool, { method: 'POST', path: '/', headers: [], body: failing, headersTimeout: 0 });
    expect(failed.events).toEqual(['connect', 'error']);
    expect(failed.error?.code).toBe('ERR_UPSTREAM_ABORTED');
    expect((failed.error?.cause as Error).message).toBe('client went away');

    const closing = new Readable({ read() {} });
    closing.push('part');
    setTimeout(() => closing.destroy(), 30);
    const closed = await send(pool, { method: 'POST', path: '/', headers: [], body: closing, headersTimeout: 2_000 });
    expect(closed.error?.code).toBe('ERR_UPSTREAM_ABORTED');

    const short = await send(pool, { method: 'POST', path: '/', headers: ['content-length', '10'], body: Readable.from([Buffer.from('abc')]), headersTimeout: 0 });
    expect(short.error?.code).toBe('ERR_UPSTREAM_ABORTED');
    const long = await send(pool, { method: 'POST', path: '/', headers: ['content-length', '2'], body: Readable.from([Buffer.from('abc')]), headersTimeout: 0 });
    expect(long.error?.code).toBe('ERR_UPSTREAM_ABORTED');
  });

  it('holds the head of a request with a body until its first byte: a body that fails before it sends the upstream nothing', async () => {
    const received: Buffer[] = [];
    const upstream = await rawUpstream((socket) => socket.on('data', (chunk: Buffer) => received.push(chunk)));
    const pool = makePool(upstream.port);
    const failing = new Readable({ read() {} });
    setTimeout(() => failing.destroy(new Error('a malformed chunk from the client')), 50);
    const failed = await send(pool, { method: 'POST', path: '/held', headers: [], body: failing, headersTimeout: 0 });
    expect(failed.error?.code).toBe('ERR_UPSTREAM_ABORTED');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(Buffer.concat(received).length).toBe(0);

    // With a first chunk, the head and the chunk arrive (together, when the chunk is there at once).
    const late = new Readable({ read() {} });
    const exchange = send(pool, { method: 'POST', path: '/held', headers: ['content-length', '4'], body: late, headersTimeout: 0 });
    setTimeout(() => late.push('abcd'), 30);
    await until(() => Buffer.concat(received).toString('latin1').endsWith('\r\n\r\nabcd'));
    expect(Buffer.concat(received).toString('latin1')).toMatch(/^POST \/held HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\ncontent-length: 4\r\n\r\nabcd$/);
    late.push(null);
    upstream.sockets.at(-1)?.end('HTTP/1.1 204 No Content\r\n\r\n');
    expect((await exchange).statusCode).toBe(204);
  });

  it('does not reuse a connection whose response came before the whole request body was sent', async () => {
    const upstream = await rawUpstream((socket) => onRequestHeads(socket, () => socket.write('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n')));
    const pool = makePool(upstream.port, { connections: 1 });
    let sent = 0;
    const body = new Readable({
      read() {
        // A slow upload: a piece every 10 ms, far from done when the answer comes.
        setTimeout(() => this.push(sent++ < 100 ? Buffer.alloc(1_000) : null), 10);
      },
    });
    const early = await send(pool, { method: 'POST', path: '/upload', headers: ['content-length', '100000'], body, headersTimeout: 0 });
    expect([early.statusCode, early.events.at(-1)]).toEqual([401, 'complete']);
    expect(sent).toBeLessThan(100);
    const next = await send(pool, get('/next'));
    expect([next.statusCode, next.events.at(-1)]).toEqual([401, 'complete']);
    expect(upstream.sockets).toHaveLength(2);
  });

  it('stops reading a request body the upstream does not take, and sends it all once it does', async () => {
    const total = 64 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, 7);
    let generated = 0;
    const body = new Readable({
      read() {
        if (generated >= total) this.push(null);
        else {
          generated += piece.length;
          this.push(piece);
        }
      },
    });
    let received = 0;
    let reading: () => void = () => undefined;
    const upstream = await httpUpstream((req, res) => {
      req.pause();
      reading = () => {
        req.on('data', (chunk: Buffer) => (received += chunk.length));
        req.on('end', () => res.end(String(received)));
        req.resume();
      };
    });
    const recorder = new Recorder();
    makePool(upstream.port).dispatch({ method: 'POST', path: '/', headers: ['content-length', String(total)], body, headersTimeout: 0 }, recorder);
    await sleep(300);
    // Socket and kernel buffers hold a few megabytes at most: the rest was never read from the body.
    expect(generated).toBeGreaterThan(0);
    expect(generated).toBeLessThan(total / 2);
    const generatedWhilePaused = generated;
    await sleep(100);
    expect(generated).toBe(generatedWhilePaused);
    reading();
    await recorder.done;
    expect(recorder.body).toBe(String(total));
  });
});

describe('Http1Pool response backpressure', () => {
  it('pauses the socket while onData refuses, and resumes on resume()', async () => {
    const total = 64 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, 1);
    let written = 0;
    const upstream = await httpUpstream((_req, res) => {
      res.setHeader('content-length', String(total));
      const pump = () => {
        while (written < total) {
          written += piece.length;
          if (!res.write(piece)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const recorder = new Recorder();
    recorder.keep = false;
    recorder.refuseData = true;
    makePool(upstream.port).dispatch(get(), recorder);
    await until(() => recorder.bytes > 0);
    await sleep(300);
    // One socket read may still arrive after the refusal, no more.
    expect(recorder.bytes).toBeLessThanOrEqual(256 * 1024);
    expect(written).toBeLessThan(total / 2);
    recorder.refuseData = false;
    recorder.resume!();
    await recorder.done;
    expect(recorder.events.at(-1)).toBe('complete');
    expect(recorder.bytes).toBe(total);
  });
});

describe('Http1Pool abort', () => {
  it('aborts an exchange in flight: onError, and the connection is closed', async () => {
    const upstream = await rawUpstream((socket) => socket.resume());
    const pool = makePool(upstream.port);
    const r = new Recorder();
    pool.dispatch(get(), r);
    await until(() => upstream.sockets.length === 1);
    await sleep(20);
    r.abort!(new Error('client left'));
    expect(r.events).toEqual(['connect', 'error']);
    expect(r.error?.code).toBe('ERR_UPSTREAM_ABORTED');
    await until(() => upstream.closed.size === 1);
  });

  it('aborts during the body: no more data, no onComplete', async () => {
    const upstream = await httpUpstream((_req, res) => {
      res.write('first');
      setTimeout(() => res.end('second'), 100);
    });
    const r = new Recorder();
    makePool(upstream.port).dispatch(get(), r);
    await until(() => r.bytes > 0);
    r.abort!();
    await sleep(200);
    expect(r.events).toEqual(['connect', 'headers', 'data', 'error']);
    expect(r.body).toBe('first');
  });

  it('drops an aborted queued request before it is sent, and one aborted from onConnect', async () => {
    const paths: string[] = [];
    const upstream = await httpUpstream((req, res) => {
      paths.push(req.url!);
      setTimeout(() => res.end(req.url), 50);
    });
    const pool = makePool(upstream.port, { connections: 1 });
    const first = new Recorder();
    const queued = new Recorder();
    const last = new Recorder();
    pool.dispatch(get('/first'), first);
    pool.dispatch(get('/queued'), queued);
    pool.dispatch(get('/last'), last);
    queued.abort!();
    expect(queued.events).toEqual(['connect', 'error']);
    expect(queued.error?.code).toBe('ERR_UPSTREAM_ABORTED');

    const early = new Recorder();
    early.onConnectHook = (abort) => abort();
    pool.dispatch(get('/early'), early);
    expect(early.events).toEqual(['connect', 'error']);
    expect(early.error?.code).toBe('ERR_UPSTREAM_ABORTED');

    await Promise.all([first.done, last.done]);
    expect([first.body, last.body]).toEqual(['/first', '/last']);
    expect(paths).toEqual(['/first', '/last']);
  });

  it('ignores an abort after the exchange completed, and keeps the connection', async () => {
    const upstream = await httpUpstream((_req, res) => res.end('ok'));
    const pool = makePool(upstream.port);
    const r = await send(pool, get());
    r.abort!();
    expect(r.events).toEqual(['connect', 'headers', 'data', 'complete']);
    expect((await send(pool, get())).body).toBe('ok');
    expect(upstream.sockets).toHaveLength(1);
  });
});

describe('Http1Pool handler faults', () => {
  it('aborts the exchange when a handler callback throws, and does not reuse the connection', async () => {
    const upstream = await httpUpstream((_req, res) => res.end('ok'));
    const pool = makePool(upstream.port, { connections: 1 });
    const r = new Recorder();
    r.onData = () => {
      throw new Error('handler bug');
    };
    const faulty = await send(pool, get(), r);
    expect(faulty.events).toEqual(['connect', 'headers', 'error']);
    expect(faulty.error?.code).toBe('ERR_UPSTREAM_ABORTED');
    expect((faulty.error?.cause as Error).message).toBe('handler bug');
    expect((await send(pool, get())).body).toBe('ok');
    expect(upstream.sockets).toHaveLength(2);
  });
});

describe('Http1Pool close and destroy', () => {
  it('close() refuses new requests, lets dispatched ones finish, then closes every socket', async () => {
    const upstream = await httpUpstream((req, res) => setTimeout(() => res.end(req.url), 50));
    const pool = makePool(upstream.port, { connections: 1 });
    const idle = makePool(upstream.port);
    await send(idle, get('/warm'));
    const first = new Recorder();
    const queued = new Recorder();
    pool.dispatch(get('/first'), first);
    pool.dispatch(get('/queued'), queued);
    let closed = false;
    const closing = pool.close().then(() => (closed = true));
    const late = new Recorder();
    pool.dispatch(get('/late'), late);
    expect(late.events).toEqual(['connect', 'error']);
    expect(late.error?.code).toBe('ERR_UPSTREAM_CLOSED');
    await first.done;
    expect(closed).toBe(false);
    await closing;
    expect([first.body, queued.body]).toEqual(['/first', '/queued']);
    await until(() => upstream.closed.has(upstream.sockets[1]!));
    expect(upstream.sockets).toHaveLength(2);

    // An idle connection closes at once.
    expect(upstream.closed.has(upstream.sockets[0]!)).toBe(false);
    const started = Date.now();
    await idle.close();
    // Long before the server's own keep-alive timeout (5 s) would close it.
    expect(Date.now() - started).toBeLessThan(1_000);
    await until(() => upstream.closed.has(upstream.sockets[0]!), 1_000);
  });

  it('destroy() fails what is in flight and queued, and closes every socket', async () => {
    const upstream = await httpUpstream(() => undefined);
    const pool = makePool(upstream.port, { connections: 1 });
    const inFlight = new Recorder();
    const queued = new Recorder();
    pool.dispatch(get(), inFlight);
    pool.dispatch(get(), queued);
    await until(() => upstream.sockets.length === 1);
    await pool.destroy();
    expect([inFlight.error?.code, queued.error?.code]).toEqual(['ERR_UPSTREAM_CLOSED', 'ERR_UPSTREAM_CLOSED']);
    expect([inFlight.events, queued.events]).toEqual([
      ['connect', 'error'],
      ['connect', 'error'],
    ]);
  });
});

/** Wraps `Socket.prototype.emit` for the test: `spy` sees each event of every socket first. */
function spySocketEvents(spy: (socket: Socket, event: string | symbol) => void): void {
  const proto = Socket.prototype as { emit: (this: Socket, event: string | symbol, ...args: unknown[]) => boolean };
  const emit = proto.emit;
  proto.emit = function (this: Socket, event: string | symbol, ...args: unknown[]): boolean {
    spy(this, event);
    return emit.call(this, event, ...args);
  };
  cleanups.push(() => (proto.emit = emit));
}

/** A raw upstream answering each request with `response(path)`, written in pieces `cuts` apart, a few ms between them. */
async function slicedUpstream(response: (path: string) => string, cuts: number[]): Promise<Upstream> {
  return rawUpstream((socket) =>
    onRequestHeads(socket, (head) => {
      const text = Buffer.from(response(head.split(' ')[1]!), 'latin1');
      let at = 0;
      const pieces: Buffer[] = [];
      for (const cut of cuts) {
        if (cut <= at || cut >= text.length) continue;
        pieces.push(text.subarray(at, cut));
        at = cut;
      }
      pieces.push(text.subarray(at));
      const next = (): void => {
        const piece = pieces.shift();
        if (piece === undefined || socket.destroyed) return;
        socket.write(piece);
        setTimeout(next, 5);
      };
      next();
    }),
  );
}

describe('Http1Pool consume mode (the parser reads the socket handle directly)', () => {
  it("parses each read in the parser: the pool's sockets emit no 'data'", async () => {
    const upstream = await httpUpstream((req, res) => res.end(`hello ${req.url}`));
    let dataEvents = 0;
    spySocketEvents((socket, event) => {
      if (event === 'data' && socket.remotePort === upstream.port) dataEvents += 1;
    });
    const pool = makePool(upstream.port, { connections: 1 });
    for (let i = 0; i < 3; i++) expect((await send(pool, get(`/${i}`))).body).toBe(`hello /${i}`);
    expect(upstream.sockets).toHaveLength(1);
    expect(dataEvents).toBe(0);
  });

  it('reuses one connection and its parser for exchanges whose responses arrive cut anywhere', async () => {
    const body = 'chunked body '.repeat(20);
    const upstream = await slicedUpstream(
      (path) =>
        path === '/chunked'
          ? `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-path: ${path}\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
          : `HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\nx-path: ${path}\r\n\r\n${path}`,
      [3, 17, 30, 41, 60, 100, 250],
    );
    const pool = makePool(upstream.port, { connections: 1 });
    for (const path of ['/one', '/chunked', '/three-is-longer', '/chunked', '/5']) {
      const r = await send(pool, get(path));
      expect([r.statusCode, r.header('x-path'), r.body]).toEqual([200, path, path === '/chunked' ? body : path]);
      expect(r.events).toEqual(['connect', 'headers', 'data', 'complete']);
    }
    expect(upstream.sockets).toHaveLength(1);
  });

  it('aborts when onHeaders throws, ignores the rest of that read, and does not reuse the connection', async () => {
    const upstream = await httpUpstream((_req, res) => res.end('ok'));
    const pool = makePool(upstream.port, { connections: 1 });
    const r = new Recorder();
    r.onHeaders = () => {
      throw new Error('handler bug');
    };
    const faulty = await send(pool, get(), r);
    await sleep(20);
    expect(faulty.events).toEqual(['connect', 'error']);
    expect(faulty.error?.code).toBe('ERR_UPSTREAM_ABORTED');
    expect((faulty.error?.cause as Error).message).toBe('handler bug');
    expect((await send(pool, get())).body).toBe('ok');
    expect(upstream.sockets).toHaveLength(2);
  });

  it("leaves a handle already consumed alone and parses from 'data': reuse, responses in pieces, bytes after a response", async () => {
    const upstream = await slicedUpstream(
      (path) => (path === '/extra' ? 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n' : `HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\n\r\n${path}`),
      [5, 20],
    );
    let dataEvents = 0;
    spySocketEvents((socket, event) => {
      // Whoever connected marks the handle as node:http marks the one it consumes.
      if (event === 'connect') ((socket as unknown as { _handle: { _consumed?: boolean } })._handle)._consumed = true;
      if (event === 'data' && socket.remotePort === upstream.port) dataEvents += 1;
    });
    const pool = makePool(upstream.port, { connections: 1 });
    expect((await send(pool, get('/a'))).body).toBe('/a');
    expect((await send(pool, get('/bb'))).body).toBe('/bb');
    expect(upstream.sockets).toHaveLength(1);
    expect(dataEvents).toBeGreaterThanOrEqual(4);
    expect((await send(pool, get('/extra'))).body).toBe('ok');
    expect((await send(pool, get('/c'))).body).toBe('/c');
    expect(upstream.sockets).toHaveLength(2);
  });
});
