/**
 * The shape of Portico's configuration, one TypeBox schema that both types the code
 * (`PorticoConfig`) and validates what the operator wrote.
 *
 * Each property set by an environment variable carries a `variable` annotation (see
 * {@link VariableAnnotation}). The loader derives everything else from it: which `PORTICO_*`
 * names are known, how to read the text, and what an error says. A new setting is therefore one
 * new property here plus its default in `defaults.ts`; nothing else needs to change.
 */

import { Type, type Static, type TSchema } from 'typebox';

/** How a property is bound to its environment variable; stored on the schema as `variable`. */
export interface VariableAnnotation {
  /** The environment variable, which is also the key in a config file. */
  readonly name: `PORTICO_${string}`;
  /** Completes "must be …" in an error, e.g. `an integer from 0 to 65535`. */
  readonly expected: string;
  /**
   * How the text is read when the schema type alone does not say: `duration` (Go-style, to
   * milliseconds) or `path` (resolved to an absolute path against the working directory). Integers,
   * booleans and strings are read according to the schema type.
   */
  readonly read?: 'duration' | 'path';
  /** The value is a secret: an error gives its length, never the value itself. */
  readonly secret?: boolean;
  /** Only the environment may set it (a config file cannot name itself). */
  readonly envOnly?: boolean;
}

const variable = (annotation: VariableAnnotation): { variable: VariableAnnotation } => ({ variable: annotation });

const PORT_EXPECTED = 'an integer from 0 to 65535';
const optional = <T extends TSchema>(schema: T, annotation: VariableAnnotation) =>
  Type.Union([schema, Type.Undefined()], variable(annotation));

/** The JSON schema of the configuration, with its environment-variable annotations. */
export const PorticoConfigSchema = Type.Object({
  host: Type.String({
    pattern: '^\\S+$',
    ...variable({ name: 'PORTICO_HOST', expected: 'a host name or IP address to bind, e.g. "0.0.0.0"' }),
  }),
  port: Type.Integer({ minimum: 0, maximum: 65535, ...variable({ name: 'PORTICO_PORT', expected: PORT_EXPECTED }) }),
  gatewayPort: Type.Integer({
    minimum: 0,
    maximum: 65535,
    ...variable({ name: 'PORTICO_GATEWAY_PORT', expected: PORT_EXPECTED }),
  }),
  dataDir: Type.String({
    minLength: 1,
    ...variable({ name: 'PORTICO_DATA_DIR', expected: 'a directory path', read: 'path' }),
  }),
  databaseUrl: optional(Type.String({ pattern: '^postgres(ql)?://\\S+$' }), {
    name: 'PORTICO_DATABASE_URL',
    expected: 'a postgres:// or postgresql:// URL (leave it unset for SQLite in the data directory)',
  }),
  redisUrl: Type.String({
    pattern: '^rediss?://\\S+$',
    ...variable({ name: 'PORTICO_REDIS_URL', expected: 'a redis:// or rediss:// URL' }),
  }),
  /** True when the operator named no Redis, so a private `redis-server` may be started instead. */
  redisUrlIsDefault: Type.Boolean(),
  consul: Type.Object({
    addr: optional(Type.String({ pattern: '^(https?://\\S+|[A-Za-z0-9.-]+:\\d{1,5}|\\[[0-9A-Fa-f:.]+\\]:\\d{1,5})$' }), {
      name: 'PORTICO_CONSUL_ADDR',
      expected: 'an http:// or https:// URL, or host:port, e.g. "127.0.0.1:8500"',
    }),
    token: optional(Type.String({ minLength: 1 }), {
      name: 'PORTICO_CONSUL_TOKEN',
      expected: 'a Consul ACL token',
      secret: true,
    }),
  }),
  adminToken: optional(Type.String({ minLength: 32 }), {
    name: 'PORTICO_ADMIN_TOKEN',
    expected: 'at least 32 characters long, because it guards every admin operation',
    secret: true,
  }),
  samples: Type.Boolean(
    variable({ name: 'PORTICO_SAMPLES', expected: 'one of 1, 0, true, false, yes, no' }),
  ),
  /** `production` turns start-up warnings about unsafe settings (a Redis that evicts keys) into refusals. */
  env: Type.Union(
    [Type.Literal('development'), Type.Literal('production')],
    variable({ name: 'PORTICO_ENV', expected: 'one of development, production' }),
  ),
  logLevel: Type.Union(
    [
      Type.Literal('fatal'),
      Type.Literal('error'),
      Type.Literal('warn'),
      Type.Literal('info'),
      Type.Literal('debug'),
      Type.Literal('trace'),
      Type.Literal('silent'),
    ],
    variable({ name: 'PORTICO_LOG_LEVEL', expected: 'one of fatal, error, warn, info, debug, trace, silent' }),
  ),
  bodyLimit: Type.Integer({
    minimum: 1024,
    maximum: Number.MAX_SAFE_INTEGER,
    ...variable({ name: 'PORTICO_BODY_LIMIT', expected: 'a whole number of bytes, at least 1024' }),
  }),
  shutdownTimeoutMs: Type.Number({
    exclusiveMinimum: 0,
    ...variable({
      name: 'PORTICO_SHUTDOWN_TIMEOUT',
      expected: 'a positive duration such as "10s", "500ms" or "1m30s"',
      read: 'duration',
    }),
  }),
  gatewayTimeoutMs: Type.Number({
    exclusiveMinimum: 0,
    ...variable({
      name: 'PORTICO_GATEWAY_TIMEOUT',
      expected: 'a positive duration such as "30s" or "1500ms"',
      read: 'duration',
    }),
  }),
  gatewayConnectTimeoutMs: Type.Number({
    exclusiveMinimum: 0,
    ...variable({
      name: 'PORTICO_GATEWAY_CONNECT_TIMEOUT',
      expected: 'a positive duration such as "5s" or "500ms"',
      read: 'duration',
    }),
  }),
  gatewayMaxConcurrent: Type.Integer({
    minimum: 1,
    maximum: 1_000_000,
    ...variable({ name: 'PORTICO_GATEWAY_MAX_CONCURRENT', expected: 'a whole number of requests, at least 1' }),
  }),
  gatewayTlsCert: optional(Type.String({ minLength: 1 }), {
    name: 'PORTICO_GATEWAY_TLS_CERT',
    expected: 'the path of a PEM certificate (chain) for the gateway port',
    read: 'path',
  }),
  gatewayTlsKey: optional(Type.String({ minLength: 1 }), {
    name: 'PORTICO_GATEWAY_TLS_KEY',
    expected: 'the path of the PEM private key of PORTICO_GATEWAY_TLS_CERT',
    read: 'path',
  }),
  /** `portico gateway` only: the control plane whose registry and routes the gateway follows. */
  gatewayControlPlane: optional(Type.String({ pattern: '^https?://[^\\s?#]+$' }), {
    name: 'PORTICO_GATEWAY_CONTROL_PLANE',
    expected: 'the control plane\'s http:// or https:// URL, without a query, e.g. "http://10.0.0.5:8400"',
  }),
  /** `portico gateway` only: its bearer token for the control plane (the `viewer` role is enough). */
  gatewayToken: optional(Type.String({ minLength: 1 }), {
    name: 'PORTICO_GATEWAY_TOKEN',
    expected: 'an API token of the control plane (the viewer role is enough)',
    secret: true,
  }),
  configFile: optional(Type.String({ minLength: 1 }), {
    name: 'PORTICO_CONFIG_FILE',
    expected: 'the path of a JSON config file',
    read: 'path',
    envOnly: true,
  }),
});

/** The validated configuration, as the rest of the control plane sees it. */
export type PorticoConfig = Static<typeof PorticoConfigSchema>;

/** One of the log levels pino understands. */
export type LogLevel = PorticoConfig['logLevel'];

/**
 * `PORTICO_*` variables that are not the control plane's settings but are legitimately present in
 * its environment; the loader neither reads nor rejects them. Add a name here only when another
 * component owns it (a setting of the control plane belongs in the schema instead).
 */
export const FOREIGN_VARIABLES: readonly string[] = [];

/**
 * Prefixes of `PORTICO_*` variables owned by others: the sidecar agent's (`PORTICO_AGENT_TOKEN`,
 * `PORTICO_AGENT_CONTROL_PLANE`, often exported in the same shell) and the test tooling's.
 */
export const FOREIGN_VARIABLE_PREFIXES: readonly string[] = ['PORTICO_AGENT_', 'PORTICO_TEST_'];
