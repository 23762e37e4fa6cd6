import { randomUUID } from 'node:crypto';
import { PorticoError } from '../errors.js';
import { type Role, type Store, type StoreSession, type TokenRecord } from '../store/store.js';
import { generateTokenSecret, hashTokenSecret, tokenSecretPrefix } from './token-secret.js';

/** Who is making a request or a change: a token, or the control plane itself. */
export interface Principal {
  /** The token's id; `null` for the control plane acting on its own (start-up). */
  id: string | null;
  name: string;
  role: Role;
  /** `agent` tokens: the services it may register and report on; `null` for other roles. */
  services: string[] | null;
}

export const SYSTEM_PRINCIPAL: Principal = Object.freeze({ id: null, name: 'system', role: 'admin', services: null });

/** Whether `principal` may register, change or deregister instances of `service`. */
export function mayManageService(principal: Principal, service: string): boolean {
  if (principal.role === 'admin' || principal.role === 'operator') return true;
  return principal.role === 'agent' && (principal.services ?? []).includes(service);
}

/** Name given to the admin token made on first start. */
export const FIRST_ADMIN_TOKEN_NAME = 'admin';

export interface FirstAdminResult {
  /** Whether this start made the first admin token (false when tokens existed already). */
  created: boolean;
  /** The secret, only when Portico generated it (so it can be printed once). */
  generatedSecret?: string;
}

/**
 * API tokens: issuing, authenticating and revoking them. Secrets are returned once, at creation,
 * and only their hashes are stored. Every change is written to the audit log in the same transaction.
 */
export class TokenService {
  constructor(private readonly store: Store) {}

  /** The principal a presented secret stands for, or `undefined` when no token matches. */
  async authenticate(secret: string): Promise<Principal | undefined> {
    const token = await this.store.tokens.findByHash(hashTokenSecret(secret));
    return token === undefined ? undefined : { id: token.id, name: token.name, role: token.role, services: token.services };
  }

  /**
   * Issue a token. The secret in the result is the only copy Portico ever hands out. An `agent` token
   * must name the services it is for; no other role may.
   */
  async create(actor: Principal, input: { name: string; role: Role; services?: string[] }): Promise<{ token: TokenRecord; secret: string }> {
    if (input.role === 'agent' && (input.services === undefined || input.services.length === 0)) {
      throw new PorticoError('PORTICO_ERR_REQUEST_INVALID', {
        message: 'An agent token must name the services it may register: give "services".',
        details: [{ location: 'body/services', problem: 'required for role agent' }],
      });
    }
    if (input.role !== 'agent' && input.services !== undefined) {
      throw new PorticoError('PORTICO_ERR_REQUEST_INVALID', {
        message: `Only agent tokens are limited to services; a ${input.role} token may not have "services".`,
        details: [{ location: 'body/services', problem: `not allowed for role ${input.role}` }],
      });
    }
    const secret = generateTokenSecret();
    const token = await this.store.transaction((session) => issue(session, actor, { ...input, secret }));
    return { token, secret };
  }

  list(): Promise<TokenRecord[]> {
    return this.store.tokens.list();
  }

  async get(id: string): Promise<TokenRecord> {
    const token = await this.store.tokens.get(id);
    if (token === undefined) throw new PorticoError('PORTICO_ERR_TOKEN_NOT_FOUND', { message: `No token has the id "${id}".` });
    return token;
  }

  /** Revoke a token at once; refuses to remove the last admin token. */
  remove(actor: Principal, id: string): Promise<TokenRecord> {
    return this.store.transaction(async (session) => {
      const removed = await session.tokens.remove(id);
      await session.audit.append({
        actorId: actor.id,
        actorName: actor.name,
        action: 'token.delete',
        target: `token:${removed.id}`,
        details: { name: removed.name, role: removed.role },
      });
      return removed;
    });
  }

  /**
   * On a store with no tokens, make the first admin token: from `PORTICO_ADMIN_TOKEN` when given,
   * otherwise a generated secret returned for printing once. Several replicas starting together on one
   * Postgres race safely: names are unique, so only one insert wins and the others see tokens exist.
   */
  async ensureFirstAdmin(configuredSecret: string | undefined): Promise<FirstAdminResult> {
    if ((await this.store.tokens.count()) > 0) return { created: false };
    const secret = configuredSecret ?? generateTokenSecret();
    const source = configuredSecret === undefined ? 'generated' : 'PORTICO_ADMIN_TOKEN';
    try {
      await this.store.transaction((session) =>
        issue(session, SYSTEM_PRINCIPAL, { name: FIRST_ADMIN_TOKEN_NAME, role: 'admin', secret }, { source }),
      );
    } catch (error) {
      if (error instanceof PorticoError && error.code === 'PORTICO_ERR_TOKEN_NAME_TAKEN') return { created: false };
      throw error;
    }
    return configuredSecret === undefined ? { created: true, generatedSecret: secret } : { created: true };
  }
}

/** Store a new token (its hash) and audit it, inside the caller's transaction. */
async function issue(
  session: StoreSession,
  actor: Principal,
  input: { name: string; role: Role; secret: string; services?: string[] },
  details: Record<string, unknown> = {},
): Promise<TokenRecord> {
  const created = await session.tokens.create({
    id: randomUUID(),
    name: input.name,
    role: input.role,
    services: input.services === undefined ? null : [...new Set(input.services)],
    hash: hashTokenSecret(input.secret),
    prefix: tokenSecretPrefix(input.secret),
    createdBy: actor.id,
  });
  await session.audit.append({
    actorId: actor.id,
    actorName: actor.name,
    action: 'token.create',
    target: `token:${created.id}`,
    details: { name: created.name, role: created.role, ...(created.services === null ? {} : { services: created.services }), ...details },
  });
  return created;
}
