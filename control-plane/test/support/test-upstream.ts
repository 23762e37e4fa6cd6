/**
 * A small HTTP service for gateway tests, run as its own process (so a test can kill -9 it):
 * `node --import tsx test-upstream.ts` with UPSTREAM_NAME and UPSTREAM_PORT. Routes:
 *   /whoami        its name
 *   /echo/...      JSON: its name, the method, the path it received, the headers
 *   /status/:code  an empty answer with that status
 *   /slow/:ms      its name after that many milliseconds
 *   /hang          never answers
 *   /counted...    its name and how many requests it has seen (`Cache-Control: no-store` when the path says "nostore")
 *   /sse           an event stream, one event every 100 ms, never ending
 *   /ws            a WebSocket echo
 *   /bytes/:n      n bytes (`BYTES_CHUNK` over and over), written as fast as the connection takes them, never faster
 * Every answer names the instance in `X-Upstream`. And, on its own port only (never through a gateway), /__count: how many requests it has seen,
 * and /__sent: how many bytes the last /bytes answer has handed to its socket so far.
 */
import { createServer } from 'node:http';
import { BYTES_CHUNK } from './bytes-chunk.js';
import { WebSocketServer } from 'ws';

const name = process.env.UPSTREAM_NAME ?? 'upstream';
let count = 0;
let sent = 0;

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/__count') {
    res.end(String(count));
    return;
  }
  if (url === '/__sent') {
    res.end(String(sent));
    return;
  }
  count += 1;
  req.resume();
  res.setHeader('x-upstream', name);
  if (url === '/whoami') {
    res.end(name);
  } else if (url.startsWith('/echo')) {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name, method: req.method, path: url, headers: req.headers, rawHeaders: req.rawHeaders }));
  } else if (url.startsWith('/status/')) {
    res.statusCode = Number(url.slice('/status/'.length));
    res.end();
  } else if (url.startsWith('/slow/')) {
    setTimeout(() => res.end(name), Number(url.slice('/slow/'.length).split('?')[0]));
  } else if (url.startsWith('/counted')) {
    // A body that changes with every request, so a replay from a cache shows.
    if (url.includes('nostore')) res.setHeader('cache-control', 'no-store');
    res.end(`${name} #${count}`);
  } else if (url === '/sse') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let n = 0;
    const timer = setInterval(() => res.write(`id: ${++n}\ndata: ${name} ${n}\n\n`), 100);
    res.on('close', () => clearInterval(timer));
  } else if (url.startsWith('/bytes/')) {
    let left = Number(url.slice('/bytes/'.length));
    sent = 0;
    res.writeHead(200, { 'content-length': left, 'content-type': 'application/octet-stream' });
    const more = (): void => {
      while (left > 0) {
        const chunk = left >= BYTES_CHUNK.length ? BYTES_CHUNK : BYTES_CHUNK.subarray(0, left);
        left -= chunk.length;
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', more);
          return;
        }
      }
      res.end();
    };
    more();
  } else if (url === '/hang') {
    // never answers
  } else {
    res.statusCode = 404;
    res.end();
  }
});
server.keepAliveTimeout = 60_000;
// /ws: a WebSocket echo, each message answered as "<name>: <message>".
const sockets = new WebSocketServer({ server, path: '/ws' });
sockets.on('connection', (socket) => socket.on('message', (data) => socket.send(`${name}: ${(data as Buffer).toString('utf8')}`)));
server.listen(Number(process.env.UPSTREAM_PORT), '127.0.0.1', () => process.stdout.write(`listening ${name}\n`));
