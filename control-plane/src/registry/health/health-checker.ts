import { setMaxListeners } from 'node:events';
import { type Agent } from 'undici';
import { DEFAULT_CHECK_INTERVAL_MS, DEFAULT_CHECK_TIMEOUT_MS, MIN_CHECK_INTERVAL_MS } from '../registry.js';
import { createHttpProbeAgent, probeHttp } from './probe-http.js';
import { type ProbeResult } from './probe-result.js';
import { parseHostPort, probeTcp } from './probe-tcp.js';

/**
 * A check for the health checker to run: what to probe and how often. The registry builds it from a
 * `CheckDefinition`; TTL checks are not run here (they have nothing to probe).
 */
export interface ScheduledCheck {
  /** The check's id; scheduling the same id again replaces the check. */
  id: string;
  kind: 'http' | 'tcp';
  /** Time between the end of one probe and the start of the next; raised to `MIN_CHECK_INTERVAL_MS`. */
  intervalMs: number;
  /** Time one probe may take. */
  timeoutMs: number;
  /** `http`: the URL probed, exactly as given. */
  http?: string;
  /** `http`: default `GET`. */
  method?: string;
  /** `http`: request headers. */
  headers?: Record<string, string>;
  /** `tcp`: the `host:port` (`[v6]:port`) connected to, exactly as given. */
  tcp?: string;
}

/** Options of {@link HealthChecker}. */
export interface HealthCheckerOptions {
  /**
   * Receives every probe's result. Results of one check arrive one at a time, in order: the check's
   * next probe is not scheduled until this returns (or its promise settles), so a handler that never
   * settles stalls its check. Whatever it throws is logged, and the check keeps running.
   */
  onResult: (checkId: string, result: ProbeResult) => void | Promise<void>;
  /** The most probes in flight at once, across all checks; the rest wait their turn in order. Default 64. */
  concurrency?: number;
  /** Where failures of `onResult` are reported (a pino logger fits); default: nowhere. */
  logger?: { warn(obj: object, msg?: string): void };
}

/** How far a later run may stray from the interval, either way, so checks that met stay apart. */
const RERUN_JITTER = 0.1;
const DEFAULT_CONCURRENCY = 64;
/** How long `close()` waits for runs in flight (their probes are aborted, so only `onResult` can be slow). */
const CLOSE_WAIT_MS = 5_000;

interface Entry {
  check: ScheduledCheck;
  /** `waiting` for its timer, `queued` for a free slot, or `running` (probing, then handing over the result). */
  state: 'waiting' | 'queued' | 'running';
  timer: NodeJS.Timeout | undefined;
  /** Moves when the check is replaced; a run that started on an older version drops its result. */
  version: number;
  removed: boolean;
}

/**
 * Runs HTTP and TCP health checks on their intervals and hands each result to `onResult`.
 *
 * - A check's first probe comes after a random delay within its interval, and later ones an interval
 *   (±10 %) after the previous probe ended, so checks registered together do not probe together and a
 *   probe never overlaps the same check's previous one.
 * - At most `concurrency` probes are in flight; the rest wait in a first-in, first-out queue.
 * - It probes exactly the URL or address each check names. Making that the instance's own address (so
 *   a registration cannot turn the control plane into a scanner of other hosts) is the registry's job.
 * - Its timers and idle connections never keep the process alive.
 */
export class HealthChecker {
  readonly #onResult: HealthCheckerOptions['onResult'];
  readonly #concurrency: number;
  readonly #logger: NonNullable<HealthCheckerOptions['logger']>;
  readonly #entries = new Map<string, Entry>();
  readonly #queue: Entry[] = [];
  readonly #runs = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  /** One HTTP agent per probe timeout (see `createHttpProbeAgent`); checks share a few timeouts in practice. */
  readonly #agents = new Map<number, Agent>();
  #probing = 0;
  #closing: Promise<void> | undefined;

  constructor(options: HealthCheckerOptions) {
    this.#onResult = options.onResult;
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.#concurrency = Number.isFinite(concurrency) && concurrency >= 1 ? Math.floor(concurrency) : DEFAULT_CONCURRENCY;
    this.#logger = options.logger ?? { warn: () => undefined };
    // Every probe in flight listens on this one signal; that is by design, not a leak.
    setMaxListeners(0, this.#abort.signal);
  }

  /** How many checks are scheduled. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Start running a check, or replace the one scheduled under the same id. Scheduling an identical
   * check again (a re-registration) keeps its rhythm; a changed one starts again after a random delay
   * within its interval, and a result of its previous definition still in flight is dropped. Does
   * nothing once closed.
   */
  schedule(check: ScheduledCheck): void {
    if (this.#closing !== undefined) return;
    const next = normalise(check);
    const entry = this.#entries.get(check.id);
    if (entry === undefined) {
      const created: Entry = { check: next, state: 'waiting', timer: undefined, version: 0, removed: false };
      this.#entries.set(check.id, created);
      this.#arm(created, firstDelay(next.intervalMs));
      return;
    }
    if (sameCheck(entry.check, next)) return;
    entry.check = next;
    entry.version += 1;
    // A queued entry runs the new definition when its turn comes; a running one re-arms when it ends.
    if (entry.state === 'waiting') {
      clearTimeout(entry.timer);
      this.#arm(entry, firstDelay(next.intervalMs));
    }
  }

  /** Stop running a check; a result of it still in flight is dropped. Returns whether it was scheduled. */
  unschedule(id: string): boolean {
    const entry = this.#entries.get(id);
    if (entry === undefined) return false;
    this.#entries.delete(id);
    entry.removed = true;
    clearTimeout(entry.timer);
    return true;
  }

  /**
   * Stop every check: no probe starts after this, probes in flight are aborted and their results
   * dropped, and the `onResult` calls already under way are awaited (for at most 5 s). Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    for (const entry of this.#entries.values()) {
      entry.removed = true;
      clearTimeout(entry.timer);
    }
    this.#entries.clear();
    this.#queue.length = 0;
    this.#abort.abort();
    // Destroying the agents also ends probes whose connection is still opening, which an abort cannot.
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    await Promise.allSettled(agents.map((agent) => agent.destroy()));
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_WAIT_MS);
      timer.unref();
    });
    await Promise.race([Promise.allSettled([...this.#runs]), bound]);
    clearTimeout(timer);
  }

  #arm(entry: Entry, delayMs: number): void {
    entry.state = 'waiting';
    entry.timer = setTimeout(() => this.#enqueue(entry), delayMs);
    entry.timer.unref();
  }

  #enqueue(entry: Entry): void {
    entry.timer = undefined;
    if (entry.removed) return;
    entry.state = 'queued';
    this.#queue.push(entry);
    this.#drain();
  }

  #drain(): void {
    while (this.#probing < this.#concurrency) {
      const entry = this.#queue.shift();
      if (entry === undefined) return;
      if (entry.removed) continue;
      const run = this.#run(entry).finally(() => this.#runs.delete(run));
      this.#runs.add(run);
    }
  }

  async #run(entry: Entry): Promise<void> {
    entry.state = 'running';
    const { check, version } = entry;
    this.#probing += 1;
    let result: ProbeResult;
    try {
      result = await this.#probe(check);
    } catch (error) {
      // The probes never reject; this keeps a bug in one from stopping its check for good.
      this.#logger.warn({ err: error, checkId: check.id }, 'health checker: probe failed unexpectedly');
      result = { status: 'critical', output: 'The probe failed unexpectedly.' };
    } finally {
      this.#probing -= 1;
      this.#drain();
    }
    if (entry.removed) return;
    if (entry.version === version) {
      try {
        await this.#onResult(check.id, result);
      } catch (error) {
        this.#logger.warn({ err: error, checkId: check.id }, 'health checker: onResult failed');
      }
      if (entry.removed) return;
    }
    const interval = entry.check.intervalMs;
    this.#arm(entry, entry.version === version ? rerunDelay(interval) : firstDelay(interval));
  }

  #agentFor(timeoutMs: number): Agent {
    let agent = this.#agents.get(timeoutMs);
    if (agent === undefined) {
      agent = createHttpProbeAgent(timeoutMs);
      this.#agents.set(timeoutMs, agent);
    }
    return agent;
  }

  #probe(check: ScheduledCheck): Promise<ProbeResult> {
    const signal = this.#abort.signal;
    if (check.kind === 'http') {
      if (check.http === undefined) return Promise.resolve({ status: 'critical', output: 'HTTP check without a URL' });
      const target = { url: check.http, method: check.method, headers: check.headers, timeoutMs: check.timeoutMs };
      return probeHttp(target, { dispatcher: this.#agentFor(check.timeoutMs), signal });
    }
    const address = check.tcp === undefined ? undefined : parseHostPort(check.tcp);
    if (address === undefined) {
      return Promise.resolve({ status: 'critical', output: `TCP connect ${check.tcp ?? ''}: not a host:port address` });
    }
    return probeTcp({ ...address, timeoutMs: check.timeoutMs }, { signal });
  }
}

function normalise(check: ScheduledCheck): ScheduledCheck {
  const intervalMs = Number.isFinite(check.intervalMs) ? Math.max(check.intervalMs, MIN_CHECK_INTERVAL_MS) : DEFAULT_CHECK_INTERVAL_MS;
  const timeoutMs = Number.isFinite(check.timeoutMs) && check.timeoutMs > 0 ? check.timeoutMs : Math.min(DEFAULT_CHECK_TIMEOUT_MS, intervalMs);
  const normalised: ScheduledCheck = { id: check.id, kind: check.kind, intervalMs, timeoutMs };
  if (check.http !== undefined) normalised.http = check.http;
  if (check.method !== undefined) normalised.method = check.method;
  if (check.headers !== undefined) normalised.headers = { ...check.headers };
  if (check.tcp !== undefined) normalised.tcp = check.tcp;
  return normalised;
}

function sameCheck(a: ScheduledCheck, b: ScheduledCheck): boolean {
  return (
    a.kind === b.kind &&
    a.intervalMs === b.intervalMs &&
    a.timeoutMs === b.timeoutMs &&
    a.http === b.http &&
    a.method === b.method &&
    a.tcp === b.tcp &&
    sameHeaders(a.headers, b.headers)
  );
}

function sameHeaders(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const left = Object.entries(a ?? {});
  const right = b ?? {};
  return left.length === Object.keys(right).length && left.every(([name, value]) => right[name] === value);
}

function firstDelay(intervalMs: number): number {
  return Math.random() * intervalMs;
}

function rerunDelay(intervalMs: number): number {
  return intervalMs * (1 + (Math.random() * 2 - 1) * RERUN_JITTER);
}
