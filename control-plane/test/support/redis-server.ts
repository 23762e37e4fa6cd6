/**
 * A Redis for a test: its own `redis-server` on a free port in a temp directory when one is installed,
 * else the shared Redis at `PORTICO_REDIS_URL` (or 127.0.0.1:6379), which is never stopped.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import getPort from 'get-port';
import { Redis } from 'ioredis';

/** A Redis a test may use. */
export interface TestRedis {
  url: string;
  port: number;
  /** Whether this is a server of the test's own (false: the shared Redis, which `stop`/`kill` leave alone). */
  own: boolean;
  /** The server's pid, when it is the test's own. */
  pid: number | undefined;
  /** Shuts the test's own server down and removes its directory; a no-op for the shared Redis. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILLs the test's own server at once (to simulate Redis dying); a no-op for the shared Redis. */
  kill(): void;
}

const START_TIMEOUT_MS = 10_000;

let installed: Promise<boolean> | undefined;

/** Whether `redis-server` can be run here. */
export function redisServerInstalled(): Promise<boolean> {
  installed ??= new Promise<boolean>((settle) => {
    const child = spawn('redis-server', ['--version'], { stdio: 'ignore' });
    child.once('error', () => settle(false));
    child.once('exit', (code) => settle(code === 0));
  });
  return installed;
}

/**
 * Starts a Redis for a test; see the module comment for which.
 *
 * @param options.port - Start the test's own server on this port (e.g. to bring one back where a
 *   killed one was); ignored when falling back to the shared Redis.
 * @param options.dir - Keep the server's files here (and leave them when it stops): with
 *   `appendOnly`, a server started again on the same `dir` has the data of one that was killed.
 * @param options.appendOnly - Log every write to an append-only file, fsynced at each write (Redis's
 *   `appendfsync always`), so a SIGKILL loses nothing.
 */
export async function startRedisServer(options: { port?: number; dir?: string; appendOnly?: boolean } = {}): Promise<TestRedis> {
  if (!(await redisServerInstalled())) {
    const url = process.env.PORTICO_REDIS_URL ?? 'redis://127.0.0.1:6379';
    return { url, port: Number(new URL(url).port || 6379), own: false, pid: undefined, stop: () => Promise.resolve(), kill: () => undefined };
  }

  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'portico-test-redis-')));
  const persistence = options.appendOnly === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await getPort({ host: '127.0.0.1' }));
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...persistence, '--daemonize', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4_000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.on('error', () => undefined);
    const exited = new Promise<void>((settle) => child.once('exit', () => settle()));

    const url = `redis://127.0.0.1:${port}`;
    if (await answersWithin(url, child, START_TIMEOUT_MS)) {
      return ownServer(url, port, child, exited, options.dir === undefined ? dir : undefined);
    }
    child.kill('SIGKILL');
    await exited;
    if (!output.includes('Address already in use') || options.port !== undefined || attempt >= 3) {
      if (options.dir === undefined) await rm(dir, { recursive: true, force: true });
      throw new Error(`test redis-server on port ${port} did not start:\n${output}`);
    }
  }
}

/** `dir`: the directory to remove when the server stops (none when the caller owns it). */
function ownServer(url: string, port: number, child: ChildProcess, exited: Promise<void>, dir: string | undefined): TestRedis {
  let stopping: Promise<void> | undefined;
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    url,
    port,
    own: true,
    pid: child.pid,
    kill: () => {
      if (running()) child.kill('SIGKILL');
    },
    stop: () => {
      stopping ??= (async () => {
        if (running()) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
          await exited;
          clearTimeout(timer);
        }
        if (dir !== undefined) await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

async function answersWithin(url: string, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      return true;
    } catch {
      await new Promise((settle) => setTimeout(settle, 25));
    } finally {
      client.disconnect();
    }
  }
  return false;
}
