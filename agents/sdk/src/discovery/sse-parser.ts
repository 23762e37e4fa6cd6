/** One Server-Sent Event, as dispatched. */
export interface SseEvent {
  /** The `id` field (the registry index), if the message had one. */
  id: string | undefined;
  /** The `event` field; `message` when absent, as in the spec. */
  event: string;
  data: string;
}

/**
 * An incremental `text/event-stream` parser (WHATWG HTML, "Parsing an event stream"): lines end in
 * CRLF, LF or CR; `field: value` lines accumulate; a blank line dispatches; `:` lines are comments,
 * handed to `onComment` (the control plane sends `: connected` once it is subscribed, and keep-alives).
 */
export class SseParser {
  readonly #onEvent: (event: SseEvent) => void;
  readonly #onComment: (text: string) => void;
  #buffer = '';
  #pendingCr = false;
  #id: string | undefined;
  #event = '';
  #data: string[] = [];

  constructor(handlers: { onEvent: (event: SseEvent) => void; onComment?: (text: string) => void }) {
    this.#onEvent = handlers.onEvent;
    this.#onComment = handlers.onComment ?? (() => undefined);
  }

  /** Feed decoded text as it arrives, in any chunking. */
  push(text: string): void {
    let chunk = text;
    // A CR ending the previous chunk was a line end; a LF starting this one belongs to it.
    if (this.#pendingCr && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.#pendingCr = false;
    this.#buffer += chunk;
    let start = 0;
    for (let i = 0; i < this.#buffer.length; i++) {
      const c = this.#buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.#line(this.#buffer.slice(start, i));
      if (c === 13) {
        if (i + 1 === this.#buffer.length) this.#pendingCr = true;
        else if (this.#buffer.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.#buffer = this.#buffer.slice(start);
  }

  /** Forget a half-received message (the connection dropped). */
  reset(): void {
    this.#buffer = '';
    this.#pendingCr = false;
    this.#event = '';
    this.#data = [];
  }

  #line(line: string): void {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return this.#onComment(line.slice(1).trim());
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
    else if (field === 'id' && !value.includes('\0')) this.#id = value;
  }

  #dispatch(): void {
    if (this.#data.length === 0) {
      this.#event = '';
      return;
    }
    const event: SseEvent = { id: this.#id, event: this.#event === '' ? 'message' : this.#event, data: this.#data.join('\n') };
    this.#event = '';
    this.#data = [];
    this.#onEvent(event);
  }
}
