import { type ClientRequest, type IncomingMessage } from 'node:http';
import { AgentError } from '../agent-error.js';
import { Backoff } from '../backoff.js';
import { type ControlPlaneClient, errorFromResponse } from '../control-plane-client.js';
import { requestFunction } from '../http-transport.js';
import { type Logger } from '../logger.js';
import { type SseEvent, SseParser } from './sse-parser.js';

export interface EventStreamHandlers {
  /** The control plane is subscribed: every change from now on will arrive. `resumed`: sent with Last-Event-ID. */
  onLive(resumed: boolean): void;
  onEvent(event: SseEvent): void;
  /** The connection dropped; it is being re-opened. */
  onDown(error: AgentError): void;
  /** The control plane refused the token: the stream stays closed. */
  onFatal(error: AgentError): void;
}

export interface EventStreamOptions {
  client: ControlPlaneClient;
  logger: Logger;
  reconnect: { initialMs: number; maxMs: number };
  /** The stream's path under `/api/v1/` (default `events`, the registry's; the gateway also follows `routes/events`). */
  path?: string;
  /** What the stream is called in errors (default `the registry's event stream`). */
  name?: string;
  /**
   * Silence after which the connection counts as dead (default 45 s): the control plane sends a
   * keep-alive comment every 15 s, so three missed ones mean a half-open connection.
   */
  idleTimeoutMs?: number;
}

/**
 * `GET /api/v1/events` held open, over `node:http` (the browser's EventSource cannot send the bearer
 * token). Reconnects with capped, jittered backoff and resumes with `Last-Event-ID`, so the control
 * plane replays what was missed, or sends a `reset` with the whole registry when it cannot.
 * Another of the control plane's streams (`path`) is followed the same way.
 */
export class EventStream {
  readonly #options: EventStreamOptions;
  readonly #handlers: EventStreamHandlers;
  readonly #backoff: Backoff;
  readonly #parser: SseParser;
  #lastEventId: string | undefined;
  #request: ClientRequest | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #resumed = false;

  constructor(options: EventStreamOptions, handlers: EventStreamHandlers) {
    this.#options = options;
    this.#handlers = handlers;
    this.#backoff = new Backoff(options.reconnect);
    this.#parser = new SseParser({
      onEvent: (event) => {
        if (event.id !== undefined) this.#lastEventId = event.id;
        this.#handlers.onEvent(event);
      },
      onComment: (text) => {
        if (text !== 'connected') return;
        this.#backoff.reset();
        this.#handlers.onLive(this.#resumed);
      },
    });
  }

  /** The id of the last event received: where a reconnection resumes. */
  get lastEventId(): string | undefined {
    return this.#lastEventId;
  }

  open(): void {
    void this.#connect();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#request?.destroy();
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const { client } = this.#options;
    const url = client.url(this.#options.path ?? 'events');
    const headers: Record<string, string> = { authorization: client.authorization, accept: 'text/event-stream' };
    this.#resumed = this.#lastEventId !== undefined;
    if (this.#lastEventId !== undefined) headers['last-event-id'] = this.#lastEventId;
    this.#parser.reset();
    let settled = false;
    const down = (error: AgentError) => {
      if (settled) return;
      settled = true;
      this.#request = undefined;
      if (this.#closed) return;
      if (error.fatal) return this.#handlers.onFatal(error);
      this.#handlers.onDown(error);
      this.#timer = setTimeout(() => void this.#connect(), this.#backoff.next());
    };
    const unreachable = (reason: string, cause?: unknown) =>
      new AgentError(`${this.#options.name ?? "the registry's event stream"} at ${url.origin}: ${reason}`, { kind: 'unavailable', code: 'PORTICO_ERR_AGENT_UNREACHABLE', cause });

    const request = (await requestFunction(url))(url, { headers, agent: await client.pool() });
    this.#request = request;
    request.setTimeout(this.#options.idleTimeoutMs ?? 45_000, () => request.destroy(new Error('no data or keep-alive within the idle timeout')));
    request.on('error', (error) => down(unreachable(error.message, error)));
    request.on('response', (response: IncomingMessage) => {
      if (response.statusCode !== 200) {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (body.length < 65_536) body += chunk;
        });
        response.on('end', () => down(errorFromResponse('opening the event stream', { status: response.statusCode ?? 0, headers: response.headers, body })));
        response.on('error', (error) => down(unreachable(error.message, error)));
        return;
      }
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => this.#parser.push(chunk));
      response.on('end', () => down(unreachable('the control plane closed the stream')));
      response.on('error', (error) => down(unreachable(error.message, error)));
      response.on('close', () => down(unreachable('the connection closed')));
    });
    request.end();
  }
}
