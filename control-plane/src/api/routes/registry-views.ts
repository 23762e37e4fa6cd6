import { type RegistryEvent } from '../../registry/registry-backend.js';
import { type CheckState, type Instance, instanceHealth } from '../../registry/registry.js';
import { type CheckView, type InstanceView, type RegistryEventData } from '../schemas/registry.js';

const NS_PER_UNIT: ReadonlyArray<readonly [string, bigint]> = [
  ['h', 3_600_000_000_000n],
  ['m', 60_000_000_000n],
  ['s', 1_000_000_000n],
  ['ms', 1_000_000n],
  ['us', 1_000n],
  ['ns', 1n],
];

/**
 * A duration in milliseconds as a Go-style string that `parseDuration` reads back to the same value:
 * whole units, largest first (`90000` → `"1m30s"`, `1500` → `"1s500ms"`, `0` → `"0"`).
 */
export function formatDuration(ms: number): string {
  // Nanoseconds are parseDuration's resolution; integers keep the sum exact.
  let rest = BigInt(Math.round(ms * 1e6));
  if (rest <= 0n) return '0';
  let text = '';
  for (const [unit, size] of NS_PER_UNIT) {
    const amount = rest / size;
    if (amount > 0n) {
      text += `${amount}${unit}`;
      rest -= amount * size;
    }
  }
  return text;
}

/** A check as the API shows it. */
export function checkView(check: CheckState): CheckView {
  const view: CheckView = {
    id: check.id,
    name: check.name,
    kind: check.kind,
    status: check.status,
    output: check.output,
    statusSince: check.statusSince.toISOString(),
    lastResultAt: check.lastResultAt?.toISOString() ?? null,
    successBeforePassing: check.successBeforePassing,
    failuresBeforeCritical: check.failuresBeforeCritical,
  };
  if (check.http !== undefined) view.http = check.http;
  if (check.method !== undefined) view.method = check.method;
  if (check.headers !== undefined) view.headers = check.headers;
  if (check.tcp !== undefined) view.tcp = check.tcp;
  if (check.intervalMs !== undefined) view.interval = formatDuration(check.intervalMs);
  if (check.timeoutMs !== undefined) view.timeout = formatDuration(check.timeoutMs);
  if (check.ttlMs !== undefined) view.ttl = formatDuration(check.ttlMs);
  if (check.kind === 'ttl') view.ttlExpiresAt = check.ttlExpiresAt?.toISOString() ?? null;
  if (check.deregisterCriticalAfterMs !== undefined) view.deregisterCriticalAfter = formatDuration(check.deregisterCriticalAfterMs);
  if (check.notes !== undefined) view.notes = check.notes;
  return view;
}

/** An instance as the API shows it, with its aggregated health. */
export function instanceView(instance: Instance): InstanceView {
  return {
    id: instance.id,
    service: instance.service,
    address: instance.address,
    port: instance.port,
    tags: instance.tags,
    meta: instance.meta,
    weights: instance.weights,
    health: instanceHealth(instance),
    maintenance: instance.maintenance === null ? null : { reason: instance.maintenance.reason, since: instance.maintenance.since.toISOString() },
    registeredAt: instance.registeredAt.toISOString(),
    registeredBy: instance.registeredBy,
    createIndex: instance.createIndex,
    modifyIndex: instance.modifyIndex,
    checks: instance.checks.map(checkView),
  };
}

/** A registry event's `data` on the event stream. */
export function eventData(event: RegistryEvent): RegistryEventData {
  const common = { index: event.index, at: event.at.toISOString(), service: event.service, instanceId: event.instanceId };
  switch (event.type) {
    case 'instance.deregistered':
      return { ...common, reason: event.reason };
    case 'instance.health_changed':
      return { ...common, health: event.health, previousHealth: event.previousHealth, instance: instanceView(event.instance) };
    case 'instance.registered':
    case 'instance.updated':
      return { ...common, health: event.health, instance: instanceView(event.instance) };
  }
}
