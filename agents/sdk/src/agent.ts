import { EventEmitter } from 'node:events';
import { AgentError, isAgentError } from './agent-error.js';
import { resolveAgentConfig, type AgentConfig, type AgentOptions } from './agent-options.js';
import { Backoff } from './backoff.js';
import { type CheckResult, createLocalCheck, type LocalCheck } from './checks/local-check.js';
import { ControlPlaneClient } from './control-plane-client.js';
import { Discovery, type ResolvedInstance } from './discovery/discovery.js';
import { type Logger, silentLogger } from './logger.js';
import { type HealthStatus, type InstanceView, type RegistrationBody } from './registry-types.js';

/** The maintenance reason an agent sets while it drains; recognised (and cleared) when it starts again. */
export const DRAIN_REASON = 'portico-agent: draining before shutdown';

/** Why the agent (re-)registered. */
export type RegistrationReason = 'start' | 'reconnect' | 'lost';

/** The agent's events. */
export interface AgentEvents {
  /** The control plane holds the instance: at start, after an outage, or after it lost the instance. */
  registered: [{ id: string; reason: RegistrationReason }];
  /** The local check's status changed (the first result counts as a change). */
  check: [CheckResult & { previous: HealthStatus | undefined }];
  /** The control plane stopped answering; the agent retries with backoff and keeps checking locally. */
  disconnected: [AgentError];
  /** The instance is in maintenance and the drain period has begun. */
  draining: [{ drainMs: number }];
  /**
   * The control plane refused the agent for good (token wrong or revoked, service not allowed,
   * registration invalid). The agent has stopped heartbeating; the process should exit.
   */
  fatal: [AgentError];
  /** `stop()` finished: deregistered (or given up on), connections closed. */
  stopped: [];
}

type Connection = 'unknown' | 'connected' | 'disconnected' | 'failed';

/**
 * A Portico agent: registers one instance of a service, runs its health check locally on an interval,
 * reports each result as a TTL heartbeat, re-registers when the control plane lost the instance or
 * comes back after an outage (the agent's local state wins, as with Consul's anti-entropy), and
 * drains and deregisters on `stop()`. The sidecar (`portico-agent`) is this class plus a command line
 * and a supervised child process.
 *
 * Lifecycle: `start()` once, `stop()` once (both idempotent). Talks to the control plane one request
 * at a time, so a heartbeat, a re-registration and the shutdown never race each other.
 */
export class Agent extends EventEmitter<AgentEvents> {
  /** The instance id, given or derived (see `defaultInstanceId`). */
  readonly id: string;
  readonly service: string;
  /** The resolved settings (durations in ms). */
  readonly config: AgentConfig;

  readonly #client: ControlPlaneClient;
  readonly #check: LocalCheck;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  #connection: Connection = 'unknown';
  #lifecycle: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  #last: CheckResult | undefined;
  #tickTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  /** The request to the control plane in flight, if any (all of them go through `#serial`). */
  #busy: Promise<unknown> = Promise.resolve();
  #disconnectedAt = 0;
  #registeredOnce = false;
  #stopped: Promise<void> | undefined;
  #skipDrain: (() => void) | undefined;
  #drainSkipped = false;
  /** Made on the first `resolve`: an agent that never discovers never opens the event stream. */
  #discovery: Discovery | undefined;

  constructor(options: AgentOptions) {
    super();
    this.config = resolveAgentConfig(options);
    this.id = this.config.id;
    this.service = this.config.service;
    this.#log = options.logger ?? silentLogger;
    this.#client = new ControlPlaneClient({ baseUrl: this.config.controlPlane, token: options.token, requestTimeoutMs: this.config.requestTimeoutMs });
    this.#check = createLocalCheck(options.health, { address: this.config.address, port: this.config.port });
    this.#backoff = new Backoff({ initialMs: this.config.reconnect.initialMs, maxMs: this.config.reconnect.maxMs });
  }

  /** Whether the control plane currently holds the instance as this agent last told it. */
  get connected(): boolean {
    return this.#connection === 'connected';
  }

  /** The local check's latest result. */
  get lastCheck(): CheckResult | undefined {
    return this.#last;
  }

  /**
   * Register the instance and begin checking and heartbeating. Resolves once the control plane has the
   * instance, or once it was found unreachable (the agent then keeps retrying in the background and
   * emits `registered` when it gets through: a service should not wait on its control plane to start).
   * @throws AgentError when the control plane refuses the agent for good (`error.fatal`): a wrong or
   *   revoked token (401), a token not issued for this service (403), an invalid registration (400).
   */
  async start(): Promise<void> {
    if (this.#lifecycle !== 'idle') throw new AgentError('start() was called already', { kind: 'invalid_options', code: 'PORTICO_ERR_AGENT_STOPPED' });
    this.#lifecycle = 'running';
    this.#log.info({ instanceId: this.id, service: this.service, check: this.#check.description, intervalMs: this.config.intervalMs, ttlMs: this.config.ttlMs }, 'agent starting');
    try {
      await this.#serial(() => this.#register('start'));
    } catch (error) {
      const failure = this.#asAgentError(error);
      if (failure.fatal) {
        this.#connection = 'failed';
        this.#lifecycle = 'stopped';
        this.#client.close();
        this.#log.error({ err: failure, code: failure.code, statusCode: failure.statusCode }, failure.message);
        throw failure;
      }
      this.#onUnavailable(failure);
    }
    this.#scheduleTick(0);
  }

  /**
   * Leave gracefully: stop heartbeating, put the instance in maintenance (it leaves every `passing`
   * read, so no new traffic is routed to it), wait the drain period, deregister, close connections.
   * When the control plane cannot be reached the drain is skipped (nothing can be told) and the
   * instance is left to its TTL and `deregisterAfter`. Never rejects.
   * @param options.drain `false` to deregister at once (e.g. the service has exited already).
   */
  stop(options: { drain?: boolean } = {}): Promise<void> {
    this.#stopped ??= this.#stop(options.drain !== false);
    return this.#stopped;
  }

  /** End the drain period now (the sidecar does on a second SIGTERM). */
  skipDrain(): void {
    this.#drainSkipped = true;
    this.#skipDrain?.();
  }

  /**
   * The healthy (passing) instances of a service, from a cache the registry's event stream keeps
   * current. The first call for a service reads it once; later calls answer from memory. See `Discovery`.
   */
  resolve(service: string): Promise<ResolvedInstance[]> {
    return this.#discoveryInstance().resolve(service);
  }

  /** The next healthy instance of a service, round robin; `undefined` when it has none. */
  pick(service: string): Promise<ResolvedInstance | undefined> {
    return this.#discoveryInstance().pick(service);
  }

  #discoveryInstance(): Discovery {
    this.#discovery ??= new Discovery({ client: this.#client, logger: this.#log, reconnect: { initialMs: 250, maxMs: 10_000 }, waitMs: this.config.requestTimeoutMs });
    return this.#discovery;
  }

  #registrationBody(): RegistrationBody {
    const { config } = this;
    const check: RegistrationBody['checks'][number] = {
      kind: 'ttl',
      name: `portico-agent: ${this.#check.description}`,
      ttl: `${config.ttlMs}ms`,
      notes: `Reported by a Portico agent every ${config.intervalMs} ms; the check runs on the service's machine.`,
    };
    if (config.deregisterAfterMs !== undefined) check.deregisterCriticalAfter = `${config.deregisterAfterMs}ms`;
    if (this.#last !== undefined) check.status = this.#last.status;
    const body: RegistrationBody = { service: config.service, address: config.address, port: config.port, checks: [check] };
    if (config.tags.length > 0) body.tags = config.tags;
    if (Object.keys(config.meta).length > 0) body.meta = config.meta;
    return body;
  }

  /** One request at a time to the control plane, in the order asked. */
  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#busy.then(work);
    this.#busy = run.catch(() => undefined);
    return run;
  }

  /** Register with the full local state, then send the latest result with its output. */
  async #register(reason: RegistrationReason): Promise<void> {
    const view: InstanceView = await this.#client.register(this.id, this.#registrationBody());
    // A maintenance this agent set before it was killed mid-drain would otherwise outlive it; an
    // operator's maintenance (any other reason) is left alone.
    if (view.maintenance?.reason === DRAIN_REASON && this.#lifecycle === 'running') await this.#client.setMaintenance(this.id, false, '');
    if (this.#last !== undefined) await this.#client.heartbeat(this.id, this.#last);
    const outageMs = this.#connection === 'disconnected' ? Date.now() - this.#disconnectedAt : undefined;
    const attempts = this.#backoff.attempts;
    this.#connection = 'connected';
    this.#registeredOnce = true;
    this.#backoff.reset();
    this.#log.info({ instanceId: this.id, reason, ...(outageMs === undefined ? {} : { outageMs, attempts }) }, reason === 'start' ? 'registered' : `registered again (${reason})`);
    this.emit('registered', { id: this.id, reason });
  }

  #scheduleTick(delayMs: number): void {
    if (this.#lifecycle !== 'running') return;
    this.#tickTimer = setTimeout(() => void this.#tick(), delayMs);
  }

  /** Run the local check, report it, and come back one interval after this tick began. */
  async #tick(): Promise<void> {
    const startedAt = Date.now();
    const result = await this.#check.run(this.config.timeoutMs);
    if (this.#lifecycle !== 'running') return;
    this.#record(result);
    if (this.#connection === 'connected') await this.#serial(() => this.#report(result));
    this.#scheduleTick(Math.max(0, startedAt + this.config.intervalMs - Date.now()));
  }

  #record(result: CheckResult): void {
    const previous = this.#last?.status;
    this.#last = result;
    if (previous !== result.status) {
      const level = result.status === 'passing' ? 'info' : 'warn';
      this.#log[level]({ instanceId: this.id, status: result.status, previous, output: result.output }, `local check ${result.status}`);
      this.emit('check', { ...result, previous });
    }
  }

  /** A heartbeat; on "lost", re-register at once; on failure, hand over to the retry loop. */
  async #report(result: CheckResult): Promise<void> {
    if (this.#lifecycle !== 'running' || this.#connection !== 'connected') return;
    try {
      await this.#client.heartbeat(this.id, result);
    } catch (error) {
      const failure = this.#asAgentError(error);
      if (failure.kind !== 'lost') return this.#onFailure(failure);
      this.#log.warn({ instanceId: this.id, code: failure.code }, 'the control plane no longer has this instance: registering it again');
      try {
        await this.#register('lost');
      } catch (again) {
        this.#onFailure(this.#asAgentError(again));
      }
    }
  }

  #onFailure(failure: AgentError): void {
    if (failure.fatal) this.#fail(failure);
    else this.#onUnavailable(failure);
  }

  /** Unreachable (or lost again while re-registering): retry with backoff; the local check goes on. */
  #onUnavailable(failure: AgentError): void {
    if (this.#lifecycle !== 'running') return;
    if (this.#connection !== 'disconnected') {
      this.#connection = 'disconnected';
      this.#disconnectedAt = Date.now();
      this.#log.warn({ instanceId: this.id, code: failure.code, err: failure.message }, 'control plane unreachable: retrying with backoff; the local check keeps running');
      this.emit('disconnected', failure);
    } else {
      this.#log.debug({ instanceId: this.id, code: failure.code, attempts: this.#backoff.attempts }, 'control plane still unreachable');
    }
    const delay = this.#backoff.next();
    this.#retryTimer = setTimeout(() => void this.#serial(() => this.#reconnect()), delay);
  }

  async #reconnect(): Promise<void> {
    if (this.#lifecycle !== 'running') return;
    try {
      await this.#register(this.#registeredOnce ? 'reconnect' : 'start');
    } catch (error) {
      this.#onFailure(this.#asAgentError(error));
    }
  }

  #fail(failure: AgentError): void {
    if (this.#lifecycle !== 'running') return;
    this.#connection = 'failed';
    this.#lifecycle = 'stopped';
    clearTimeout(this.#tickTimer);
    clearTimeout(this.#retryTimer);
    this.#client.close();
    this.#log.error({ instanceId: this.id, code: failure.code, statusCode: failure.statusCode }, failure.message);
    this.emit('fatal', failure);
  }

  async #stop(drain: boolean): Promise<void> {
    if (this.#lifecycle === 'idle' || this.#lifecycle === 'stopped') {
      this.#lifecycle = 'stopped';
      await this.#closeDiscovery();
      this.#client.close();
      this.emit('stopped');
      return;
    }
    this.#lifecycle = 'stopping';
    clearTimeout(this.#tickTimer);
    clearTimeout(this.#retryTimer);
    await this.#busy;
    if (this.#connection === 'connected' && drain) await this.#drain();
    if (this.#connection !== 'failed') await this.#deregister();
    await this.#closeDiscovery();
    this.#client.close();
    this.#lifecycle = 'stopped';
    this.emit('stopped');
  }

  async #drain(): Promise<void> {
    try {
      await this.#client.setMaintenance(this.id, true, DRAIN_REASON);
    } catch (error) {
      const failure = this.#asAgentError(error);
      this.#log.warn({ instanceId: this.id, code: failure.code }, `could not enter maintenance, so not draining: ${failure.message}`);
      return;
    }
    const drainMs = this.config.drainMs;
    this.#log.info({ instanceId: this.id, drainMs }, 'in maintenance: draining before deregistering');
    this.emit('draining', { drainMs });
    if (this.#drainSkipped || drainMs === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, drainMs);
      this.#skipDrain = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#skipDrain = undefined;
  }

  async #deregister(): Promise<void> {
    try {
      await this.#client.deregister(this.id);
      this.#log.info({ instanceId: this.id }, 'deregistered');
    } catch (error) {
      const failure = this.#asAgentError(error);
      if (failure.kind === 'lost') return;
      this.#log.warn(
        { instanceId: this.id, code: failure.code },
        `could not deregister (${failure.message}); the registry marks the instance critical when its TTL runs out` +
          (this.config.deregisterAfterMs === undefined ? '' : ` and removes it ${this.config.deregisterAfterMs} ms later`),
      );
    }
  }

  async #closeDiscovery(): Promise<void> {
    await this.#discovery?.close();
  }

  #asAgentError(error: unknown): AgentError {
    if (isAgentError(error)) return error;
    return new AgentError(error instanceof Error ? error.message : String(error), { kind: 'unavailable', code: 'PORTICO_ERR_AGENT_UNREACHABLE', cause: error });
  }
}

/** An agent for one instance of a service; call `start()` to register it. See `Agent`. */
export function createAgent(options: AgentOptions): Agent {
  return new Agent(options);
}
