import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { type Logger } from 'pino';

/** How a supervised command ended. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when it could not be started at all. */
  error?: Error;
}

/** The exit code a shell would report for `exit`: the code, or 128 + the signal's number. */
export function exitCodeOf(exit: ChildExit): number {
  if (exit.code !== null) return exit.code;
  if (exit.signal !== null) return 128 + (constants.signals[exit.signal] ?? 0);
  return 1;
}

/**
 * The service the sidecar started: stdio passed through, signals forwarded on request, stopped with
 * SIGTERM and, after a grace period, SIGKILL.
 */
export class SupervisedChild {
  readonly exited: Promise<ChildExit>;
  readonly #child: ChildProcess;
  #exit: ChildExit | undefined;

  constructor(command: string[], log: Logger) {
    const [file = '', ...args] = command;
    this.#child = spawn(file, args, { stdio: 'inherit' });
    this.exited = new Promise<ChildExit>((resolve) => {
      this.#child.once('error', (error) => {
        // Only a failure to start ends it here; a failed kill() leaves the child running.
        if (this.#child.pid !== undefined) return;
        this.#exit = { code: null, signal: null, error };
        resolve(this.#exit);
      });
      this.#child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
    if (this.#child.pid !== undefined) log.info({ childPid: this.#child.pid, command }, 'started the service');
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Pass a signal on (SIGHUP, SIGUSR2: the service's own business). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.#child.kill(signal);
  }

  /** Send `signal`, wait up to `timeoutMs` for the exit, then SIGKILL. */
  async stop(signal: NodeJS.Signals, timeoutMs: number, log: Logger): Promise<ChildExit> {
    if (!this.running) return this.exited;
    this.#child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    const first = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (first !== 'late') return first;
    log.warn({ timeoutMs }, `the service did not exit within ${timeoutMs} ms of ${signal}: killing it`);
    this.#child.kill('SIGKILL');
    return this.exited;
  }
}
