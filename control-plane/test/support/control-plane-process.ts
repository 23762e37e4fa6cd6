import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import getPort from 'get-port';

export const CONTROL_PLANE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const REPO_ROOT = join(CONTROL_PLANE_DIR, '..');

/** A port nothing listens on right now. */
export const freePort = (): Promise<number> => getPort({ host: '127.0.0.1' });

export interface RunningProcess {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  /** Resolves once `text` has appeared in the output; rejects after `timeoutMs` with the output so far. */
  waitForOutput(text: string | RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * The inherited environment without any PORTICO_* variable, so a developer's settings never leak into a
 * test. The gateway listens on a port of the system's choosing unless a test names one, so that control
 * planes started side by side never compete for the default gateway port.
 */
export function cleanEnv(overrides: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PORTICO_')) env[key] = value;
  return { ...env, PORTICO_GATEWAY_PORT: '0', ...overrides };
}

export function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): RunningProcess {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    for (const check of waiters) check();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      for (const check of waiters) check();
      resolve(code ?? signal ?? -1);
    });
  });
  const matches = (text: string | RegExp) => (typeof text === 'string' ? output.includes(text) : text.test(output));
  return {
    child,
    output: () => output,
    exited,
    waitForOutput: (text, timeoutMs = 20_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${String(text)}; output so far:\n${output}`));
        }, timeoutMs);
        const check = () => {
          if (matches(text)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            waiters.delete(check);
            reject(new Error(`process exited (${child.exitCode ?? child.signalCode}) before ${String(text)}; output:\n${output}`));
          }
        };
        waiters.add(check);
        check();
      }),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * The control plane as one Node process (no npm launcher in between): from its sources through tsx, or
 * `built`: the bundle `npm start` runs (`dist/main.js`; build it first with `buildControlPlane`).
 * `args` follow the entry point: `['gateway']` runs the gateway alone, as `npm run gateway` does.
 */
export function runControlPlane(env: Record<string, string>, options: { built?: boolean; args?: string[] } = {}): RunningProcess {
  const entry = options.built === true ? [...startNodeFlags(), join(CONTROL_PLANE_DIR, 'dist', 'main.js')] : ['--import', 'tsx', join(CONTROL_PLANE_DIR, 'src', 'main.ts')];
  return run(process.execPath, [...nodeArgs(), ...entry, ...(options.args ?? [])], { cwd: CONTROL_PLANE_DIR, env: cleanEnv(env) });
}

/** Bundle the control plane as `npm start` does. */
export async function buildControlPlane(): Promise<void> {
  const build = run('npm', ['run', '--silent', 'build'], { cwd: CONTROL_PLANE_DIR, env: cleanEnv({}) });
  const code = await build.exited;
  if (code !== 0) throw new Error(`building the control plane failed (exit ${String(code)}): ${build.output()}`);
}

/** The Node flags `npm start` runs the bundle with, read from the root package.json so they are said once. */
function startNodeFlags(): string[] {
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const flags = /exec node (.*?)\s*control-plane\/dist\/main\.js/.exec(manifest.scripts.start ?? '')?.[1];
  if (flags === undefined) throw new Error('the root package.json start script no longer runs "exec node [flags] control-plane/dist/main.js"');
  return flags.split(' ').filter((flag) => flag !== '');
}

/** Extra Node flags for the control plane under test or benchmark, e.g. `PORTICO_TEST_NODE_ARGS="--cpu-prof"`. */
function nodeArgs(): string[] {
  return process.env.PORTICO_TEST_NODE_ARGS?.split(' ').filter((arg) => arg !== '') ?? [];
}

/** Poll `url` until it answers 200 or the deadline passes; returns the elapsed milliseconds. */
export async function waitForHttp(url: string, timeoutMs = 20_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      const res = await fetch(url);
      if (res.status === 200) return Date.now() - started;
    } catch {
      // not listening yet
    }
    if (Date.now() - started > timeoutMs) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
