import { type Role } from '../store/store.js';

/**
 * What each role may do. Every admin route names exactly one permission (enforced when the route is
 * registered), so adding a route without deciding who may call it fails at start-up rather than
 * silently opening it.
 */
export const PERMISSIONS = {
  'tokens:read': ['admin'],
  'tokens:write': ['admin'],
  'audit:read': ['admin', 'operator', 'viewer'],
  'self:read': ['admin', 'operator', 'viewer', 'agent'],
  'registry:read': ['admin', 'operator', 'viewer', 'agent'],
  // Agents also need the service named in their token; see mayManageService.
  'registry:write': ['admin', 'operator', 'agent'],
  'routes:read': ['admin', 'operator', 'viewer'],
  'routes:write': ['admin', 'operator'],
  'topology:read': ['admin', 'operator', 'viewer', 'agent'],
  // Agents also need the service named in their token; see mayManageService.
  'topology:declare': ['admin', 'operator', 'agent'],
  'topology:write': ['admin', 'operator'],
  'queues:read': ['admin', 'operator', 'viewer'],
  // Retry, replay, discard, and sending messages as an operator.
  'queues:write': ['admin', 'operator'],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

export function isPermission(value: unknown): value is Permission {
  return typeof value === 'string' && Object.hasOwn(PERMISSIONS, value);
}

export function roleHasPermission(role: Role, permission: Permission): boolean {
  return (PERMISSIONS[permission] as readonly Role[]).includes(role);
}
