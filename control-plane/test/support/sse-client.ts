/** A Server-Sent Events reader over `fetch`, for tests against a listening server. */

/** One message, or one comment line block, as it came off the wire. */
export interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  /** Comment lines (`: ...`), e.g. keep-alives. */
  comments: string[];
}

export interface SseStream {
  response: Response;
  /** The next message or comment block, or `undefined` when the stream ended. Rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<SseMessage | undefined>;
  /** The next message that has an event name (skipping comments), or `undefined` at the end. */
  nextEvent(timeoutMs?: number): Promise<SseMessage | undefined>;
  /** Drop the connection. */
  close(): void;
}

function parseBlock(block: string): SseMessage {
  const message: SseMessage = { comments: [] };
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(':')) {
      message.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') message.id = value;
    else if (field === 'event') message.event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length > 0) message.data = data.join('\n');
  return message;
}

/** Open `url` as an event stream. The response may be an error (check `response.status`). */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  const reader = response.body?.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let ended = false;

  async function next(timeoutMs = 5_000): Promise<SseMessage | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = /\r?\n\r?\n/.exec(buffer);
      if (end !== null) {
        const block = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        return parseBlock(block);
      }
      if (ended || reader === undefined) return undefined;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no SSE message within ${timeoutMs} ms`);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no SSE message within ${timeoutMs} ms`)), remaining);
      });
      try {
        const chunk = await Promise.race([reader.read(), timeout]);
        if (chunk.done) ended = true;
        else buffer += decoder.decode(chunk.value, { stream: true });
      } catch (error) {
        if (abort.signal.aborted) return undefined;
        if (error instanceof Error && error.message.startsWith('no SSE message')) throw error;
        // The server dropped the connection.
        ended = true;
      } finally {
        clearTimeout(timer);
      }
    }
  }

  return {
    response,
    next,
    async nextEvent(timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const message = await next(Math.max(1, deadline - Date.now()));
        if (message === undefined || message.event !== undefined) return message;
      }
    },
    close: () => abort.abort(),
  };
}
