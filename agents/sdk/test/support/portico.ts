/**
 * Real processes for the agents' tests: the control plane (from its sources, through the control
 * plane's own test support), a small HTTP service whose health can be switched, and polling helpers.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { freePort, runControlPlane, type RunningProcess, waitForHttp } from '../../../../control-plane/test/support/control-plane-process.js';

export { freePort, run, type RunningProcess, waitForHttp, REPO_ROOT, cleanEnv } from '../../../../control-plane/test/support/control-plane-process.js';

/** Polling granularity of a test's `waitFor` plus one request to the control plane: added to a timing bound. */
export const OBSERVATION_MS = 100;

/**
 * Time for a control plane that has just started to answer a re-registration and the heartbeat after
 * it (its first requests compile their code paths). An agent sends them within one interval of the
 * restart, as its retry delay is capped at the interval; this is the allowance on top.
 */
export const COLD_ANSWER_MS = 300;

/** Resolve after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A service name no other test uses. */
export const uniqueService = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Poll `read` every `everyMs` until `until` holds; returns the value and when it held. Throws with the last value on timeout. */
export async function waitFor<T>(read: () => Promise<T>, until: (value: T) => boolean, timeoutMs = 10_000, everyMs = 20): Promise<{ value: T; at: number }> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await read();
      if (until(last)) return { value: last, at: Date.now() };
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
    await sleep(everyMs);
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read JSON bodies and assert on their fields
type Json = any;

export interface InstanceReading {
  id: string;
  service: string;
  health: 'passing' | 'warning' | 'critical';
  maintenance: { reason: string } | null;
  checks: Array<{ id: string; kind: string; status: string; output: string; ttl?: string; deregisterCriticalAfter?: string; lastResultAt: string | null }>;
}

/** A control plane in its own process, with an admin token of the test's choosing. */
export class ControlPlane {
  readonly adminToken = `agents-test-${randomBytes(24).toString('hex')}`;
  process!: RunningProcess;
  #logLevel = 'warn';
  #redisUrl: string | undefined;

  private constructor(
    readonly port: number,
    readonly dataDir: string,
  ) {}

  /** `logLevel` info makes it print "control plane listening", the moment a restart counts from; `redisUrl`: its Redis (default: the shared one). */
  static async start(options: { logLevel?: string; redisUrl?: string } = {}): Promise<ControlPlane> {
    const controlPlane = new ControlPlane(await freePort(), await mkdtemp(join(tmpdir(), 'portico-agents-')));
    controlPlane.#logLevel = options.logLevel ?? 'warn';
    controlPlane.#redisUrl = options.redisUrl;
    await controlPlane.#launch();
    return controlPlane;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async #launch(): Promise<void> {
    this.process = runControlPlane({
      PORTICO_PORT: String(this.port),
      PORTICO_DATA_DIR: this.dataDir,
      PORTICO_ADMIN_TOKEN: this.adminToken,
      PORTICO_LOG_LEVEL: this.#logLevel,
      ...(this.#redisUrl === undefined ? {} : { PORTICO_REDIS_URL: this.#redisUrl }),
    });
    await waitForHttp(`${this.url}/healthz`, 30_000);
  }

  /** Stop the process (SIGTERM unless told), keeping or wiping its data directory. */
  async stop(options: { signal?: NodeJS.Signals; wipe?: boolean } = {}): Promise<void> {
    await this.process.stop(options.signal ?? 'SIGTERM');
    if (options.wipe === true) await rm(this.dataDir, { recursive: true, force: true });
  }

  /**
   * Start it again on the same port and data directory. Resolves with when it began listening (its
   * log line, with `logLevel` info; else when /healthz first answered).
   */
  async restart(): Promise<number> {
    await this.#launch();
    if (this.#logLevel !== 'info' && this.#logLevel !== 'debug') return Date.now();
    let listeningAt = 0;
    await this.process.waitForOutput('control plane listening');
    const line = this.process.output().split('\n').find((text) => text.includes('control plane listening'));
    listeningAt = Number(/"time":(\d+)/.exec(line ?? '')?.[1] ?? Date.now());
    return listeningAt;
  }

  /** How many requests the control plane served on a route (its Prometheus counter). */
  async requestsServed(method: string, route: string): Promise<number> {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    let total = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('portico_http_requests_total{') && line.includes(`method="${method}"`) && line.includes(`route="${route}"`)) {
        total += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
    return total;
  }

  async close(): Promise<void> {
    await this.process?.stop('SIGKILL');
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /** A request to the admin API with the admin token (or another). */
  async api(path: string, init: { method?: string; body?: unknown; token?: string } = {}): Promise<{ status: number; body: Json }> {
    const response = await fetch(`${this.url}/api/v1/${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${init.token ?? this.adminToken}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
  }

  /** A new agent token for `services`; returns its secret. */
  async agentToken(services: string[]): Promise<{ id: string; secret: string }> {
    const { status, body } = await this.api('tokens', { method: 'POST', body: { name: `agent-${randomUUID()}`, role: 'agent', services } });
    if (status !== 201) throw new Error(`issuing a token failed: ${status} ${JSON.stringify(body)}`);
    return { id: body.token.id, secret: body.secret };
  }

  /** The instances of a service (none when it has none). */
  async instances(service: string): Promise<InstanceReading[]> {
    const { status, body } = await this.api(`services/${service}`);
    if (status === 404) return [];
    if (status !== 200) throw new Error(`GET services/${service}: ${status}`);
    return body.instances as InstanceReading[];
  }

  /** One instance, or undefined. */
  async instance(service: string, id: string): Promise<InstanceReading | undefined> {
    return (await this.instances(service)).find((instance) => instance.id === id);
  }

  /** Ids of the passing instances, through the Consul-compatible `?passing` read a gateway or client would use. */
  async passing(service: string): Promise<string[]> {
    const response = await fetch(`${this.url}/v1/health/service/${service}?passing`, { headers: { 'x-consul-token': this.adminToken } });
    const entries = (await response.json()) as Array<{ Service: { ID: string } }>;
    return entries.map((entry) => entry.Service.ID);
  }
}

/** A real HTTP service in this process: `/health` answers 200 while healthy, 500 otherwise; counts probes. */
export class HealthService {
  healthy = true;
  probes = 0;
  /** Delay before answering /health (to test timeouts). */
  delayMs = 0;

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<HealthService> {
    const port = await freePort();
    const holder: { service?: HealthService } = {};
    const server = createServer((request, response) => {
      const service = holder.service;
      if (request.url !== '/health' || service === undefined) {
        response.end('hello');
        return;
      }
      service.probes++;
      setTimeout(() => {
        response.statusCode = service.healthy ? 200 : 500;
        response.end(service.healthy ? 'ok' : 'database unreachable');
      }, service.delayMs);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    holder.service = new HealthService(server, port);
    return holder.service;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * A control plane and a health service for a test file: started before its tests, closed after them.
 * Read them inside tests (`portico.controlPlane`), once the hooks have run.
 */
export function usePortico(options: { logLevel?: string } = {}): { controlPlane: ControlPlane; service: HealthService } {
  const context = {} as { controlPlane: ControlPlane; service: HealthService };
  beforeAll(async () => {
    [context.controlPlane, context.service] = await Promise.all([ControlPlane.start(options), HealthService.start()]);
  });
  afterAll(async () => {
    await Promise.all([context.controlPlane?.close(), context.service?.close()]);
  });
  return context;
}
