import type * as JoseModule from 'jose';
import type { JWTPayload } from 'jose';
import { sendError } from '../../respond.js';
import { type Middleware, type MiddlewareContext } from '../middleware.js';

export interface JwtConfig {
  /** The identity provider's issuer (`iss`), exactly. */
  issuer: string;
  /** The audience(s) a token must be for (`aud`). */
  audience: string | string[];
  /** Where the provider publishes its signing keys (a JWKS document); keys are cached and refetched on an unknown `kid`. */
  jwksUrl: string;
  /** Signature algorithms accepted (default RS256, ES256, EdDSA). */
  algorithms?: string[];
  /** Verified claims forwarded to the instance, claim → header (default `sub` → `x-auth-subject`). */
  claims?: Record<string, string>;
}

const DEFAULT_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];
const BEARER = /^Bearer[ \t]+([A-Za-z0-9._~+/-]+=*)[ \t]*$/i;

type Jose = typeof JoseModule;

/**
 * jose is loaded on the first request to a JWT route, not at start-up: it costs several MB of memory
 * that a gateway without JWT routes should not carry.
 */
let jose: Promise<Jose> | undefined;
const loadJose = (): Promise<Jose> => (jose ??= import('jose'));

/** Why a token was refused, in words a client can act on (never the token itself). */
function reason({ errors }: Jose, error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `the token's "${error.claim}" claim is not accepted`;
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) return 'the token\'s signature does not verify';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the token\'s algorithm is not accepted';
  if (error instanceof errors.JWKSTimeout) return 'the identity provider\'s keys could not be fetched in time';
  if (!(error instanceof errors.JOSEError)) return 'the identity provider\'s keys could not be fetched';
  return 'the token is not valid';
}

/**
 * JWT authentication against an identity provider: the request needs `Authorization: Bearer <JWT>`
 * signed by a key in the provider's JWKS, from the configured issuer, for the configured audience, not
 * expired. Otherwise 401 (`WWW-Authenticate: Bearer error="invalid_token"`) and no instance sees it.
 * The verified claims named in `claims` are forwarded as headers (any copies the client sent are
 * dropped), and `sub` becomes the consumer rate limits key on.
 */
export function create(config: JwtConfig): Middleware {
  let keys: ReturnType<Jose['createRemoteJWKSet']> | undefined;
  /** The token's verified payload, or why it was refused, in words. */
  const verify = async (token: string): Promise<{ payload: JWTPayload } | { refused: string }> => {
    let lib: Jose;
    try {
      lib = await loadJose();
    } catch {
      return { refused: 'the token could not be checked' };
    }
    keys ??= lib.createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: 5_000, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
    try {
      return { payload: (await lib.jwtVerify(token, keys, options)).payload };
    } catch (error) {
      return { refused: reason(lib, error) };
    }
  };
  const claims = Object.entries(config.claims ?? { sub: 'x-auth-subject' }).map(([claim, header]) => [claim, header.toLowerCase()] as const);
  const options = { issuer: config.issuer, audience: config.audience, algorithms: config.algorithms ?? DEFAULT_ALGORITHMS };
  const refuse = (context: MiddlewareContext, why: string, error = 'invalid_token') =>
    sendError(context.res, 'PORTICO_ERR_GATEWAY_UNAUTHORIZED', `This route needs a valid bearer token: ${why}.`, {
      'www-authenticate': `Bearer error="${error}", error_description="${why}"`,
    });
  return {
    name: 'jwt',
    handle(context: MiddlewareContext, next: () => void): void {
      const token = BEARER.exec(context.req.headers.authorization ?? '')?.[1];
      if (token === undefined) {
        sendError(context.res, 'PORTICO_ERR_GATEWAY_UNAUTHORIZED', 'This route needs a bearer token: send "Authorization: Bearer <JWT>".', { 'www-authenticate': 'Bearer' });
        return;
      }
      void verify(token).then((result) => {
        if ('refused' in result) {
          refuse(context, result.refused);
          return;
        }
        const { payload } = result;
        for (const [claim, header] of claims) {
          context.droppedHeaders.push(header);
          const value = payload[claim];
          if (value !== undefined && value !== null) context.upstreamHeaders.push(header, typeof value === 'string' ? value : JSON.stringify(value));
        }
        if (typeof payload.sub === 'string') context.consumer = payload.sub;
        next();
      });
    },
  };
}
