import { mayManageService, type Principal } from '../auth/token-service.js';
import { PorticoError } from '../errors.js';
import { type NewAuditEntry } from '../store/store.js';
import { type DeregistrationReason, type RegistryBackend } from './registry-backend.js';
import { type HealthStatus, type Instance, type InstanceRegistration } from './registry.js';

/**
 * The registry as the HTTP surfaces (admin API, Consul-compatible API) use it: every change checks
 * that the caller may manage the service (an `agent` token only its own services) and is audited
 * (the backend records the entry with the change); reads go straight to the backend.
 */
export class RegistryService {
  constructor(readonly backend: RegistryBackend) {}

  /** Register or re-register an instance. An agent may not move an instance into, or out of, a service it was not issued for. */
  async register(actor: Principal, registration: InstanceRegistration): Promise<Instance> {
    this.#authorize(actor, registration.service);
    const previous = await this.backend.instance(registration.id);
    if (previous !== undefined) this.#authorize(actor, previous.service);
    return this.backend.register(registration, actor.id, {
      audit: ({ previous: before, instance }) =>
        auditEntry(actor, before === undefined ? 'instance.register' : 'instance.update', instance, {
          service: instance.service,
          address: instance.address,
          port: instance.port,
        }),
    });
  }

  async deregister(actor: Principal, instanceId: string, reason: DeregistrationReason = 'api'): Promise<Instance> {
    await this.#authorizeInstance(actor, instanceId);
    return this.backend.deregister(instanceId, reason, {
      audit: ({ instance }) => auditEntry(actor, 'instance.deregister', instance, { service: instance.service }),
    });
  }

  /** A check result (TTL heartbeat). Not audited: heartbeats are not changes an operator makes. */
  async reportCheck(actor: Principal, checkId: string, status: HealthStatus, output?: string): Promise<Instance> {
    const owner = await this.#checkOwner(checkId);
    this.#authorize(actor, owner.service);
    return this.backend.updateCheck(checkId, status, output);
  }

  async setMaintenance(actor: Principal, instanceId: string, enabled: boolean, reason?: string): Promise<Instance> {
    await this.#authorizeInstance(actor, instanceId);
    return this.backend.setMaintenance(instanceId, enabled, reason, {
      audit: ({ instance }) =>
        auditEntry(actor, enabled ? 'instance.maintenance_on' : 'instance.maintenance_off', instance, {
          service: instance.service,
          ...(reason === undefined || reason === '' ? {} : { reason }),
        }),
    });
  }

  /** The instance a check belongs to. @throws PorticoError `PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND`. */
  async #checkOwner(checkId: string): Promise<Instance> {
    const owner = await this.backend.instanceOfCheck(checkId);
    if (owner === undefined) {
      throw new PorticoError('PORTICO_ERR_REGISTRY_CHECK_NOT_FOUND', { message: `No check has the id "${checkId}".`, details: { checkId } });
    }
    return owner;
  }

  async #authorizeInstance(actor: Principal, instanceId: string): Promise<void> {
    const instance = await this.backend.instance(instanceId);
    if (instance === undefined) {
      throw new PorticoError('PORTICO_ERR_REGISTRY_INSTANCE_NOT_FOUND', { message: `No instance has the id "${instanceId}".`, details: { instanceId } });
    }
    this.#authorize(actor, instance.service);
  }

  #authorize(actor: Principal, service: string): void {
    if (!mayManageService(actor, service)) {
      throw new PorticoError('PORTICO_ERR_REGISTRY_SERVICE_FORBIDDEN', {
        message: `The token "${actor.name}" may not register or change instances of the service "${service}".`,
        details: { service },
      });
    }
  }
}

function auditEntry(actor: Principal, action: string, instance: Instance, details: Record<string, unknown>): NewAuditEntry {
  return { actorId: actor.id, actorName: actor.name, action, target: `instance:${instance.id}`, details };
}
