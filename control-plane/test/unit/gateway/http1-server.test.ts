import { createHash } from 'node:crypto';
import { createServer as createNodeServer, request as nodeRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, Server as NetServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createHttp1Server,
  type Http1Request,
  type Http1Response,
  type Http1Server,
  type Http1ServerHandlers,
  type Http1ServerOptions,
} from '../../../src/gateway/http1/http1-server.js';

// ---------------------------------------------------------------------------------------------------
// Harness: a real server on 127.0.0.1, raw clients that read responses off the wire.

interface Started {
  server: Http1Server;
  port: number;
  /** Requests the handler was given, in order. */
  seen: Http1Request[];
}

const servers: Http1Server[] = [];
const sockets: Socket[] = [];
const agents: Agent[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const agent of agents.splice(0)) await agent.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(resolve))));
});

type RequestHandler = (req: Http1Request, res: Http1Response) => void;

const hello: RequestHandler = (req, res) => {
  res.writeHead(200, ['content-type', 'text/plain']);
  res.end(`hello ${req.method} ${req.url}`);
};

async function start(request: RequestHandler = hello, options: Partial<Http1ServerOptions> = {}, upgrade?: Http1ServerHandlers['upgrade']): Promise<Started> {
  const seen: Http1Request[] = [];
  const server = createHttp1Server(
    {
      request: (req, res) => {
        seen.push(req);
        request(req, res);
      },
      upgrade: upgrade ?? ((_req, socket) => socket.destroy()),
    },
    { keepAliveTimeoutMs: 65_000, headersTimeoutMs: 60_000, ...options },
  );
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: server.address().port, seen };
}

interface Parsed {
  status: number;
  /** Lower-case names; repeats joined with ', '. */
  headers: Record<string, string>;
  head: string;
  body: Buffer;
}

/** One response off the front of `data`, or undefined if it is not all there yet. */
function parseResponse(data: Buffer, ended: boolean, headRequest: boolean): { response: Parsed; used: number } | undefined {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const head = data.subarray(0, headEnd).toString('latin1');
  const [statusLine, ...lines] = head.split('\r\n');
  const status = Number((statusLine as string).split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const start = headEnd + 4;
  const done = (body: Buffer, used: number) => ({ response: { status, headers, head, body }, used });
  if (headRequest || status < 200 || status === 204 || status === 304) return done(Buffer.alloc(0), start);
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    return data.length >= start + length ? done(data.subarray(start, start + length), start + length) : undefined;
  }
  if (headers['transfer-encoding'] !== undefined) {
    const parts: Buffer[] = [];
    let at = start;
    for (;;) {
      const lineEnd = data.indexOf('\r\n', at);
      if (lineEnd < 0) return undefined;
      const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
      if (size === 0) return data.length >= lineEnd + 4 ? done(Buffer.concat(parts), lineEnd + 4) : undefined;
      if (data.length < lineEnd + 2 + size + 2) return undefined;
      parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  return ended ? done(data.subarray(start), data.length) : undefined;
}

/** A client on a raw socket: writes bytes as given, reads responses as they arrive. */
class RawClient {
  data = Buffer.alloc(0);
  ended = false;
  readonly closed: Promise<void>;
  #wake: (() => void) | undefined;

  constructor(readonly socket: Socket) {
    sockets.push(socket);
    socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
      this.#wake?.();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.ended = true;
        this.#wake?.();
        resolve();
      }),
    );
  }

  static async open(port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new RawClient(socket);
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Wait until `ready` says what has arrived is enough (or the connection closes). */
  async until(ready: () => boolean, ms = 5_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ready()) {
      if (this.ended) return;
      if (Date.now() > deadline) throw new Error(`timed out; received so far: ${JSON.stringify(this.data.toString('latin1').slice(0, 300))}`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  /** The next complete response (taken off the received bytes). */
  async response(options: { head?: boolean } = {}): Promise<Parsed> {
    let parsed: ReturnType<typeof parseResponse>;
    await this.until(() => (parsed = parseResponse(this.data, this.ended, options.head === true)) !== undefined);
    parsed ??= parseResponse(this.data, this.ended, options.head === true);
    if (parsed === undefined) throw new Error(`connection closed before a whole response: ${JSON.stringify(this.data.toString('latin1'))}`);
    this.data = this.data.subarray(parsed.used);
    return parsed.response;
  }

  /** Everything until the server closes the connection. */
  async rest(ms = 5_000): Promise<string> {
    await this.until(() => false, ms);
    return this.data.toString('latin1');
  }
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, sleep(ms).then(() => Promise.reject(new Error(`${what}: not within ${ms} ms`)))]);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => (resolve = done));
  return { promise, resolve };
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

// ---------------------------------------------------------------------------------------------------

describe('Http1Server: requests and keep-alive', () => {
  it('answers several GETs over one kept-alive socket, in order, with the request line and headers as sent', async () => {
    const { port, seen } = await start();
    const client = await RawClient.open(port);
    for (const path of ['/a', '/b?x=1', '/%7Ec']) {
      client.write(`GET ${path} HTTP/1.1\r\nHost: example.test\r\nX-Trace: ${path}\r\n\r\n`);
      const res = await client.response();
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe(`hello GET ${path}`);
      expect(res.headers['content-length']).toBe(String(res.body.length));
      expect(res.headers.connection).toBeUndefined();
      expect(res.headers.date).toMatch(/^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    }
    expect(client.ended).toBe(false);
    expect(seen.map((req) => req.url)).toEqual(['/a', '/b?x=1', '/%7Ec']);
    expect(new Set(seen.map((req) => req.socket)).size).toBe(1);
    expect(seen[1]!.rawHeaders).toEqual(['Host', 'example.test', 'X-Trace', '/b?x=1']);
    expect([seen[0]!.httpVersionMajor, seen[0]!.httpVersionMinor, typeof seen[0]!.socket.remoteAddress]).toEqual([1, 1, 'string']);
  });

  it('serves fetch (undici) and node:http clients, reusing their connections', async () => {
    const { port, seen } = await start();
    const agent = new Agent({ connections: 1 });
    agents.push(agent);
    for (let i = 0; i < 3; i++) {
      const res = await undiciRequest(`http://127.0.0.1:${port}/u${i}`, { dispatcher: agent });
      expect(await res.body.text()).toBe(`hello GET /u${i}`);
    }
    const viaFetch = await fetch(`http://127.0.0.1:${port}/f`, { method: 'DELETE' });
    expect(await viaFetch.text()).toBe('hello DELETE /f');
    const viaNode = await new Promise<string>((resolve, reject) => {
      nodeRequest({ host: '127.0.0.1', port, path: '/n', method: 'OPTIONS' }, (res) => {
        void readAll(res).then((body) => resolve(body.toString()), reject);
      })
        .on('error', reject)
        .end();
    });
    expect(viaNode).toBe('hello OPTIONS /n');
    expect(new Set(seen.slice(0, 3).map((req) => req.socket)).size).toBe(1);
  });

  it('gives the method by name, QUERY and M-SEARCH included', async () => {
    const { port, seen } = await start();
    const client = await RawClient.open(port);
    client.write('QUERY /q HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nM-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\nPATCH /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
    await client.response();
    await client.response();
    await client.response();
    expect(seen.map((req) => req.method)).toEqual(['QUERY', 'M-SEARCH', 'PATCH']);
  });

  it('builds headers exactly as node:http does (joins, first-only names, cookie, set-cookie), once', async () => {
    const text =
      'GET / HTTP/1.1\r\nHost: a.test\r\nhost: b.test\r\nAccept: text/html\r\naccept: application/json\r\nCookie: a=1\r\ncookie: b=2\r\n' +
      'Set-Cookie: x=1\r\nset-cookie: y=2\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\nAuthorization: one\r\nauthorization: two\r\n' +
      'User-Agent: u1\r\nUser-Agent: u2\r\nX-Custom: 1\r\nx-custom: 2\r\nContent-Length: 0\r\nReferer: r1\r\nReferer: r2\r\nIf-None-Match: "a"\r\nIf-None-Match: "b"\r\n\r\n';
    const fromNode = await new Promise<IncomingHttpHeaders>((resolve) => {
      const node = createNodeServer((req, res) => {
        res.end();
        node.close();
        resolve(req.headers);
      }).listen(0, '127.0.0.1', () => {
        const socket = connect((node.address() as { port: number }).port, '127.0.0.1', () => socket.end(text));
        socket.on('error', () => undefined);
        socket.resume();
      });
    });
    const { port, seen } = await start();
    const client = await RawClient.open(port);
    client.write(text);
    await client.response();
    const headers = seen[0]!.headers;
    expect({ ...headers }).toEqual({ ...fromNode });
    expect(headers['set-cookie']).toEqual(['x=1', 'y=2']);
    expect(headers.host).toBe('a.test');
    expect(seen[0]!.headers).toBe(headers);
  });

  it('speaks HTTP/1.0: close-delimited without keep-alive, kept alive with a length when asked', async () => {
    const chunky: RequestHandler = (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('part one, ');
      res.end(`part two of ${req.url}`);
    };
    const { port } = await start((req, res) => (req.url === '/chunky' ? chunky(req, res) : hello(req, res)));

    const plain = await RawClient.open(port);
    plain.write('GET /chunky HTTP/1.0\r\n\r\n');
    const text = await plain.rest();
    expect(text.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(text.toLowerCase()).not.toContain('transfer-encoding');
    expect(text.toLowerCase()).toContain('connection: close\r\n');
    expect(text.endsWith('\r\n\r\npart one, part two of /chunky')).toBe(true);
    expect(plain.ended).toBe(true);

    const short = await RawClient.open(port);
    short.write('GET /x HTTP/1.0\r\n\r\n');
    const answer = await short.response();
    expect([answer.headers.connection, answer.body.toString()]).toEqual(['close', 'hello GET /x']);
    await within(short.closed, 2_000, 'an HTTP/1.0 connection without keep-alive closing');

    const kept = await RawClient.open(port);
    kept.write('GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const one = await kept.response();
    expect([one.headers.connection, one.headers['content-length'], one.body.toString()]).toEqual(['keep-alive', '14', 'hello GET /one']);
    kept.write('GET /chunky HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    // No length known and no chunking for HTTP/1.0: the body ends with the connection.
    expect((await kept.rest()).endsWith('connection: close\r\n\r\npart one, part two of /chunky')).toBe(true);
  });

  it('closes after answering a request that says Connection: close', async () => {
    const { port } = await start();
    const client = await RawClient.open(port);
    client.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const res = await client.response();
    expect([res.status, res.headers.connection]).toEqual([200, 'close']);
    await within(client.closed, 2_000, 'the connection closing');
  });
});

describe('Http1Server: response framing', () => {
  it('sends no body to HEAD, keeping the length the handler gave and the connection usable', async () => {
    const { port } = await start((req, res) => {
      if (req.url === '/unsized') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('not sent');
        res.end('nor this');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
      res.end(req.method === 'HEAD' ? undefined : 'hello');
    });
    const client = await RawClient.open(port);
    client.write('HEAD / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /unsized HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const head = await client.response({ head: true });
    expect([head.status, head.headers['content-length']]).toEqual([200, '5']);
    const unsized = await client.response({ head: true });
    expect(unsized.headers['transfer-encoding']).toBeUndefined();
    expect(unsized.headers['content-length']).toBeUndefined();
    // Had a body been sent after either head, this would not parse as the GET's answer.
    const get = await client.response();
    expect([get.status, get.body.toString()]).toEqual([200, 'hello']);
    expect(client.data.length).toBe(0);
  });

  it.each([204, 304])('sends no body (and no framing) with %i', async (status) => {
    const { port } = await start((req, res) => {
      if (req.url === '/next') return hello(req, res);
      res.writeHead(status, { etag: '"v1"' });
      res.write('ignored');
      res.end('ignored too');
    });
    const client = await RawClient.open(port);
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n');
    const res = await client.response({ head: true });
    expect(res.status).toBe(status);
    expect(res.headers['transfer-encoding']).toBeUndefined();
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers.etag).toBe('"v1"');
    const next = await client.response();
    expect(next.body.toString()).toBe('hello GET /next');
  });

  it('passes the content-length it is given, chunks when there is none, and measures a single end(body)', async () => {
    const { port } = await start((req, res) => {
      if (req.url === '/sized') {
        res.writeHead(200, ['Content-Length', '11', 'X-Multi', 'a', 'X-Multi', 'b']);
        res.write(Buffer.from('hello '));
        res.end('world');
      } else if (req.url === '/chunked') {
        res.writeHead(201, 'Made It', { 'x-list': ['1', '2'], 'x-n': 7 });
        res.write('ab');
        res.write('');
        res.write(Buffer.from([0, 1, 2, 255]));
        res.end('é');
      } else if (req.url === '/implicit') {
        res.statusCode = 202;
        res.write('implicit');
        res.end();
      } else {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('naïve ✓');
      }
    });
    const client = await RawClient.open(port);
    client.write('GET /sized HTTP/1.1\r\nHost: x\r\n\r\n');
    const sized = await client.response();
    expect(sized.head).toContain('\r\nContent-Length: 11\r\nX-Multi: a\r\nX-Multi: b\r\n');
    expect(sized.headers['transfer-encoding']).toBeUndefined();
    expect(sized.body.toString()).toBe('hello world');

    client.write('GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n');
    const chunked = await client.response();
    expect(chunked.head.startsWith('HTTP/1.1 201 Made It\r\n')).toBe(true);
    expect([chunked.headers['transfer-encoding'], chunked.headers['x-list'], chunked.headers['x-n']]).toEqual(['chunked', '1, 2', '7']);
    expect(chunked.body).toEqual(Buffer.concat([Buffer.from('ab'), Buffer.from([0, 1, 2, 255]), Buffer.from('é')]));

    client.write('GET /implicit HTTP/1.1\r\nHost: x\r\n\r\n');
    const implicit = await client.response();
    expect([implicit.status, implicit.headers['transfer-encoding'], implicit.body.toString()]).toEqual([202, 'chunked', 'implicit']);

    client.write('GET /text HTTP/1.1\r\nHost: x\r\n\r\n');
    const text = await client.response();
    expect(text.headers['content-length']).toBe(String(Buffer.byteLength('naïve ✓')));
    expect(text.body.toString()).toBe('naïve ✓');
  });

  it('keeps the date the handler gives, and refuses header values that would split the response', async () => {
    const errors: unknown[] = [];
    const { port } = await start((req, res) => {
      if (req.url === '/bad') {
        for (const headers of [{ 'x-evil': 'a\r\nx-injected: 1' }, { 'bad name': 'v' }, ['x-nul', 'a\u0000b']]) {
          try {
            res.writeHead(200, headers);
          } catch (error) {
            errors.push((error as { code?: string }).code);
          }
        }
        res.writeHead(500, { 'content-length': 0 });
        res.end();
        return;
      }
      res.writeHead(200, { Date: 'Thu, 01 Jan 1970 00:00:00 GMT', 'content-length': 0 });
      res.end();
    });
    const client = await RawClient.open(port);
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const res = await client.response();
    expect(res.headers.date).toBe('Thu, 01 Jan 1970 00:00:00 GMT');
    client.write('GET /bad HTTP/1.1\r\nHost: x\r\n\r\n');
    const bad = await client.response();
    expect(bad.status).toBe(500);
    expect(bad.head).not.toContain('injected');
    expect(errors).toEqual(['ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN', 'ERR_INVALID_CHAR']);
  });
});

describe('Http1Server: request bodies', () => {
  const echo: RequestHandler = (req, res) => {
    void readAll(req.body()).then((body) => {
      res.writeHead(200, { 'x-sha': sha(body), 'x-length': body.length });
      res.end(body);
    });
  };

  it('streams a chunked body, sent in pieces, byte for byte', async () => {
    const { port, seen } = await start(echo);
    const client = await RawClient.open(port);
    const parts = [Buffer.from('hello '), Buffer.from([0, 13, 10, 255, 128]), Buffer.from('world'.repeat(1000))];
    client.write('POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (const part of parts) {
      await sleep(20);
      client.write(Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]));
    }
    await sleep(20);
    client.write('0\r\n\r\n');
    const res = await client.response();
    expect(res.body).toEqual(Buffer.concat(parts));
    expect(seen[0]!.complete).toBe(true);
  });

  it('streams a content-length body split across writes, then serves the next request on the socket', async () => {
    const { port } = await start((req, res) => (req.method === 'POST' ? echo(req, res) : hello(req, res)));
    const client = await RawClient.open(port);
    const body = Buffer.from('0123456789'.repeat(5000));
    client.write(`POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
    client.write(body.subarray(0, 7));
    await sleep(20);
    client.write(body.subarray(7, 30_001));
    await sleep(20);
    client.write(Buffer.concat([body.subarray(30_001), Buffer.from('GET /after HTTP/1.1\r\nHost: x\r\n\r\n')]));
    const res = await client.response();
    expect([res.headers['x-length'], res.headers['x-sha']]).toEqual([String(body.length), sha(body)]);
    expect((await client.response()).body.toString()).toBe('hello GET /after');
  });

  it('reads a fetch body and keeps a body read late (the handler asks for it after a while)', async () => {
    const { port } = await start((req, res) => {
      setTimeout(() => echo(req, res), 100);
    });
    const body = Buffer.from('late body '.repeat(3000));
    const res = await fetch(`http://127.0.0.1:${port}/late`, { method: 'PUT', body });
    expect(Buffer.from(await res.arrayBuffer())).toEqual(body);
  });

  it('drops a body the handler resumes, and one it never reads, keeping the connection usable', async () => {
    const { port } = await start((req, res) => {
      const answer = (): void => {
        res.writeHead(200, { 'content-length': 2 });
        res.end('ok');
      };
      if (req.url !== '/resume') return answer();
      // Resumed, the body is read (and dropped) to its end, however large, before anyone answers.
      req.resume();
      const check = setInterval(() => {
        if (!req.complete) return;
        clearInterval(check);
        answer();
      }, 10);
    });
    const client = await RawClient.open(port);
    client.write(`POST /resume HTTP/1.1\r\nHost: x\r\nContent-Length: ${1024 * 1024}\r\n\r\n`);
    client.write(Buffer.alloc(1024 * 1024, 'a'));
    expect((await client.response()).body.toString()).toBe('ok');
    // Answered before the body arrives: the rest is read and dropped, and the next request still parses.
    client.write('POST /ignored HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
    expect((await client.response()).body.toString()).toBe('ok');
    client.write('defghijGET /next HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await client.response()).body.toString()).toBe('ok');
  });

  it('writes 100 Continue before reading a body whose client expects it', async () => {
    const { port } = await start(echo);
    const client = await RawClient.open(port);
    client.write('POST /ask HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
    await client.until(() => client.data.includes('\r\n\r\n'));
    expect(client.data.toString('latin1')).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    client.data = Buffer.alloc(0);
    client.write('hello');
    const res = await client.response();
    expect([res.status, res.body.toString()]).toEqual([200, 'hello']);
  });

  it('also lets node:http\'s client wait for 100 Continue', async () => {
    const { port } = await start(echo);
    const body = await new Promise<string>((resolve, reject) => {
      const req = nodeRequest({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { expect: '100-continue', 'content-length': 3 } }, (res) => {
        void readAll(res).then((data) => resolve(data.toString()), reject);
      });
      req.on('continue', () => req.end('abc'));
      req.on('error', reject);
    });
    expect(body).toBe('abc');
  });
});

describe('Http1Server: backpressure with large bodies', () => {
  it.each([
    ['asking for the body at once', true],
    ['asking for it only later', false],
  ])('does not read an upload faster than the handler reads it (%s)', async (_name, early) => {
    const size = 32 * 1024 * 1024;
    const read: number[] = [];
    const { port } = await start((req, res) => {
      const asked = early ? req.body() : undefined;
      setTimeout(() => {
        read.push(req.socket.bytesRead);
        const body = asked ?? req.body();
        // The stream, made and not read yet, holds the socket back too.
        setTimeout(() => {
          read.push(req.socket.bytesRead);
          const hash = createHash('sha256');
          let length = 0;
          body.on('data', (chunk: Buffer) => {
            hash.update(chunk);
            length += chunk.length;
          });
          body.on('end', () => {
            res.writeHead(200, { 'x-length': length, 'x-sha': hash.digest('hex'), 'content-length': 0 });
            res.end();
          });
        }, 200);
      }, 400);
    });
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
    const expected = createHash('sha256');
    for (let i = 0; i < size / chunk.length; i++) expected.update(chunk);
    const headers = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
      const req = nodeRequest({ host: '127.0.0.1', port, method: 'POST', path: '/up', headers: { 'content-length': size } }, (res) => {
        res.resume();
        resolve(res.headers);
      });
      req.on('error', reject);
      let sent = 0;
      const pump = (): void => {
        while (sent < size) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      // The head first: the body arrives after the handler has (or has not) asked for it.
      req.flushHeaders();
      setTimeout(pump, 100);
    });
    expect(read).toHaveLength(2);
    // The kernel holds some of the upload; the engine itself read no more than a few buffers' worth.
    for (const bytes of read) expect(bytes).toBeGreaterThan(0);
    for (const bytes of read) expect(bytes).toBeLessThan(1024 * 1024);
    expect([headers['x-length'], headers['x-sha']]).toEqual([String(size), expected.digest('hex')]);
  });

  it('stops the handler writing while the client does not read, and resumes on drain', async () => {
    const size = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) % 256;
    let written = 0;
    let drains = 0;
    const { port } = await start((_req, res) => {
      res.writeHead(200, { 'content-length': size });
      const pump = (): void => {
        while (written < size) {
          written += chunk.length;
          if (written === size) {
            res.end(chunk);
            return;
          }
          if (!res.write(chunk)) {
            res.once('drain', () => {
              drains += 1;
              pump();
            });
            return;
          }
        }
      };
      pump();
    });
    const client = await RawClient.open(port);
    client.socket.pause();
    client.write('GET /down HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(400);
    // Loopback buffers hold a few MiB; the handler must have been told to wait long before 64 MiB.
    expect(written).toBeLessThan(24 * 1024 * 1024);
    const expected = createHash('sha256');
    for (let i = 0; i < size / chunk.length; i++) expected.update(chunk);
    const hash = createHash('sha256');
    let received = 0;
    let head = true;
    client.socket.removeAllListeners('data');
    await new Promise<void>((resolve) => {
      client.socket.on('data', (data: Buffer) => {
        if (head) {
          const end = data.indexOf('\r\n\r\n');
          data = data.subarray(end + 4);
          head = false;
        }
        hash.update(data);
        received += data.length;
        if (received >= size) resolve();
      });
      client.socket.resume();
    });
    expect(received).toBe(size);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
    expect(drains).toBeGreaterThan(0);
  });
});

describe('Http1Server: pipelining', () => {
  it('answers pipelined requests in order, one at a time, bodies included, pausing the socket meanwhile', async () => {
    const events: string[] = [];
    let pausedWhileFirstPending: boolean | undefined;
    const { port } = await start((req, res) => {
      events.push(`start ${req.url}`);
      res.once('finish', () => events.push(`finish ${req.url}`));
      if (req.url === '/slow') {
        setTimeout(() => {
          pausedWhileFirstPending = req.socket.isPaused();
          res.writeHead(200, { 'content-length': 4 });
          res.end('slow');
        }, 150);
      } else if (req.url === '/echo') {
        void readAll(req.body()).then((body) => {
          res.writeHead(200);
          res.end(body);
        });
      } else {
        hello(req, res);
      }
    });
    const client = await RawClient.open(port);
    client.write(
      'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n' +
        'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n' +
        'GET /fast HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    const bodies = [];
    for (let i = 0; i < 3; i++) bodies.push((await client.response()).body.toString());
    expect(bodies).toEqual(['slow', 'two', 'hello GET /fast']);
    expect(events).toEqual(['start /slow', 'finish /slow', 'start /echo', 'finish /echo', 'start /fast', 'finish /fast']);
    expect(pausedWhileFirstPending).toBe(true);
    // Resumed once the queue is empty: the connection still serves.
    client.write('GET /again HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await client.response()).body.toString()).toBe('hello GET /again');
  });

  it('has a request without Content-Length or Transfer-Encoding complete at once, and one with a body complete when it has arrived', async () => {
    const seen: string[] = [];
    const { port } = await start((req, res) => {
      seen.push(`${req.method} ${req.url} complete=${String(req.complete)}`);
      void readAll(req.body()).then((body) => {
        res.writeHead(200);
        res.end(`${req.url}:${body.toString()}:${String(req.complete)}`);
      });
    });
    const client = await RawClient.open(port);
    // Body-less and bodied requests alternate in one read, so the parser's handling changes from one to the next.
    client.write(
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' +
        'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' +
        'DELETE /c HTTP/1.1\r\nHost: x\r\n\r\n' +
        'POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n' +
        'GET /e HTTP/1.1\r\nHost: x\r\n\r\n' +
        'PUT /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    );
    const bodies = [];
    for (let i = 0; i < 6; i++) bodies.push((await client.response()).body.toString());
    expect(bodies).toEqual(['/a::true', '/b:hello:true', '/c::true', '/d::true', '/e::true', '/f:abc:true']);
    expect(seen.filter((line) => line.startsWith('GET') || line.startsWith('DELETE'))).toEqual(['GET /a complete=true', 'DELETE /c complete=true', 'GET /e complete=true']);
    // A body sent in a later read: the request is not complete until it arrives.
    client.write('POST /g HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    client.write('xyz');
    expect((await client.response()).body.toString()).toBe('/g:xyz:true');
    expect(seen.at(-1)).toBe('POST /g complete=false');
  });

  it('answers the requests before a refused one, then 400 and close', async () => {
    const { port, seen } = await start();
    const client = await RawClient.open(port);
    client.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\nPOST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    const ok = await client.response();
    expect(ok.body.toString()).toBe('hello GET /ok');
    const refused = await client.response();
    expect([refused.status, refused.headers.connection]).toEqual([400, 'close']);
    await within(client.closed, 2_000, 'the connection closing');
    expect(seen.map((req) => req.url)).toEqual(['/ok']);
  });
});

describe('Http1Server: upgrades', () => {
  it('hands the socket over with exactly the bytes after the head, and touches it no more', async () => {
    let head: Buffer | undefined;
    let upgraded: Http1Request | undefined;
    const { port, seen } = await start(hello, {}, (req, socket, bytes) => {
      upgraded = req;
      head = bytes;
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
      socket.on('data', (data: Buffer) => socket.write(data));
      socket.on('end', () => socket.end());
    });
    const client = await RawClient.open(port);
    client.write('GET /before HTTP/1.1\r\nHost: x\r\n\r\nGET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n\u0000\u0001HEAD\r\nGET / HTTP/1.1');
    expect((await client.response()).body.toString()).toBe('hello GET /before');
    const switching = await client.response();
    expect(switching.status).toBe(101);
    expect(head).toEqual(Buffer.from('\u0000\u0001HEAD\r\nGET / HTTP/1.1', 'latin1'));
    expect([upgraded?.url, upgraded?.headers.upgrade]).toEqual(['/ws', 'echo']);
    // Not HTTP any more: a request line is echoed, not answered.
    client.write('GET /not-http HTTP/1.1\r\n\r\n');
    await client.until(() => client.data.includes('not-http'));
    expect(client.data.toString('latin1')).toBe('GET /not-http HTTP/1.1\r\n\r\n');
    expect(seen.map((req) => req.url)).toEqual(['/before']);
  });
});

describe('Http1Server: strict parsing', () => {
  it.each([
    ['Content-Length with Transfer-Encoding', 'POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['two different Content-Lengths', 'POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde'],
    ['a bad chunk size', 'POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
    ['obs-fold', 'GET /x HTTP/1.1\r\nHost: gw\r\nX-Folded: a\r\n b\r\n\r\n'],
    ['a bare CR', 'GET /x HTTP/1.1\r\nHost: gw\rX-Evil: 1\r\n\r\n'],
    ['a NUL in a header', 'GET /x HTTP/1.1\r\nHost: gw\r\nX-Evil: a\u0000b\r\n\r\n'],
    ['Transfer-Encoding other than chunked last', 'POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
    ['a space before the colon', 'GET /x HTTP/1.1\r\nHost: gw\r\nContent-Length : 0\r\n\r\n'],
    ['a bare LF line end', 'GET /x HTTP/1.1\nHost: gw\n\n'],
    ['an HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
  ])('refuses %s with 400 and close, the handler never called', async (_name, text) => {
    const { port, seen } = await start();
    const client = await RawClient.open(port);
    client.write(text);
    const res = await client.response();
    expect([res.status, res.headers.connection, res.headers['content-length']]).toEqual([400, 'close', '0']);
    await within(client.closed, 2_000, 'the connection closing');
    expect(seen).toEqual([]);
  });

  it('refuses a head larger than maxHeaderSize with 431', async () => {
    const { port, seen } = await start(hello, { maxHeaderSize: 8 * 1024 });
    const client = await RawClient.open(port);
    client.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(9 * 1024)}\r\n\r\n`);
    const res = await client.response();
    expect(res.status).toBe(431);
    await within(client.closed, 2_000, 'the connection closing');
    expect(seen).toEqual([]);
    // Under the limit is fine.
    const fine = await RawClient.open(port);
    fine.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(7 * 1024)}\r\n\r\n`);
    expect((await fine.response()).status).toBe(200);
  });

  it('refuses CONNECT', async () => {
    const { port, seen } = await start();
    const client = await RawClient.open(port);
    client.write('CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
    expect((await client.response()).status).toBe(405);
    expect(seen).toEqual([]);
  });
});

describe('Http1Server: timeouts', () => {
  it('closes a kept-alive connection left idle for keepAliveTimeoutMs', async () => {
    const { port } = await start(hello, { keepAliveTimeoutMs: 300 });
    const client = await RawClient.open(port);
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.response();
    const answered = Date.now();
    await within(client.closed, 3_000, 'the idle connection closing');
    expect(Date.now() - answered).toBeGreaterThanOrEqual(250);
  });

  it('keeps a connection that makes a request now and then (the idle clock restarts)', async () => {
    const { port } = await start(hello, { keepAliveTimeoutMs: 400 });
    const client = await RawClient.open(port);
    for (let i = 0; i < 4; i++) {
      client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      expect((await client.response()).status).toBe(200);
      await sleep(250);
    }
    expect(client.ended).toBe(false);
  });

  it('closes a slow-loris whose head is not complete within headersTimeoutMs (408), however it trickles', async () => {
    const { port, seen } = await start(hello, { headersTimeoutMs: 400, keepAliveTimeoutMs: 10_000 });
    const client = await RawClient.open(port);
    const began = Date.now();
    client.write('GET / HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => client.write('X-A: 1\r\n'), 50);
    try {
      const res = await client.response();
      expect(res.status).toBe(408);
      await within(client.closed, 3_000, 'the slow connection closing');
    } finally {
      clearInterval(trickle);
    }
    expect(Date.now() - began).toBeGreaterThanOrEqual(350);
    expect(seen).toEqual([]);
  });

  it('starts the head clock for a head begun in the same read as the request before it', async () => {
    const { port, seen } = await start(hello, { headersTimeoutMs: 400, keepAliveTimeoutMs: 10_000 });
    const client = await RawClient.open(port);
    const began = Date.now();
    client.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n');
    expect((await client.response()).body.toString()).toBe('hello GET /a');
    const res = await client.response();
    expect(res.status).toBe(408);
    expect(Date.now() - began).toBeGreaterThanOrEqual(350);
    await within(client.closed, 3_000, 'the slow connection closing');
    expect(seen.map((req) => req.url)).toEqual(['/a']);
  });

  it('does not cut a response that sends nothing for longer than both timeouts', async () => {
    const { port } = await start(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: first\n\n');
        setTimeout(() => res.end('data: last\n\n'), 900);
      },
      { keepAliveTimeoutMs: 200, headersTimeoutMs: 200 },
    );
    const client = await RawClient.open(port);
    client.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.until(() => client.data.includes('first'));
    // The start of a next request's head does not start a clock that could cut this response...
    client.write('GET /next HTTP/1.1\r\nHost: x\r\n');
    const res = await client.response();
    expect(res.body.toString()).toBe('data: first\n\ndata: last\n\n');
    // ...but once the response is over, that head has long been late.
    expect((await client.response()).status).toBe(408);
  });
});

describe('Http1Server: ending exchanges', () => {
  it('emits close without finish when the client goes away mid-response, and drops later writes', async () => {
    const events: string[] = [];
    let later: boolean | undefined;
    const closed = deferred<void>();
    const { port } = await start((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first');
      res.on('finish', () => events.push('finish'));
      res.on('close', () => {
        events.push('close');
        later = res.write('after');
        res.end('end');
        closed.resolve();
      });
      req.socket.once('close', () => events.push('socket close'));
    });
    const client = await RawClient.open(port);
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.until(() => client.data.includes('first'));
    client.socket.destroy();
    await within(closed.promise, 2_000, "the response's close");
    await sleep(50);
    expect(events.filter((event) => event !== 'socket close')).toEqual(['close']);
    expect(events).toContain('socket close');
    expect(later).toBe(false);
  });

  it('aborts a body the client stops sending half-way', async () => {
    const outcome = deferred<string>();
    const { port } = await start((req) => {
      readAll(req.body()).then(
        () => outcome.resolve('ended'),
        (error: Error & { code?: string }) => outcome.resolve(error.code ?? error.message),
      );
    });
    const client = await RawClient.open(port);
    client.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part');
    await sleep(50);
    client.socket.destroy();
    expect(await within(outcome.promise, 2_000, 'the body ending')).toMatch(/ECONNRESET|ERR_STREAM_PREMATURE_CLOSE/);
  });

  it('emits finish then close when the response ends', async () => {
    const events: string[] = [];
    const { port } = await start((_req, res) => {
      res.once('finish', () => events.push(`finish ${String(res.writableFinished)}`));
      res.once('close', () => events.push('close'));
      res.end('done');
      events.push('returned');
    });
    const client = await RawClient.open(port);
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.response();
    expect(events).toEqual(['finish true', 'close', 'returned']);
  });

  it('closes gracefully: refuses new connections, lets the request in flight finish (connection: close), closes idle ones', async () => {
    const { server, port } = await start((req, res) => {
      if (req.url === '/slow') setTimeout(() => hello(req, res), 300);
      else hello(req, res);
    });
    const idle = await RawClient.open(port);
    idle.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\n');
    await idle.response();
    const busy = await RawClient.open(port);
    busy.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(50);
    let closed = false;
    const done = new Promise<void>((resolve) => server.close(() => ((closed = true), resolve())));
    await within(idle.closed, 1_000, 'the idle connection closing');
    await expect(RawClient.open(port)).rejects.toThrow(/ECONNREFUSED/);
    expect(closed).toBe(false);
    const res = await busy.response();
    expect([res.status, res.body.toString(), res.headers.connection]).toEqual([200, 'hello GET /slow', 'close']);
    await within(done, 2_000, 'close() calling back');
    expect(busy.ended).toBe(true);
  });

  it('closeIdleConnections() closes the connections between requests only', async () => {
    const release = deferred<void>();
    const { server, port } = await start((req, res) => {
      if (req.url === '/slow') void release.promise.then(() => hello(req, res));
      else hello(req, res);
    });
    const idle = await RawClient.open(port);
    idle.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await idle.response();
    const busy = await RawClient.open(port);
    busy.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    const partial = await RawClient.open(port);
    partial.write('GET /partial HTTP/1.1\r\nHost: x\r\n');
    await sleep(50);
    server.closeIdleConnections();
    await within(idle.closed, 1_000, 'the idle connection closing');
    await sleep(50);
    expect([busy.ended, partial.ended]).toEqual([false, false]);
    release.resolve();
    const res = await busy.response();
    expect([res.body.toString(), res.headers.connection]).toEqual(['hello GET /slow', undefined]);
    partial.write('\r\n');
    expect((await partial.response()).body.toString()).toBe('hello GET /partial');
  });
});

describe('Http1Server: consume mode (the parser reads the socket handle directly)', () => {
  it("parses each read in the parser: the socket emits no 'data'", async () => {
    let dataEvents = -1;
    const { port, seen } = await start((req, res) => {
      if (dataEvents < 0) {
        dataEvents = 0;
        const emit = req.socket.emit.bind(req.socket);
        req.socket.emit = ((event: string, ...args: unknown[]) => {
          if (event === 'data') dataEvents += 1;
          return emit(event, ...args);
        }) as typeof req.socket.emit;
      }
      hello(req, res);
    });
    const client = await RawClient.open(port);
    for (let i = 0; i < 3; i++) {
      client.write(`GET /${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect((await client.response()).body.toString()).toBe(`hello GET /${i}`);
    }
    expect(seen).toHaveLength(3);
    expect(dataEvents).toBe(0);
  });

  it("leaves a handle already consumed alone and parses from 'data': pipelining, an upgrade's head, a refusal", async () => {
    const proto = NetServer.prototype as { emit: (this: NetServer, event: string | symbol, ...args: unknown[]) => boolean };
    const emit = proto.emit;
    // Whoever accepts marks the handle as node:http marks the one it consumes.
    proto.emit = function (this: NetServer, event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'connection') ((args[0] as { _handle: { _consumed?: boolean } })._handle)._consumed = true;
      return emit.call(this, event, ...args);
    };
    try {
      let head: Buffer | undefined;
      let dataEvents = 0;
      const { port, seen } = await start(
        (req, res) => {
          if (seen.length === 1) req.socket.prependListener('data', () => (dataEvents += 1));
          hello(req, res);
        },
        {},
        (_req, socket, bytes) => {
          head = bytes;
          socket.end();
        },
      );
      const client = await RawClient.open(port);
      client.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n');
      expect((await client.response()).body.toString()).toBe('hello GET /a');
      expect((await client.response()).body.toString()).toBe('hello GET /b');
      client.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nrest');
      await within(client.closed, 2_000, 'the upgraded socket closing');
      expect(head).toEqual(Buffer.from('rest'));
      expect(dataEvents).toBe(1);
      const bad = await RawClient.open(port);
      bad.write('GET /c HTTP/1.1\r\nHost: x\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\nX-Evil: a\u0000b\r\n\r\n');
      expect((await bad.response()).body.toString()).toBe('hello GET /c');
      expect((await bad.response()).status).toBe(400);
      expect(seen.map((req) => req.url)).toEqual(['/a', '/b', '/c']);
    } finally {
      proto.emit = emit;
    }
  });

  it('stops reading pipelined requests while one is answered (the handle itself stops), and reads on after', async () => {
    const release = deferred<void>();
    let bytesWhilePending = -1;
    const { port, seen } = await start((req, res) => {
      if (req.url !== '/slow') return hello(req, res);
      void sleep(300).then(() => {
        bytesWhilePending = req.socket.bytesRead;
        return release.promise.then(() => hello(req, res));
      });
    });
    const client = await RawClient.open(port);
    const one = 'GET /p HTTP/1.1\r\nHost: x\r\n\r\n';
    const count = 40_000;
    client.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n' + one.repeat(count));
    await sleep(400);
    // 1.2 MB were sent; the engine stopped after a read or two, leaving the rest in the kernel.
    expect(bytesWhilePending).toBeGreaterThan(0);
    expect(bytesWhilePending).toBeLessThan(256 * 1024);
    expect(seen).toHaveLength(1);
    release.resolve();
    await client.until(() => client.data.toString('latin1').split('hello GET /p').length - 1 === count, 20_000);
    expect(seen).toHaveLength(count + 1);
    client.write('GET /last HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.until(() => client.data.includes('hello GET /last'));
  });

  it('hands over an upgrade that waited behind a slow request with exactly its bytes: head, then the later reads', async () => {
    const release = deferred<void>();
    const received: Buffer[] = [];
    let head: Buffer | undefined;
    const { port, seen } = await start(
      (req, res) => void release.promise.then(() => hello(req, res)),
      {},
      (_req, socket, bytes) => {
        head = bytes;
        socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
        socket.on('data', (data: Buffer) => received.push(data));
        socket.on('end', () => socket.end());
      },
    );
    const client = await RawClient.open(port);
    client.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nfirst|');
    await sleep(50);
    client.write('GET /second HTTP/1.1\r\n\r\n|');
    await sleep(50);
    client.write(Buffer.from([0, 255, 13, 10]));
    await sleep(50);
    release.resolve();
    expect((await client.response()).body.toString()).toBe('hello GET /slow');
    expect((await client.response()).status).toBe(101);
    // The head is what followed it in its own read (as node:http gives it); what came later, the socket's new owner reads.
    expect(head).toEqual(Buffer.from('first|', 'latin1'));
    client.write('after');
    const later = Buffer.concat([Buffer.from('GET /second HTTP/1.1\r\n\r\n|', 'latin1'), Buffer.from([0, 255, 13, 10]), Buffer.from('after')]);
    await within(
      (async () => {
        while (Buffer.concat(received).length < later.length) await sleep(10);
      })(),
      2_000,
      'the later bytes reaching the new owner',
    );
    expect(Buffer.concat(received)).toEqual(later);
    expect(seen.map((req) => req.url)).toEqual(['/slow']);
  });

  it('refuses what arrives malformed in a later read, after answering the request before it', async () => {
    const release = deferred<void>();
    const { port, seen } = await start((req, res) => void release.promise.then(() => hello(req, res)));
    const client = await RawClient.open(port);
    client.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(50);
    client.write('GET /bad HTTP/1.1\r\nHost: x\r\nX-Evil: a\u0000b\r\n\r\n');
    await sleep(50);
    release.resolve();
    expect((await client.response()).body.toString()).toBe('hello GET /ok');
    const refused = await client.response();
    expect([refused.status, refused.headers.connection]).toEqual([400, 'close']);
    await within(client.closed, 2_000, 'the connection closing');
    expect(seen.map((req) => req.url)).toEqual(['/ok']);
  });

  it('cuts a request whose body breaks off malformed in a later read', async () => {
    const outcome = deferred<string>();
    const { port } = await start((req) => {
      readAll(req.body()).then(
        () => outcome.resolve('ended'),
        (error: Error & { code?: string }) => outcome.resolve(error.code ?? error.message),
      );
    });
    const client = await RawClient.open(port);
    client.write('POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
    await sleep(50);
    client.write('zz\r\nabc\r\n0\r\n\r\n');
    expect(await within(outcome.promise, 2_000, 'the body ending')).toMatch(/ECONNRESET|ERR_STREAM_PREMATURE_CLOSE/);
    await within(client.closed, 2_000, 'the connection closing');
    expect(client.data.length).toBe(0);
  });

  it('reads and drops what follows a response that closes the connection while requests wait, so the close is prompt', async () => {
    const closedAt = deferred<number>();
    const { port, seen } = await start((req, res) => {
      req.socket.once('close', () => closedAt.resolve(Date.now()));
      void sleep(100).then(() => {
        res.writeHead(200, { connection: 'close', 'content-length': 2 });
        res.end('ok');
      });
    });
    const client = await RawClient.open(port);
    client.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n');
    const res = await client.response();
    expect([res.body.toString(), res.headers.connection]).toEqual(['ok', 'close']);
    const answered = Date.now();
    await within(client.closed, 2_000, 'the client seeing the close');
    client.socket.end();
    // The engine sees the client's end at once (it reads again), rather than lingering 5 s.
    expect((await within(closedAt.promise, 2_000, "the server's socket closing")) - answered).toBeLessThan(1_000);
    expect(seen.map((req) => req.url)).toEqual(['/first']);
  });
});
