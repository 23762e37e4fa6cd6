import http from 'node:http';
import { AgentError, type AgentErrorKind } from './agent-error.js';
import { httpRequest, type HttpResponse } from './http-transport.js';
import { type ErrorBody, type HealthStatus, type InstanceView, type RegistrationBody, type ServiceDetail, type ServiceList } from './registry-types.js';

export interface ControlPlaneClientOptions {
  /** The control plane's base URL, e.g. `http://127.0.0.1:8400`. */
  baseUrl: URL;
  /** A bearer token: an `agent` token naming the service, or an operator's or admin's. */
  token: string;
  requestTimeoutMs: number;
}

/** Longest check output the control plane keeps (its HeartbeatBody schema). */
export const MAX_OUTPUT_LENGTH = 4096;

function isErrorBody(value: unknown): value is ErrorBody {
  return typeof value === 'object' && value !== null && typeof (value as ErrorBody).code === 'string' && typeof (value as ErrorBody).message === 'string';
}

/** What the agent does about an error status; see `AgentErrorKind`. */
function kindOf(status: number, code: string | undefined): AgentErrorKind {
  if (status === 401 || status === 403) return 'unauthorized';
  if (status === 404 && (code === 'PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND' || code === 'PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND')) return 'lost';
  if (status >= 500 || status === 408 || status === 429) return 'unavailable';
  return 'rejected';
}

/** The AgentError for an answer that was not a success, with the control plane's code and message. */
export function errorFromResponse(operation: string, response: HttpResponse): AgentError {
  let body: unknown;
  try {
    body = JSON.parse(response.body);
  } catch {
    body = undefined;
  }
  const code = isErrorBody(body) ? body.code : 'PORTICO_ERR_AGENT_UNEXPECTED_RESPONSE';
  const said = isErrorBody(body) ? body.message : response.body.slice(0, 200) || '(no body)';
  const kind = kindOf(response.status, isErrorBody(body) ? body.code : undefined);
  return new AgentError(`${operation}: the control plane answered ${response.status} ${code}: ${said}`, {
    kind,
    code,
    statusCode: response.status,
    details: isErrorBody(body) ? body.details : undefined,
  });
}

/**
 * The registry's admin API (`/api/v1`) as an agent calls it, over one keep-alive connection pool.
 * Every method either succeeds or throws an `AgentError` whose `kind` says what to do next.
 */
export class ControlPlaneClient {
  readonly baseUrl: URL;
  readonly #token: string;
  readonly #timeoutMs: number;
  #agent: http.Agent | undefined;

  constructor(options: ControlPlaneClientOptions) {
    this.baseUrl = options.baseUrl;
    this.#token = options.token;
    this.#timeoutMs = options.requestTimeoutMs;
  }

  /** `PUT /instances/:id`: register, or re-register with the full local state. */
  async register(id: string, body: RegistrationBody): Promise<InstanceView> {
    return (await this.#call('registering the instance', 'PUT', `instances/${encodeURIComponent(id)}`, body)) as InstanceView;
  }

  /** `PUT /instances/:id/health`: a TTL heartbeat carrying the local check's result. */
  async heartbeat(id: string, result: { status: HealthStatus; output: string }): Promise<void> {
    await this.#call('sending a heartbeat', 'PUT', `instances/${encodeURIComponent(id)}/health`, {
      status: result.status,
      output: result.output.length > MAX_OUTPUT_LENGTH ? `${result.output.slice(0, MAX_OUTPUT_LENGTH - 1)}…` : result.output,
    });
  }

  /** `PUT /instances/:id/maintenance`. */
  async setMaintenance(id: string, enabled: boolean, reason: string): Promise<InstanceView> {
    return (await this.#call(enabled ? 'entering maintenance' : 'leaving maintenance', 'PUT', `instances/${encodeURIComponent(id)}/maintenance`, {
      enabled,
      reason,
    })) as InstanceView;
  }

  /** `DELETE /instances/:id`. */
  async deregister(id: string): Promise<void> {
    await this.#call('deregistering the instance', 'DELETE', `instances/${encodeURIComponent(id)}`);
  }

  /** `GET /services/:name`; a service without instances reads as none (the API's 404). */
  async service(name: string): Promise<ServiceDetail> {
    try {
      return (await this.#call(`reading the service "${name}"`, 'GET', `services/${encodeURIComponent(name)}`)) as ServiceDetail;
    } catch (error) {
      if (error instanceof AgentError && error.code === 'PORTICO_ERR_REGISTRY_SERVICE_NOT_FOUND') return { name, instances: [], index: 0 };
      throw error;
    }
  }

  /** `GET /services`: every service with at least one instance, and the registry's index. */
  async services(): Promise<ServiceList> {
    return (await this.#call('listing the services', 'GET', 'services')) as ServiceList;
  }

  /** `PUT /topology/services/:service`: the message types the service consumes (replacing what it declared before). */
  async declareTopology(service: string, consumes: readonly string[]): Promise<void> {
    await this.#call('declaring the message types the service consumes', 'PUT', `topology/services/${encodeURIComponent(service)}`, { consumes });
  }

  /**
   * `GET` another API path (e.g. `routes`) and return its JSON as it came: the caller knows its shape.
   * @param operation what the read is for, as error messages say it (`reading the routes`).
   */
  async read(operation: string, path: string): Promise<unknown> {
    return this.#call(operation, 'GET', path);
  }

  /** The URL of an API path, e.g. `events`. */
  url(path: string): URL {
    return new URL(`api/v1/${path}`, this.baseUrl);
  }

  /** Headers every call sends. */
  get authorization(): string {
    return `Bearer ${this.#token}`;
  }

  /** The keep-alive connection pool (`node:https` is loaded only for an https control plane). */
  async pool(): Promise<http.Agent> {
    if (this.#agent === undefined) {
      const options = { keepAlive: true, maxSockets: 4 };
      const agent = this.baseUrl.protocol === 'https:' ? new (await import('node:https')).Agent(options) : new http.Agent(options);
      this.#agent ??= agent;
    }
    return this.#agent;
  }

  /** Close idle connections (and any still open): nothing keeps the process alive after this. */
  close(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  async #call(operation: string, method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { authorization: this.authorization, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: HttpResponse;
    try {
      response = await httpRequest(this.url(path), {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        timeoutMs: this.#timeoutMs,
        agent: await this.pool(),
        maxBodyBytes: 4 * 1024 * 1024,
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new AgentError(`${operation}: the control plane at ${this.baseUrl.origin} cannot be reached (${reason})`, {
        kind: 'unavailable',
        code: 'PORTICO_ERR_AGENT_UNREACHABLE',
        cause: error,
      });
    }
    if (response.status >= 200 && response.status < 300) {
      if (response.status === 204 || response.body === '') return undefined;
      try {
        return JSON.parse(response.body) as unknown;
      } catch (error) {
        throw new AgentError(`${operation}: the control plane's answer is not JSON`, { kind: 'unavailable', code: 'PORTICO_ERR_AGENT_UNEXPECTED_RESPONSE', cause: error });
      }
    }
    throw errorFromResponse(operation, response);
  }
}
