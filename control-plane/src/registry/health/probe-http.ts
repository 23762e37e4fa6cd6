import { STATUS_CODES } from 'node:http';
import { Agent, request, type Dispatcher } from 'undici';
import { type HealthStatus } from '../registry.js';
import { describeNetworkError, errorCode } from './network-error.js';
import { type ProbeOptions, type ProbeResult } from './probe-result.js';

/** The most of a response body an HTTP probe keeps for its output (Consul keeps 4 KiB too). */
export const HTTP_PROBE_OUTPUT_LIMIT_BYTES = 4096;

/** What an HTTP probe requests. */
export interface HttpProbeTarget {
  /** An `http://` or `https://` URL, probed exactly as given. */
  url: string;
  /** Default `GET`. */
  method?: string;
  headers?: Record<string, string>;
  /**
   * The whole exchange (connect, headers, body excerpt) must finish within this; a connection that
   * never opens may take up to ~1 s longer to report (see {@link createHttpProbeAgent}).
   */
  timeoutMs: number;
}

/** Options of {@link probeHttp}. */
export interface HttpProbeOptions extends ProbeOptions {
  /**
   * Where the request goes, made by {@link createHttpProbeAgent} with the target's `timeoutMs`;
   * default: an agent shared by every call that passes none.
   */
  dispatcher?: Dispatcher;
}

const DEFAULT_HEADERS: Record<string, string> = {
  'user-agent': 'Portico Health Check',
  accept: 'text/plain, text/*, */*',
};

/**
 * An undici agent for HTTP probes with this timeout: keep-alive connections reused across probes of
 * one origin, connect, headers and body timeouts of `timeoutMs`, idle sockets that never hold the
 * process open, no redirects followed. Close it when done.
 *
 * One agent serves one timeout because undici fixes the connect timeout per agent and cannot abort a
 * request while its connection is still opening: a per-request deadline alone would leave a probe of
 * a blackholed address hanging until the agent gave up. undici's connect timer is coarse (it ticks
 * about every 500 ms), so a connection that never opens is reported up to ~1 s after `timeoutMs`;
 * every later phase is held to `timeoutMs` exactly.
 */
export function createHttpProbeAgent(timeoutMs: number): Agent {
  return new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
}

// One per distinct timeout, kept for the process's life: timeouts come from a handful of settings.
const sharedAgents = new Map<number, Agent>();

function sharedAgent(timeoutMs: number): Agent {
  let agent = sharedAgents.get(timeoutMs);
  if (agent === undefined) {
    agent = createHttpProbeAgent(timeoutMs);
    sharedAgents.set(timeoutMs, agent);
  }
  return agent;
}

/**
 * Probe an HTTP endpoint once, with Consul's semantics: a 2xx answer is `passing`, 429 Too Many
 * Requests is `warning`, anything else (3xx included: redirects are not followed) is `critical`, as
 * is a timeout or a failed connection. The output reads like Consul's:
 * `HTTP GET http://10.0.0.1:8080/health: 200 OK Output: <at most 4 KiB of the body>`.
 *
 * It probes exactly the URL it is given; choosing a URL that belongs to the instance is the caller's
 * job. Never rejects.
 */
export async function probeHttp(target: HttpProbeTarget, options: HttpProbeOptions = {}): Promise<ProbeResult> {
  const method = (target.method ?? 'GET').toUpperCase();
  let url: URL;
  try {
    url = new URL(target.url);
  } catch {
    return { status: 'critical', output: `HTTP ${method} ${target.url}: invalid URL` };
  }
  const prefix = `HTTP ${method} ${displayUrl(url)}`;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { status: 'critical', output: `${prefix}: unsupported scheme "${url.protocol.slice(0, -1)}" (use http or https)` };
  }
  if (options.signal?.aborted === true) return { status: 'critical', output: `${prefix}: probe cancelled` };

  // The agent's timeouts bound each phase; this bounds the whole exchange, as Consul's client timeout does.
  const deadline = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    deadline.abort();
  }, target.timeoutMs);
  timer.unref();
  const cancel = (): void => deadline.abort();
  options.signal?.addEventListener('abort', cancel, { once: true });

  const failure = (error: unknown): string => {
    if (timedOut || isTimeout(error)) return `timed out after ${target.timeoutMs} ms`;
    if (options.signal?.aborted === true) return 'probe cancelled';
    return describeNetworkError(error);
  };

  try {
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        dispatcher: options.dispatcher ?? sharedAgent(target.timeoutMs),
        method,
        headers: withDefaults(target.headers),
        signal: deadline.signal,
        headersTimeout: target.timeoutMs,
        bodyTimeout: target.timeoutMs,
      });
    } catch (error) {
      return { status: 'critical', output: `${prefix}: ${failure(error)}` };
    }
    const answer = `${response.statusCode} ${STATUS_CODES[response.statusCode] ?? ''}`.trimEnd();
    let excerpt: string;
    try {
      excerpt = await readExcerpt(response.body, HTTP_PROBE_OUTPUT_LIMIT_BYTES);
    } catch (error) {
      return { status: 'critical', output: `${prefix}: ${answer}, but reading the body failed: ${failure(error)}` };
    }
    return { status: statusFor(response.statusCode), output: `${prefix}: ${answer} Output: ${excerpt}` };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', cancel);
  }
}

function statusFor(statusCode: number): HealthStatus {
  if (statusCode >= 200 && statusCode < 300) return 'passing';
  if (statusCode === 429) return 'warning';
  return 'critical';
}

function isTimeout(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
}

/** Reads up to `limit` bytes, then destroys the body so a large or endless response costs no more. */
async function readExcerpt(body: Dispatcher.ResponseData['body'], limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit) break;
    }
  } finally {
    if (!body.readableEnded) body.destroy();
  }
  // A cut through a multi-byte character decodes to U+FFFD, which is fine for a human-read excerpt.
  return Buffer.concat(chunks, size).subarray(0, limit).toString('utf8');
}

function withDefaults(headers: Record<string, string> | undefined): Record<string, string> {
  const merged: Record<string, string> = { ...DEFAULT_HEADERS };
  for (const [name, value] of Object.entries(headers ?? {})) merged[name.toLowerCase()] = value;
  return merged;
}

/** The URL without credentials: outputs are shown to anyone who may read health. */
function displayUrl(url: URL): string {
  if (url.username === '' && url.password === '') return url.href;
  const shown = new URL(url.href);
  shown.username = '';
  shown.password = '';
  return shown.href;
}
