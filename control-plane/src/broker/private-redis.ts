/**
 * Makes sure there is a Redis to talk to: the one the operator named, the one at the default URL, or
 * (embedded mode, nothing configured) a private `redis-server` started in the data directory.
 */

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readFile, readlink, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { PorticoError } from '../errors.js';
import { RedisProbe, redactUrl } from './redis-probe.js';

/** The two log levels `ensureRedis` uses; a pino logger fits. */
export interface EnsureRedisLogger {
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
}

/** What `ensureRedis` needs to know. */
export interface EnsureRedisOptions {
  /** The configured Redis URL (`PORTICO_REDIS_URL` or its default). */
  url: string;
  /**
   * True when the operator named no Redis. Only then may a private `redis-server` stand in; a Redis
   * the operator named explicitly is never silently replaced.
   */
  isDefault: boolean;
  /** The data directory; the private Redis keeps its files (AOF, pidfile) in `<dataDir>/redis`. */
  dataDir: string;
  logger: EnsureRedisLogger;
  /** The executable to start, by name on the PATH or by path. Defaults to `redis-server`. */
  redisServerBinary?: string;
  /** How long a private Redis may take to answer PING after starting. Defaults to 10 s. */
  startTimeoutMs?: number;
}

/** The Redis to use, and how to let go of it. */
export interface EnsuredRedis {
  /** The URL to connect to: the configured one, or the private server's. */
  url: string;
  /** True when this process started the Redis (and `stop` ends it). */
  private: boolean;
  /**
   * Ends a private Redis cleanly (SIGTERM, so it flushes its append-only file; SIGKILL only if it
   * does not exit in time) and removes its pidfile. A no-op for a Redis this process did not start.
   * Idempotent.
   */
  stop(): Promise<void>;
}

const DEFAULT_START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const KILL_TIMEOUT_MS = 2_000;
const PORT_ATTEMPTS = 3;
const OUTPUT_TAIL_CHARS = 4_000;

/**
 * Finds or starts the Redis the control plane uses.
 *
 * 1. Something answers PING at `url`: use it.
 * 2. Otherwise, if the operator named that URL: fail, saying so.
 * 3. Otherwise, if `redis-server` is installed: start a private one on a free loopback port, with
 *    its append-only file in `<dataDir>/redis` (so queued messages survive a restart of the
 *    platform) and its pid in `<dataDir>/redis/redis.pid`. One left running by a crashed earlier
 *    run is stopped first, as two servers must not share one append-only file.
 * 4. Otherwise: fail, naming both ways out.
 *
 * The caller must call `stop()` on shutdown (including on SIGINT/SIGTERM); should the process exit
 * without it, an exit hook still sends the private Redis SIGTERM.
 *
 * @throws PorticoError `PORTICO_ERR_BROKER_UNAVAILABLE` in cases 2 and 4, or when a private Redis
 *   does not start (its output is included in the message).
 */
export async function ensureRedis(options: EnsureRedisOptions): Promise<EnsuredRedis> {
  const { url, logger } = options;
  const shownUrl = redactUrl(url);
  const probe = new RedisProbe(url);
  let unreachable: PorticoError;
  try {
    await probe.ping();
    logger.info({ redisUrl: shownUrl }, 'using the Redis at the configured URL');
    return { url, private: false, stop: () => Promise.resolve() };
  } catch (error) {
    unreachable = error as PorticoError;
  } finally {
    await probe.close();
  }

  if (!options.isDefault) {
    throw new PorticoError('PORTICO_ERR_BROKER_UNAVAILABLE', {
      message:
        `Nothing answers at PORTICO_REDIS_URL=${shownUrl} (${unreachable.message}). ` +
        'Start that Redis or correct the URL; to have Portico start a private redis-server instead, unset PORTICO_REDIS_URL.',
      cause: unreachable,
    });
  }

  const binaryName = options.redisServerBinary ?? 'redis-server';
  const binary = await findExecutable(binaryName);
  if (binary === undefined) {
    throw new PorticoError('PORTICO_ERR_BROKER_UNAVAILABLE', {
      message:
        `No Redis answers at ${shownUrl}, and ${binaryName} is not installed, so Portico cannot start a private one. ` +
        `Either install redis-server (e.g. "apt-get install redis-server") and start Portico again, ` +
        'or set PORTICO_REDIS_URL to a reachable Redis.',
      cause: unreachable,
    });
  }

  logger.warn({ redisUrl: shownUrl }, 'no Redis answers at the default URL: starting a private redis-server');
  return startPrivateRedis(binary, resolve(options.dataDir, 'redis'), logger, options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
}

async function startPrivateRedis(
  binary: string,
  dir: string,
  logger: EnsureRedisLogger,
  startTimeoutMs: number,
): Promise<EnsuredRedis> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pidFile = join(dir, 'redis.pid');
  await stopLeftoverRedis(pidFile, dir, logger);

  for (let attempt = 1; ; attempt++) {
    const port = await getPort({ host: '127.0.0.1' });
    const outcome = await launch(binary, dir, port, startTimeoutMs);
    if (outcome.ok) {
      const { child } = outcome;
      const stop = privateStopper(child, pidFile, logger);
      try {
        await writeFile(pidFile, `${child.pid}\n`);
      } catch (error) {
        await stop();
        throw new PorticoError('PORTICO_ERR_BROKER_UNAVAILABLE', {
          message: `The private redis-server started, but its pidfile ${pidFile} could not be written: ${String(error)}`,
          cause: error,
        });
      }
      const url = `redis://127.0.0.1:${port}`;
      logger.info({ redisUrl: url, pid: child.pid, dir }, 'private redis-server started');
      return { url, private: true, stop };
    }
    // Another process may take the port between get-port's check and redis-server's bind.
    if (!outcome.output.includes('Address already in use') || attempt >= PORT_ATTEMPTS) {
      throw new PorticoError('PORTICO_ERR_BROKER_UNAVAILABLE', {
        message: `The private redis-server (${binary}) did not start: ${outcome.reason}.\n--- redis-server output ---\n${outcome.output.trim()}`,
        cause: outcome.cause,
      });
    }
  }
}

type LaunchOutcome =
  | { ok: true; child: ChildProcess }
  | { ok: false; reason: string; output: string; cause?: unknown };

async function launch(binary: string, dir: string, port: number, startTimeoutMs: number): Promise<LaunchOutcome> {
  // `--save ""` turns off RDB snapshots: the append-only file alone is the persistence.
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no'];
  const child = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  // Later failures to signal it surface as 'error' events; with no listener they would crash the process.
  child.on('error', () => undefined);
  const exit = new Promise<string>((settle) => {
    child.once('exit', (code, signal) => settle(signal === null ? `it exited with code ${code}` : `it was ended by ${signal}`));
    child.once('error', (error) => settle(`it could not be run: ${error.message}`));
  });
  // 'close' comes once its output is fully read; that output usually says why it stopped.
  const closed = new Promise<void>((settle) => child.once('close', () => settle()));

  const probe = new RedisProbe(`redis://127.0.0.1:${port}`);
  const deadline = Date.now() + startTimeoutMs;
  let lastError: unknown;
  try {
    while (Date.now() < deadline) {
      const answer = await Promise.race([
        probe.ping().then(
          () => 'pong' as const,
          (error: unknown) => {
            lastError = error;
            return 'silent' as const;
          },
        ),
        exit.then(() => 'exited' as const),
      ]);
      if (answer === 'exited') break;
      if (answer === 'pong') {
        detachFromEventLoop(child);
        return { ok: true, child };
      }
      await sleep(50);
    }
  } finally {
    await probe.close();
  }

  const timedOut = child.exitCode === null && child.signalCode === null && child.pid !== undefined;
  if (timedOut) child.kill('SIGKILL');
  const reason = timedOut ? `it did not answer PING within ${startTimeoutMs} ms` : await exit;
  await Promise.race([closed, sleep(KILL_TIMEOUT_MS)]);
  return { ok: false, reason, output, cause: lastError };
}

/**
 * The running child must not keep the control plane alive on its own, and must not outlive it: it is
 * unref'd, and a process 'exit' hook (removed by `stop`) sends it SIGTERM.
 */
function detachFromEventLoop(child: ChildProcess): void {
  child.unref();
  for (const stream of [child.stdout, child.stderr]) {
    const handle = stream as unknown as { unref?: () => void } | null;
    handle?.unref?.();
  }
}

function privateStopper(child: ChildProcess, pidFile: string, logger: EnsureRedisLogger): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  const killOnExit = (): void => {
    child.kill('SIGTERM');
  };
  process.once('exit', killOnExit);
  let running = child.exitCode === null && child.signalCode === null;
  const exited = new Promise<void>((settle) => {
    child.once('exit', (code, signal) => {
      running = false;
      process.off('exit', killOnExit);
      settle();
      if (stopping === undefined) logger.warn({ pid: child.pid, code, signal }, 'private redis-server exited on its own');
    });
  });

  return () => {
    stopping ??= (async () => {
      process.off('exit', killOnExit);
      if (running) {
        // Hold the event loop open until it has gone, or the process could end half-way through.
        child.ref();
        child.kill('SIGTERM');
        if (!(await settledWithin(exited, STOP_TIMEOUT_MS))) {
          logger.warn({ pid: child.pid }, 'private redis-server ignored SIGTERM: killing it');
          child.kill('SIGKILL');
          await settledWithin(exited, KILL_TIMEOUT_MS);
        }
      }
      await removePidFileIfOurs(pidFile, child.pid);
      logger.info({ pid: child.pid }, 'private redis-server stopped');
    })();
    return stopping;
  };
}

/** Stops a private Redis that a crashed earlier run left behind, if the pidfile still names one. */
async function stopLeftoverRedis(pidFile: string, dir: string, logger: EnsureRedisLogger): Promise<void> {
  let text: string;
  try {
    text = await readFile(pidFile, 'utf8');
  } catch {
    return;
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
    if (await isOurRedisServer(pid, dir)) {
      logger.warn({ pid, pidFile }, 'stopping the private redis-server left running by an earlier run');
      await terminate(pid);
    } else {
      // The pid was reused by an unrelated process; never signal what we did not start.
      logger.warn({ pid, pidFile }, 'stale redis pidfile names a process that is not our redis-server: leaving it alone');
    }
  }
  await rm(pidFile, { force: true });
}

async function isOurRedisServer(pid: number, dir: string): Promise<boolean> {
  try {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
    // redis-server chdirs into its --dir, so the working directory tells ours from any other Redis.
    const [cwd, expected] = await Promise.all([readlink(`/proc/${pid}/cwd`), realpath(dir)]);
    return comm === 'redis-server' && cwd === expected;
  } catch {
    // No /proc (macOS, BSD): settle for the command name.
    try {
      const { stdout } = await promisify(execFile)('ps', ['-o', 'comm=', '-p', String(pid)]);
      return stdout.trim().endsWith('redis-server');
    } catch {
      return false;
    }
  }
}

async function terminate(pid: number): Promise<void> {
  signal(pid, 'SIGTERM');
  if (await waitUntilGone(pid, STOP_TIMEOUT_MS)) return;
  signal(pid, 'SIGKILL');
  await waitUntilGone(pid, KILL_TIMEOUT_MS);
}

async function waitUntilGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

async function removePidFileIfOurs(pidFile: string, pid: number | undefined): Promise<void> {
  try {
    if ((await readFile(pidFile, 'utf8')).trim() === String(pid)) await rm(pidFile, { force: true });
  } catch {
    // Already removed.
  }
}

/** Resolves `name` like a shell would: a path as it is, a bare name through PATH. */
async function findExecutable(name: string): Promise<string | undefined> {
  const candidates = name.includes('/')
    ? [resolve(name)]
    : (process.env.PATH ?? '')
        .split(delimiter)
        .filter((dir) => isAbsolute(dir))
        .map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, fsConstants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // Not here; try the next.
    }
  }
  return undefined;
}

function settledWithin(promise: Promise<void>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((settle) => {
    timer = setTimeout(() => settle(false), timeoutMs);
  });
  return Promise.race([promise.then(() => true), timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((settle) => setTimeout(settle, ms));
}
