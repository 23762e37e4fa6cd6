import { createHash, randomBytes } from 'node:crypto';

/** Every secret Portico issues starts with this, so secret scanners and operators can recognise one. */
export const TOKEN_PREFIX = 'ptc_';

/** Length of the shown prefix (`ptc_` plus 8 characters): enough to tell tokens apart, far too little to guess one. */
const SHOWN_PREFIX_LENGTH = TOKEN_PREFIX.length + 8;

/** A new secret: `ptc_` and 32 random bytes in base64url (256 bits). */
export function generateTokenSecret(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/**
 * The hash kept in the store. Secrets Portico issues carry 256 random bits, and an operator-supplied
 * `PORTICO_ADMIN_TOKEN` must be at least 32 characters, so a fast hash suffices: a slow password hash
 * (scrypt, argon2) defends low-entropy secrets against guessing, and would put milliseconds of CPU on
 * every authenticated request. A deterministic hash also lets the store find a token by an index.
 */
export function hashTokenSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** The part of a secret that may be shown again after creation. */
export function tokenSecretPrefix(secret: string): string {
  return secret.slice(0, SHOWN_PREFIX_LENGTH);
}
