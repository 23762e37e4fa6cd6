import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import getPort from 'get-port';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ensureRedis, type EnsuredRedis, type EnsureRedisOptions } from '../../../src/broker/private-redis.js';
import { PorticoError } from '../../../src/errors.js';
import { redisServerInstalled, startRedisServer } from '../../support/redis-server.js';

const hasRedisServer = await redisServerInstalled();

interface LogLine {
  level: 'info' | 'warn';
  object: object;
  message: string | undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function rejection(promise: Promise<unknown>): Promise<PorticoError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(PorticoError);
    return error as PorticoError;
  }
  throw new Error('expected a rejection');
}

describe('ensureRedis', () => {
  let dataDir: string;
  let logs: LogLine[];
  const cleanups: Array<() => Promise<void> | void> = [];

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'portico-private-redis-'));
    logs = [];
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const logger = {
    info: (object: object, message?: string) => logs.push({ level: 'info', object, message }),
    warn: (object: object, message?: string) => logs.push({ level: 'warn', object, message }),
  };

  async function ensure(options: Partial<EnsureRedisOptions> & { url: string; isDefault: boolean }): Promise<EnsuredRedis> {
    const redis = await ensureRedis({ dataDir, logger, ...options });
    cleanups.push(() => redis.stop());
    return redis;
  }

  /** A URL nothing answers at: a free port on loopback. */
  async function unreachableUrl(): Promise<string> {
    return `redis://127.0.0.1:${await getPort({ host: '127.0.0.1' })}`;
  }

  async function client(url: string): Promise<Redis> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => undefined);
    await redis.connect();
    cleanups.push(() => {
      redis.disconnect();
    });
    return redis;
  }

  async function pidOf(): Promise<number> {
    return Number((await readFile(join(dataDir, 'redis', 'redis.pid'), 'utf8')).trim());
  }

  it('uses a Redis that answers at the URL, and leaves it running on stop', async () => {
    const shared = await startRedisServer();
    cleanups.push(() => shared.stop());

    for (const isDefault of [true, false]) {
      const redis = await ensure({ url: shared.url, isDefault });
      expect(redis).toMatchObject({ url: shared.url, private: false });
      await redis.stop();
      expect(await (await client(shared.url)).ping()).toBe('PONG');
    }
    expect(await exists(join(dataDir, 'redis'))).toBe(false);
  });

  describe.skipIf(!hasRedisServer)('with redis-server installed', () => {
    it('starts a private redis-server when nothing answers at the default URL, and stop() ends it', async () => {
      const defaultUrl = await unreachableUrl();
      const redis = await ensure({ url: defaultUrl, isDefault: true });
      expect(redis.private).toBe(true);
      expect(redis.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
      expect(redis.url).not.toBe(defaultUrl);

      const pid = await pidOf();
      expect(pid).toBeGreaterThan(0);
      expect(isAlive(pid)).toBe(true);
      const connection = await client(redis.url);
      expect(await connection.ping()).toBe('PONG');
      await connection.set('portico:test', 'kept');
      expect(await readdir(join(dataDir, 'redis'))).toContain('appendonlydir');
      expect((await stat(join(dataDir, 'redis'))).mode & 0o777).toBe(0o700);
      expect(logs.some((line) => line.level === 'warn' && /starting a private redis-server/.test(line.message ?? ''))).toBe(true);

      connection.disconnect();
      await redis.stop();
      expect(isAlive(pid)).toBe(false);
      expect(await exists(join(dataDir, 'redis', 'redis.pid'))).toBe(false);
      await redis.stop(); // idempotent
    });

    it('keeps data across a restart through its append-only file', async () => {
      const first = await ensure({ url: await unreachableUrl(), isDefault: true });
      const writer = await client(first.url);
      await writer.rpush('portico:queue', 'job-1', 'job-2');
      writer.disconnect();
      await first.stop();

      const second = await ensure({ url: await unreachableUrl(), isDefault: true });
      expect(await (await client(second.url)).lrange('portico:queue', 0, -1)).toEqual(['job-1', 'job-2']);
    });

    it('stops a private redis-server left running by a crashed earlier run before starting anew', async () => {
      const dir = join(dataDir, 'redis');
      await mkdir(dir, { recursive: true });
      const port = await getPort({ host: '127.0.0.1' });
      const leftover = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes'], {
        stdio: 'ignore',
      });
      cleanups.push(() => {
        if (leftover.exitCode === null && leftover.signalCode === null) leftover.kill('SIGKILL');
      });
      const leftoverExited = new Promise<void>((settle) => leftover.once('exit', () => settle()));
      await vi.waitFor(async () => expect(await (await client(`redis://127.0.0.1:${port}`)).ping()).toBe('PONG'), {
        timeout: 5_000,
        interval: 50,
      });
      await writeFile(join(dir, 'redis.pid'), `${leftover.pid}\n`);

      const redis = await ensure({ url: await unreachableUrl(), isDefault: true });
      await leftoverExited;
      // SIGTERM makes redis-server shut down cleanly (exit code 0); SIGKILL would show as a signal.
      expect(leftover.exitCode).toBe(0);
      expect(redis.private).toBe(true);
      expect(await pidOf()).not.toBe(leftover.pid);
      expect(logs.some((line) => /left running by an earlier run/.test(line.message ?? ''))).toBe(true);
    });

    it('leaves alone a live process that a stale pidfile names but that is not its redis-server', async () => {
      const dir = join(dataDir, 'redis');
      await mkdir(dir, { recursive: true });
      const bystander: ChildProcess = spawn('sleep', ['30'], { stdio: 'ignore' });
      cleanups.push(() => {
        bystander.kill('SIGKILL');
      });
      await writeFile(join(dir, 'redis.pid'), `${bystander.pid}\n`);

      const redis = await ensure({ url: await unreachableUrl(), isDefault: true });
      expect(redis.private).toBe(true);
      expect(isAlive(bystander.pid ?? -1)).toBe(true);
      expect(bystander.exitCode).toBeNull();
      expect(await pidOf()).not.toBe(bystander.pid);
    });

    it('ignores a pidfile naming a process that is gone', async () => {
      const dir = join(dataDir, 'redis');
      await mkdir(dir, { recursive: true });
      const gone = spawn('true', [], { stdio: 'ignore' });
      await new Promise<void>((settle) => gone.once('exit', () => settle()));
      await writeFile(join(dir, 'redis.pid'), `${gone.pid}\n`);

      const redis = await ensure({ url: await unreachableUrl(), isDefault: true });
      expect(redis.private).toBe(true);
      expect(isAlive(await pidOf())).toBe(true);
    });
  });

  it('refuses to replace a Redis the operator named, when nothing answers there', async () => {
    const url = await unreachableUrl();
    const error = await rejection(ensure({ url, isDefault: false }));
    expect(error.code).toBe('PORTICO_ERR_BROKER_UNAVAILABLE');
    expect(error.message).toContain(`Nothing answers at PORTICO_REDIS_URL=${url}`);
    expect(await exists(join(dataDir, 'redis'))).toBe(false);
  });

  it('keeps the password of a named Redis out of the error', async () => {
    const port = await getPort({ host: '127.0.0.1' });
    const error = await rejection(ensure({ url: `redis://:hunter2hunter2@127.0.0.1:${port}`, isDefault: false }));
    expect(error.message).not.toContain('hunter2hunter2');
  });

  it('names both ways out when redis-server is not installed', async () => {
    const error = await rejection(
      ensure({ url: await unreachableUrl(), isDefault: true, redisServerBinary: 'portico-test-no-such-redis-server' }),
    );
    expect(error.code).toBe('PORTICO_ERR_BROKER_UNAVAILABLE');
    expect(error.message).toContain('apt-get install redis-server');
    expect(error.message).toContain('set PORTICO_REDIS_URL to a reachable Redis');
    expect(await exists(join(dataDir, 'redis'))).toBe(false);
  });

  it('reports what redis-server said when it dies at start', async () => {
    const fake = join(dataDir, 'fake-redis-server');
    await writeFile(fake, '#!/bin/sh\necho "FATAL CONFIG FILE ERROR: bad directive" >&2\nexit 1\n');
    await chmod(fake, 0o755);

    const error = await rejection(ensure({ url: await unreachableUrl(), isDefault: true, redisServerBinary: fake }));
    expect(error.code).toBe('PORTICO_ERR_BROKER_UNAVAILABLE');
    expect(error.message).toContain('did not start: it exited with code 1');
    expect(error.message).toContain('FATAL CONFIG FILE ERROR: bad directive');
    expect(await exists(join(dataDir, 'redis', 'redis.pid'))).toBe(false);
  });

  it('gives up, and kills it, when redis-server never answers', async () => {
    const fake = join(dataDir, 'silent-redis-server');
    const pidFile = join(dataDir, 'silent.pid');
    await writeFile(fake, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 30\n`);
    await chmod(fake, 0o755);

    const started = Date.now();
    const error = await rejection(ensure({ url: await unreachableUrl(), isDefault: true, redisServerBinary: fake, startTimeoutMs: 700 }));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error.message).toContain('did not answer PING within 700 ms');
    expect(isAlive(Number((await readFile(pidFile, 'utf8')).trim()))).toBe(false);
  });
});
