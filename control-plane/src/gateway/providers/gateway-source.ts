/** How current what a source gives the gateway is. */
export interface SourceStatus {
  /** The first whole state (every service, or every route) has been read: the gateway may take traffic. */
  loaded: boolean;
  /** Following changes right now. `false` with `loaded`: serving the last known state while reconnecting. */
  live: boolean;
  /** Why the source is not live, when it is not. */
  reason?: string;
}

/**
 * Where a gateway that runs on its own (`portico gateway`) gets its registry or its routes: the
 * control plane's API and event streams, or Consul. The in-process gateway needs none of this: it reads
 * the control plane's registry backend and `RouteService` directly.
 */
export interface GatewaySource {
  /**
   * Connect and follow changes, never polling. Resolves once the first whole state is loaded; keeps
   * trying (capped, jittered backoff) while the source cannot be reached.
   * @throws PorticoError `PORTICO_ERR_CONFIG_INVALID` when the source refuses the gateway's credentials
   *   before anything was loaded (retrying cannot help). Once loaded, a refusal leaves the last known
   *   state in place, and `status()` says why it is no longer live.
   */
  start(): Promise<void>;
  /** Stop following and release the connections. Idempotent. */
  close(): Promise<void>;
  status(): SourceStatus;
}
