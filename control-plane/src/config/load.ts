/**
 * Reads, validates and freezes the configuration, once, at start-up.
 *
 * Sources, highest first: `PORTICO_*` environment variables; the JSON file named by
 * `PORTICO_CONFIG_FILE` (keys are the variable names, values strings or, where they fit, JSON
 * numbers and booleans); the defaults. Every problem is collected and reported together, each naming
 * its variable, so an operator fixes a broken deployment in one pass rather than one error per restart.
 */

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Value } from 'typebox/value';
import { PorticoError } from '../errors.js';
import { CONFIG_DEFAULTS } from './defaults.js';
import { parseDuration } from './duration.js';
import {
  FOREIGN_VARIABLE_PREFIXES,
  FOREIGN_VARIABLES,
  PorticoConfigSchema,
  type PorticoConfig,
  type VariableAnnotation,
} from './schema.js';

/** One problem with the configuration, as carried in `PorticoError.details`. */
export interface ConfigProblem {
  /** The environment variable (or config-file key) at fault. */
  variable: string;
  /** What is wrong, readable on its own, e.g. `must be an integer from 0 to 65535, got "abc"`. */
  problem: string;
}

/** Where to read the configuration from; both default to the current process's. */
export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv;
  /** The directory relative paths (data directory, config file) are resolved against. */
  cwd?: string;
  /**
   * Which program reads it: the control plane (default), or `gateway`, the data plane alone, which
   * needs a registry source (`PORTICO_GATEWAY_CONTROL_PLANE` with `PORTICO_GATEWAY_TOKEN`, or
   * `PORTICO_CONSUL_ADDR`). Settings the other program reads are accepted and left alone.
   */
  mode?: 'control-plane' | 'gateway';
}

type Reading = 'integer' | 'number' | 'boolean' | 'string' | 'duration' | 'path';

interface Binding {
  readonly path: readonly string[];
  readonly pointer: string;
  readonly annotation: VariableAnnotation;
  readonly reading: Reading;
}

type Raw = string | number | boolean | null | object;

interface RawSetting {
  readonly value: Raw;
  /** The config file it came from; `undefined` when it came from the environment. */
  readonly file: string | undefined;
}

const PREFIX = 'PORTICO_';
const INVALID = Symbol('invalid');
const BINDINGS: readonly Binding[] = collectBindings(PorticoConfigSchema, []);
const BY_NAME: ReadonlyMap<string, Binding> = new Map(BINDINGS.map((binding) => [binding.annotation.name, binding]));
const BOOLEAN_WORDS: Readonly<Record<string, boolean>> = {
  '1': true,
  '0': false,
  true: true,
  false: false,
  yes: true,
  no: false,
};

/**
 * Loads the configuration.
 *
 * An empty environment variable counts as unset (as `VAR=` in a compose file usually means).
 * Relative paths are resolved against `cwd`. Unknown `PORTICO_*` variables are errors, except those
 * other components own (`PORTICO_AGENT_*`, `PORTICO_TEST_*`).
 *
 * @returns The configuration, deep-frozen.
 * @throws PorticoError `PORTICO_ERR_CONFIG_INVALID` listing every problem, one per line of the
 *   message and one per entry of `details` (`ConfigProblem[]`). Secret values are never echoed.
 */
export function loadConfig(options: LoadConfigOptions = {}): Readonly<PorticoConfig> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const problems: ConfigProblem[] = [];

  const fromEnv = new Map<string, RawSetting>();
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(PREFIX) || value === undefined || isForeign(name)) continue;
    if (!BY_NAME.has(name)) {
      problems.push({ variable: name, problem: `unknown variable${suggestion(name)}` });
      continue;
    }
    if (value !== '') fromEnv.set(name, { value, file: undefined });
  }

  const fromFile = new Map<string, RawSetting>();
  const configFileSetting = fromEnv.get('PORTICO_CONFIG_FILE');
  if (typeof configFileSetting?.value === 'string') {
    const file = resolve(cwd, configFileSetting.value);
    for (const [name, value] of readConfigFile(file, problems)) fromFile.set(name, { value, file });
  }

  const config = structuredClone(CONFIG_DEFAULTS) as unknown as Record<string, unknown>;
  const reported = new Set<string>();
  for (const binding of BINDINGS) {
    const name = binding.annotation.name;
    const setting = fromEnv.get(name) ?? fromFile.get(name);
    if (setting === undefined) {
      const fallback = getAt(config, binding.path);
      if (binding.reading === 'path' && typeof fallback === 'string') setAt(config, binding.path, resolve(cwd, fallback));
      continue;
    }
    const value = read(binding.reading, setting.value, cwd);
    if (value === INVALID) {
      problems.push({ variable: name, problem: mustBe(binding, setting) });
      reported.add(name);
    } else {
      setAt(config, binding.path, value);
    }
  }
  config.redisUrlIsDefault = !fromEnv.has('PORTICO_REDIS_URL') && !fromFile.has('PORTICO_REDIS_URL');

  for (const error of Value.Errors(PorticoConfigSchema, config)) {
    const binding = BINDINGS.find((b) => error.instancePath === b.pointer || error.instancePath.startsWith(`${b.pointer}/`));
    if (binding === undefined) {
      // Only a broken default or schema can get here; still say which property, rather than crash.
      problems.push({ variable: error.instancePath, problem: `internal: ${error.message}` });
      continue;
    }
    const name = binding.annotation.name;
    if (reported.has(name)) continue;
    reported.add(name);
    const setting = fromEnv.get(name) ?? fromFile.get(name);
    problems.push({
      variable: name,
      problem: setting === undefined ? `the default is not valid: ${error.message}` : mustBe(binding, setting),
    });
  }

  // The gateway's certificate and key come as a pair.
  for (const [name, other, otherName] of [
    ['PORTICO_GATEWAY_TLS_CERT', config.gatewayTlsKey, 'PORTICO_GATEWAY_TLS_KEY'],
    ['PORTICO_GATEWAY_TLS_KEY', config.gatewayTlsCert, 'PORTICO_GATEWAY_TLS_CERT'],
  ] as const) {
    if ((fromEnv.has(name) || fromFile.has(name)) && other === undefined) problems.push({ variable: otherName, problem: `must be set too when ${name} is set` });
  }

  if (options.mode === 'gateway') problems.push(...gatewayProblems(config as unknown as PorticoConfig, (name) => fromEnv.has(name) || fromFile.has(name), reported));

  if (problems.length > 0 || !Value.Check(PorticoConfigSchema, config)) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    throw new PorticoError('PORTICO_ERR_CONFIG_INVALID', {
      message: [`The configuration is not valid (${count}):`, ...problems.map((p) => `${p.variable}: ${p.problem}`)].join('\n'),
      details: problems,
    });
  }
  return deepFreeze(config);
}

/**
 * What `portico gateway` needs besides valid values: a registry to follow (a control plane, with a
 * token for it, or Consul). Variables already reported as invalid are not reported again.
 */
function gatewayProblems(config: PorticoConfig, isSet: (name: string) => boolean, reported: ReadonlySet<string>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const given = (name: string) => isSet(name) && !reported.has(name);
  const controlPlane = given('PORTICO_GATEWAY_CONTROL_PLANE');
  if (controlPlane && !URL.canParse(config.gatewayControlPlane ?? '')) {
    problems.push({ variable: 'PORTICO_GATEWAY_CONTROL_PLANE', problem: `must be a URL, got ${JSON.stringify(config.gatewayControlPlane)}` });
  }
  if (!isSet('PORTICO_GATEWAY_CONTROL_PLANE') && !isSet('PORTICO_CONSUL_ADDR')) {
    problems.push({
      variable: 'PORTICO_GATEWAY_CONTROL_PLANE',
      problem: 'must be set when the gateway runs on its own: the control plane it follows (or set PORTICO_CONSUL_ADDR to follow Consul directly)',
    });
  }
  if (controlPlane && !isSet('PORTICO_GATEWAY_TOKEN')) {
    problems.push({ variable: 'PORTICO_GATEWAY_TOKEN', problem: 'must be set too when PORTICO_GATEWAY_CONTROL_PLANE is set: a token of that control plane (the viewer role is enough)' });
  }
  if (given('PORTICO_GATEWAY_TOKEN') && !isSet('PORTICO_GATEWAY_CONTROL_PLANE') && isSet('PORTICO_CONSUL_ADDR')) {
    problems.push({ variable: 'PORTICO_GATEWAY_CONTROL_PLANE', problem: 'must be set too when PORTICO_GATEWAY_TOKEN is set: the control plane the token is for (its routes)' });
  }
  return problems;
}

/** Reads the config file into (variable name, raw value) pairs; problems with it go to `problems`. */
function readConfigFile(file: string, problems: ConfigProblem[]): Array<[string, Raw]> {
  const fileProblem = (problem: string): [] => {
    problems.push({ variable: 'PORTICO_CONFIG_FILE', problem });
    return [];
  };

  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : String(error);
    return fileProblem(`cannot read config file "${file}": ${reason}`);
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return fileProblem(`config file "${file}" is not valid JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return fileProblem(`config file "${file}" must hold a JSON object whose keys are PORTICO_* variable names`);
  }

  const entries: Array<[string, Raw]> = [];
  for (const [key, value] of Object.entries(parsed as Record<string, Raw>)) {
    const binding = BY_NAME.get(key);
    if (binding === undefined) {
      problems.push({ variable: key, problem: `unknown key in config file "${file}"${suggestion(key)}` });
    } else if (binding.annotation.envOnly === true) {
      problems.push({ variable: key, problem: `can only be set in the environment, not in config file "${file}"` });
    } else {
      entries.push([key, value]);
    }
  }
  return entries;
}

/** Turns raw text (or a JSON value from the file) into the property's type, or `INVALID`. */
function read(reading: Reading, raw: Raw, cwd: string): unknown {
  switch (reading) {
    case 'integer':
      if (typeof raw === 'number') return raw;
      return typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : INVALID;
    case 'number':
      if (typeof raw === 'number') return raw;
      return typeof raw === 'string' && /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : INVALID;
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 1 || raw === 0) return raw === 1;
      return typeof raw === 'string' ? (BOOLEAN_WORDS[raw.toLowerCase()] ?? INVALID) : INVALID;
    case 'duration':
      if (typeof raw !== 'string') return INVALID;
      try {
        return parseDuration(raw);
      } catch {
        return INVALID;
      }
    case 'path':
      return typeof raw === 'string' && raw !== '' ? resolve(cwd, raw) : INVALID;
    case 'string':
      return typeof raw === 'string' ? raw : INVALID;
  }
}

function mustBe(binding: Binding, setting: RawSetting): string {
  const where = setting.file === undefined ? '' : ` (in config file "${setting.file}")`;
  return `must be ${binding.annotation.expected}, got ${show(setting.value, binding.annotation.secret === true)}${where}`;
}

function show(raw: Raw, secret: boolean): string {
  if (secret) return typeof raw === 'string' ? `${raw.length} characters` : `a ${raw === null ? 'null' : typeof raw}`;
  const text = JSON.stringify(raw);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function isForeign(name: string): boolean {
  return FOREIGN_VARIABLES.includes(name) || FOREIGN_VARIABLE_PREFIXES.some((prefix) => name.startsWith(prefix));
}

function suggestion(name: string): string {
  let best: string | undefined;
  let bestDistance = 3; // further than two edits away is a different word, not a typo
  for (const known of BY_NAME.keys()) {
    const distance = editDistance(name, known);
    if (distance < bestDistance) {
      best = known;
      bestDistance = distance;
    }
  }
  return best === undefined ? '' : ` (did you mean ${best}?)`;
}

/** Optimal string alignment distance: like Levenshtein, but a swap of neighbours (`PROT`) is one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) value = Math.min(value, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = value;
    }
  }
  return at(a.length, b.length);
}

function collectBindings(schema: unknown, path: readonly string[]): Binding[] {
  if (!isRecord(schema)) return [];
  const annotation = schema.variable as VariableAnnotation | undefined;
  if (annotation !== undefined) {
    return [{ path, pointer: path.map((key) => `/${key}`).join(''), annotation, reading: annotation.read ?? readingOf(schema) }];
  }
  if (!isRecord(schema.properties)) return [];
  return Object.entries(schema.properties).flatMap(([key, child]) => collectBindings(child, [...path, key]));
}

/** The reading implied by the schema type; for `T | undefined` and unions of literals, by the members. */
function readingOf(schema: Record<string, unknown>): Reading {
  const type = schema.type;
  if (type === 'integer' || type === 'number' || type === 'boolean') return type;
  if (Array.isArray(schema.anyOf)) {
    const member = schema.anyOf.find((m): m is Record<string, unknown> => isRecord(m) && m.type !== 'undefined');
    if (member !== undefined) return readingOf(member);
  }
  return 'string';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function getAt(target: Record<string, unknown>, path: readonly string[]): unknown {
  let node: unknown = target;
  for (const key of path) node = isRecord(node) ? node[key] : undefined;
  return node;
}

function setAt(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const child = node[key];
    if (!isRecord(child)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
