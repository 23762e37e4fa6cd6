import { type HealthStatus } from '../registry.js';

/** What one active probe (HTTP or TCP) found: a status, and an output a human can act on. */
export interface ProbeResult {
  status: HealthStatus;
  /** Consul-style text: what was probed and what came back (a response excerpt, or the failure). */
  output: string;
}

/** Options every probe accepts. */
export interface ProbeOptions {
  /**
   * Ends the probe early (the health checker aborts in-flight probes on close). An aborted probe
   * resolves `critical` with an output saying so; it never rejects.
   */
  signal?: AbortSignal;
}
