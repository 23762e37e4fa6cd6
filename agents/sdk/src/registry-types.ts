/**
 * The control plane's registry API as the SDK reads it: the fields it uses of the shapes defined in
 * `control-plane/src/api/schemas/registry.ts`. Written out here rather than imported, so the SDK does
 * not depend on the control plane's code; extra fields in an answer are ignored.
 */

export type HealthStatus = 'passing' | 'warning' | 'critical';

export interface CheckView {
  id: string;
  kind: 'http' | 'tcp' | 'ttl';
  status: HealthStatus;
  output: string;
}

export interface InstanceView {
  id: string;
  service: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  health: HealthStatus;
  maintenance: { reason: string; since: string } | null;
  modifyIndex: number;
  checks: CheckView[];
}

/** `PUT /api/v1/instances/:id`. */
export interface RegistrationBody {
  service: string;
  address: string;
  port: number;
  tags?: string[];
  meta?: Record<string, string>;
  checks: Array<{
    kind: 'ttl';
    name: string;
    ttl: string;
    deregisterCriticalAfter?: string;
    status?: HealthStatus;
    notes?: string;
  }>;
}

/** `GET /api/v1/services`. */
export interface ServiceList {
  services: Array<{ name: string }>;
  index: number;
}

/** `GET /api/v1/services/:name`. */
export interface ServiceDetail {
  name: string;
  instances: InstanceView[];
  index: number;
}

/** The `data` of `instance.*` events on `GET /api/v1/events`. */
export interface RegistryEventData {
  index: number;
  service: string;
  instanceId: string;
  health?: HealthStatus;
  instance?: InstanceView;
}

/** The `data` of a `reset` event: the whole registry. */
export interface RegistrySnapshot {
  index: number;
  services: Array<{ name: string; instances: InstanceView[] }>;
}

/** Portico's error body. */
export interface ErrorBody {
  code: string;
  message: string;
  statusCode: number;
  details?: unknown;
}
