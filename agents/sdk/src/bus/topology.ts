import { type AgentError } from '../agent-error.js';
import { ControlPlaneClient } from '../control-plane-client.js';
import { EventStream } from '../discovery/event-stream.js';
import { type Logger, silentLogger } from '../logger.js';

/** The topology document the control plane serves (`GET /api/v1/topology`) and streams (`topology/events`). */
export interface TopologyDocument {
  services: { service: string; queue: string; consumes: string[]; declaredAt: string }[];
  /** Message type → the services consuming it. */
  types: Record<string, string[]>;
}

/**
 * Who consumes which message type. A bus declares its own service's types through it when it starts,
 * and reads the subscribers of an event when it sends one.
 */
export interface TopologySource {
  /** Say which message types `service` consumes (replacing what it said before). */
  declare(service: string, types: readonly string[]): Promise<void>;
  /** Resolves once a topology is known (the first read); the bus relays nothing before. */
  ready(): Promise<void>;
  /** The services consuming `type` now (the last known state while the control plane is away). */
  subscribers(type: string): readonly string[];
  close(): Promise<void>;
}

/** A fixed topology: for tests, and services wired without a control plane. `declare` adds to it. */
export class StaticTopology implements TopologySource {
  readonly #types = new Map<string, Set<string>>();

  constructor(types: Record<string, readonly string[]> = {}) {
    for (const [type, services] of Object.entries(types)) this.#types.set(type, new Set(services));
  }

  declare(service: string, types: readonly string[]): Promise<void> {
    for (const set of this.#types.values()) set.delete(service);
    for (const type of types) {
      let set = this.#types.get(type);
      if (set === undefined) this.#types.set(type, (set = new Set()));
      set.add(service);
    }
    return Promise.resolve();
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  subscribers(type: string): readonly string[] {
    return [...(this.#types.get(type) ?? [])].sort();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export interface ControlPlaneTopologyOptions {
  /** The control plane, e.g. `http://127.0.0.1:8400`. */
  controlPlane: string | URL;
  /** An agent token for the service (or an operator's). */
  token: string;
  logger?: Logger;
  requestTimeoutMs?: number;
  reconnect?: { initialMs: number; maxMs: number };
}

/**
 * The topology as the control plane keeps it: declared with `PUT /api/v1/topology/services/:service`,
 * followed live through `GET /api/v1/topology/events` (the whole document on connect and after every
 * change). While the control plane is away the last document stays in force.
 */
export class ControlPlaneTopology implements TopologySource {
  readonly #client: ControlPlaneClient;
  readonly #stream: EventStream;
  readonly #logger: Logger;
  #types = new Map<string, readonly string[]>();
  #known = false;
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;
  #started = false;

  constructor(options: ControlPlaneTopologyOptions) {
    const baseUrl = new URL(options.controlPlane);
    this.#logger = options.logger ?? silentLogger;
    this.#client = new ControlPlaneClient({ baseUrl, token: options.token, requestTimeoutMs: options.requestTimeoutMs ?? 5_000 });
    this.#ready = new Promise((resolve) => (this.#resolveReady = resolve));
    this.#stream = new EventStream(
      { client: this.#client, logger: this.#logger, reconnect: options.reconnect ?? { initialMs: 250, maxMs: 10_000 }, path: 'topology/events', name: 'the topology event stream' },
      {
        onLive: () => undefined,
        onEvent: (event) => {
          if (event.event !== 'topology') return;
          try {
            this.#apply(JSON.parse(event.data) as TopologyDocument);
          } catch (error) {
            this.#logger.warn({ err: error }, 'the control plane sent a topology that cannot be read; keeping the last one');
          }
        },
        onDown: (error: AgentError) => this.#logger.warn({ err: error }, 'the topology event stream dropped; reconnecting'),
        onFatal: (error: AgentError) => this.#logger.error({ err: error }, 'the control plane refused the topology event stream'),
      },
    );
  }

  async declare(service: string, types: readonly string[]): Promise<void> {
    await this.#client.declareTopology(service, types);
    this.#start();
  }

  ready(): Promise<void> {
    this.#start();
    return this.#ready;
  }

  subscribers(type: string): readonly string[] {
    return this.#types.get(type) ?? [];
  }

  close(): Promise<void> {
    this.#stream.close();
    this.#client.close();
    return Promise.resolve();
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#stream.open();
  }

  #apply(document: TopologyDocument): void {
    this.#types = new Map(Object.entries(document.types).map(([type, services]) => [type, [...services].sort()]));
    if (!this.#known) {
      this.#known = true;
      this.#resolveReady();
    }
  }
}
