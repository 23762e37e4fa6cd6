import { type Static, Type } from 'typebox';
import { type Role as StoreRole } from '../../store/store.js';
import { SERVICE_NAME_PATTERN } from '../../registry/registry.js';
import { Timestamp } from './common.js';

export const Role = Type.Union(
  [Type.Literal('admin'), Type.Literal('operator'), Type.Literal('viewer'), Type.Literal('agent')],
  { description: 'admin: everything; operator: run the platform, no tokens; viewer: read only; agent: register its own instances.' },
);

export const TokenName = Type.String({
  minLength: 1,
  maxLength: 100,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._:@-]*$',
  description: 'Unique; letters, digits and . _ : @ - (starting with a letter or digit).',
});

export const ServiceName = Type.String({
  pattern: SERVICE_NAME_PATTERN,
  description: 'Letters, digits, _ . - ; starting with a letter or digit; at most 63 characters.',
});

export const CreateTokenBody = Type.Object(
  {
    name: TokenName,
    role: Role,
    services: Type.Optional(
      Type.Array(ServiceName, { minItems: 1, maxItems: 1000, description: 'Agent tokens only: the services whose instances it may register and report on.' }),
    ),
  },
  { additionalProperties: false },
);

export const TokenView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    role: Role,
    prefix: Type.String({ description: 'The first characters of the secret, to tell tokens apart.' }),
    createdAt: Timestamp,
    createdBy: Type.Union([Type.String(), Type.Null()]),
    services: Type.Union([Type.Array(Type.String()), Type.Null()]),
  },
  { description: 'A token, without its secret.' },
);

export const CreatedToken = Type.Object(
  {
    token: TokenView,
    secret: Type.String({ description: 'The bearer secret. Shown this once; Portico keeps only its hash.' }),
  },
  { description: 'A new token and its secret.' },
);

export const TokenList = Type.Object({ tokens: Type.Array(TokenView) });

export const TokenParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });

// The schema and the store's role type must name the same roles; this fails to compile if they drift.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const rolesMatch: Same<Static<typeof Role>, StoreRole> = true;
void rolesMatch;
