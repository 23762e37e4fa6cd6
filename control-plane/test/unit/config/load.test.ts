import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PorticoError } from '../../../src/errors.js';
import { loadConfig, type ConfigProblem } from '../../../src/config/load.js';

const CWD = '/srv/portico';
const TOKEN = 'x'.repeat(32);

function load(env: Record<string, string>, cwd = CWD) {
  return loadConfig({ env, cwd });
}

/** Runs `fn`, expecting it to throw the config error, and returns that error. */
function configError(fn: () => unknown): PorticoError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PorticoError);
    const portico = error as PorticoError;
    expect(portico.code).toBe('PORTICO_ERR_CONFIG_INVALID');
    return portico;
  }
  throw new Error('expected loadConfig to throw');
}

function problems(error: PorticoError): ConfigProblem[] {
  return error.details as ConfigProblem[];
}

describe('loadConfig', () => {
  it('gives the defaults when nothing is set', () => {
    expect(load({})).toEqual({
      host: '127.0.0.1',
      port: 8400,
      gatewayPort: 8080,
      dataDir: '/srv/portico/.portico',
      databaseUrl: undefined,
      redisUrl: 'redis://127.0.0.1:6379',
      redisUrlIsDefault: true,
      consul: { addr: undefined, token: undefined },
      adminToken: undefined,
      samples: true,
      env: 'development',
      logLevel: 'info',
      bodyLimit: 1_048_576,
      shutdownTimeoutMs: 10_000,
      gatewayTimeoutMs: 30_000,
      gatewayConnectTimeoutMs: 5_000,
      gatewayMaxConcurrent: 1_000,
      gatewayTlsCert: undefined,
      gatewayTlsKey: undefined,
      configFile: undefined,
    });
  });

  it('reads the process environment and working directory when given no options', () => {
    const config = loadConfig();
    expect(config.dataDir.startsWith('/')).toBe(true);
  });

  it('reads every variable', () => {
    const config = load({
      PORTICO_HOST: '0.0.0.0',
      PORTICO_PORT: '9000',
      PORTICO_GATEWAY_PORT: '0',
      PORTICO_DATA_DIR: 'var/data',
      PORTICO_DATABASE_URL: 'postgresql://portico:pw@db:5432/portico',
      PORTICO_REDIS_URL: 'rediss://cache.internal:6380/2',
      PORTICO_CONSUL_ADDR: 'http://consul.internal:8500',
      PORTICO_CONSUL_TOKEN: 'consul-acl',
      PORTICO_ADMIN_TOKEN: TOKEN,
      PORTICO_SAMPLES: 'no',
      PORTICO_ENV: 'production',
      PORTICO_LOG_LEVEL: 'debug',
      PORTICO_BODY_LIMIT: '2048',
      PORTICO_SHUTDOWN_TIMEOUT: '1m30s',
      PORTICO_GATEWAY_TIMEOUT: '1500ms',
      PORTICO_GATEWAY_CONNECT_TIMEOUT: '2s',
      PORTICO_GATEWAY_MAX_CONCURRENT: '64',
      PORTICO_GATEWAY_TLS_CERT: 'tls/cert.pem',
      PORTICO_GATEWAY_TLS_KEY: '/etc/portico/key.pem',
    });
    expect(config).toEqual({
      host: '0.0.0.0',
      port: 9000,
      gatewayPort: 0,
      dataDir: '/srv/portico/var/data',
      databaseUrl: 'postgresql://portico:pw@db:5432/portico',
      redisUrl: 'rediss://cache.internal:6380/2',
      redisUrlIsDefault: false,
      consul: { addr: 'http://consul.internal:8500', token: 'consul-acl' },
      adminToken: TOKEN,
      samples: false,
      env: 'production',
      logLevel: 'debug',
      bodyLimit: 2048,
      shutdownTimeoutMs: 90_000,
      gatewayTimeoutMs: 1_500,
      gatewayConnectTimeoutMs: 2_000,
      gatewayMaxConcurrent: 64,
      gatewayTlsCert: '/srv/portico/tls/cert.pem',
      gatewayTlsKey: '/etc/portico/key.pem',
      configFile: undefined,
    });
  });

  it('wants the gateway\'s certificate and key together', () => {
    expect(() => load({ PORTICO_GATEWAY_TLS_CERT: 'cert.pem' })).toThrow(/PORTICO_GATEWAY_TLS_KEY: must be set too when PORTICO_GATEWAY_TLS_CERT is set/);
    expect(() => load({ PORTICO_GATEWAY_TLS_KEY: 'key.pem' })).toThrow(/PORTICO_GATEWAY_TLS_CERT: must be set too/);
  });

  it('knows PORTICO_ENV: development (default) or production', () => {
    expect(load({ PORTICO_ENV: 'production' }).env).toBe('production');
    expect(() => load({ PORTICO_ENV: 'prod' })).toThrow(/PORTICO_ENV: must be one of development, production, got "prod"/);
  });

  it('keeps an absolute data directory as it is', () => {
    expect(load({ PORTICO_DATA_DIR: '/var/lib/portico' }).dataDir).toBe('/var/lib/portico');
  });

  it.each([
    ['1', true],
    ['0', false],
    ['true', true],
    ['false', false],
    ['yes', true],
    ['no', false],
    ['TRUE', true],
    ['No', false],
  ])('reads PORTICO_SAMPLES=%s as %s', (text, value) => {
    expect(load({ PORTICO_SAMPLES: text }).samples).toBe(value);
  });

  it.each(['postgres://u@h/db', 'postgresql://u:p@h:5432/db'])('accepts PORTICO_DATABASE_URL=%s', (url) => {
    expect(load({ PORTICO_DATABASE_URL: url }).databaseUrl).toBe(url);
  });

  it.each(['127.0.0.1:8500', 'consul:8500', 'https://consul.example.com', '[::1]:8500'])('accepts PORTICO_CONSUL_ADDR=%s', (addr) => {
    expect(load({ PORTICO_CONSUL_ADDR: addr }).consul.addr).toBe(addr);
  });

  it('counts the default Redis URL written out explicitly as named by the operator', () => {
    const config = load({ PORTICO_REDIS_URL: 'redis://127.0.0.1:6379' });
    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.redisUrlIsDefault).toBe(false);
  });

  it('treats an empty variable as unset', () => {
    const config = load({ PORTICO_PORT: '', PORTICO_DATABASE_URL: '' });
    expect(config.port).toBe(8400);
    expect(config.databaseUrl).toBeUndefined();
  });

  it.each([
    ['PORTICO_PORT', 'abc', 'must be an integer from 0 to 65535, got "abc"'],
    ['PORTICO_PORT', '65536', 'must be an integer from 0 to 65535, got "65536"'],
    ['PORTICO_PORT', '-1', 'must be an integer from 0 to 65535'],
    ['PORTICO_PORT', '80.5', 'must be an integer from 0 to 65535'],
    ['PORTICO_GATEWAY_PORT', '70000', 'must be an integer from 0 to 65535'],
    ['PORTICO_HOST', 'my host', 'must be a host name or IP address'],
    ['PORTICO_DATABASE_URL', 'mysql://db/portico', 'must be a postgres:// or postgresql:// URL'],
    ['PORTICO_DATABASE_URL', 'sqlite.db', 'must be a postgres:// or postgresql:// URL'],
    ['PORTICO_REDIS_URL', 'http://127.0.0.1:6379', 'must be a redis:// or rediss:// URL'],
    ['PORTICO_CONSUL_ADDR', 'consul', 'must be an http:// or https:// URL, or host:port'],
    ['PORTICO_CONSUL_ADDR', 'ftp://consul:21', 'must be an http:// or https:// URL, or host:port'],
    ['PORTICO_SAMPLES', 'maybe', 'must be one of 1, 0, true, false, yes, no, got "maybe"'],
    ['PORTICO_LOG_LEVEL', 'verbose', 'must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"'],
    ['PORTICO_BODY_LIMIT', '1023', 'must be a whole number of bytes, at least 1024, got "1023"'],
    ['PORTICO_BODY_LIMIT', '1kb', 'must be a whole number of bytes, at least 1024'],
    ['PORTICO_SHUTDOWN_TIMEOUT', '10', 'must be a positive duration such as "10s"'],
    ['PORTICO_SHUTDOWN_TIMEOUT', '-1s', 'must be a positive duration'],
    ['PORTICO_SHUTDOWN_TIMEOUT', '0s', 'must be a positive duration'],
  ])('rejects %s=%j', (variable, value, problem) => {
    const error = configError(() => load({ [variable]: value }));
    expect(problems(error)).toHaveLength(1);
    expect(problems(error)[0]?.variable).toBe(variable);
    expect(problems(error)[0]?.problem).toContain(problem);
    expect(error.message).toContain(`${variable}: ${problem}`);
  });

  it('reports several bad variables together, each on its own line', () => {
    const error = configError(() =>
      load({
        PORTICO_PORT: 'abc',
        PORTICO_REDIS_URL: 'localhost:6379',
        PORTICO_LOG_LEVEL: 'loud',
        PORTICO_SHUTDOWN_TIMEOUT: 'soon',
      }),
    );
    expect(problems(error).map((p) => p.variable).sort()).toEqual([
      'PORTICO_LOG_LEVEL',
      'PORTICO_PORT',
      'PORTICO_REDIS_URL',
      'PORTICO_SHUTDOWN_TIMEOUT',
    ]);
    const lines = error.message.split('\n');
    expect(lines[0]).toBe('The configuration is not valid (4 problems):');
    expect(lines).toContain('PORTICO_PORT: must be an integer from 0 to 65535, got "abc"');
    for (const variable of ['PORTICO_REDIS_URL', 'PORTICO_LOG_LEVEL', 'PORTICO_SHUTDOWN_TIMEOUT']) {
      expect(lines.filter((line) => line.startsWith(`${variable}: `))).toHaveLength(1);
    }
  });

  it('rejects a short admin token without echoing it', () => {
    const secret = 'hunter2-but-longer';
    const error = configError(() => load({ PORTICO_ADMIN_TOKEN: secret }));
    expect(problems(error)).toEqual([
      {
        variable: 'PORTICO_ADMIN_TOKEN',
        problem: `must be at least 32 characters long, because it guards every admin operation, got ${secret.length} characters`,
      },
    ]);
    expect(error.message).not.toContain(secret);
    expect(JSON.stringify(error.toJSON())).not.toContain(secret);
  });

  it('accepts an admin token of exactly 32 characters', () => {
    expect(load({ PORTICO_ADMIN_TOKEN: TOKEN }).adminToken).toBe(TOKEN);
    configError(() => load({ PORTICO_ADMIN_TOKEN: TOKEN.slice(1) }));
  });

  it('rejects an unknown PORTICO_ variable, suggesting the likely one', () => {
    const error = configError(() => load({ PORTICO_PROT: '9000' }));
    expect(problems(error)).toEqual([{ variable: 'PORTICO_PROT', problem: 'unknown variable (did you mean PORTICO_PORT?)' }]);
  });

  it('rejects an unknown variable unlike any known one without a suggestion', () => {
    const error = configError(() => load({ PORTICO_FROBNICATE: '1' }));
    expect(problems(error)).toEqual([{ variable: 'PORTICO_FROBNICATE', problem: 'unknown variable' }]);
  });

  it('ignores the test tooling variables, the agent\'s variables and other programs variables', () => {
    const config = load({
      PORTICO_TEST_REDIS_URL: 'whatever',
      PORTICO_AGENT_TOKEN: 'agent',
      PORTICO_AGENT_CONTROL_PLANE: 'http://10.0.0.1:8400',
      HOME: '/root',
      PORTICOX: '1',
    });
    expect(config.port).toBe(8400);
  });

  it('returns a deep-frozen object', () => {
    const config = load({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.consul)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.consul as { addr?: string }).addr = 'x:1';
    }).toThrow(TypeError);
  });

  describe('with a config file', () => {
    let dir: string;

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'portico-config-'));
    });
    afterEach(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    function writeConfig(content: unknown, name = 'portico.json'): string {
      const file = join(dir, name);
      writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
      return file;
    }

    it('reads JSON numbers, booleans and strings from it', () => {
      const file = writeConfig({
        PORTICO_PORT: 9100,
        PORTICO_SAMPLES: false,
        PORTICO_LOG_LEVEL: 'warn',
        PORTICO_BODY_LIMIT: '4096',
        PORTICO_REDIS_URL: 'redis://cache:6379',
      });
      const config = load({ PORTICO_CONFIG_FILE: file });
      expect(config).toMatchObject({
        port: 9100,
        samples: false,
        logLevel: 'warn',
        bodyLimit: 4096,
        redisUrl: 'redis://cache:6379',
        redisUrlIsDefault: false,
        configFile: file,
      });
    });

    it('lets the environment win over the file, and the file over the defaults', () => {
      const file = writeConfig({ PORTICO_PORT: 9100, PORTICO_GATEWAY_PORT: 9101 });
      const config = load({ PORTICO_CONFIG_FILE: file, PORTICO_PORT: '9200' });
      expect(config.port).toBe(9200);
      expect(config.gatewayPort).toBe(9101);
      expect(config.host).toBe('127.0.0.1');
    });

    it('resolves a relative file path against the working directory', () => {
      writeConfig({ PORTICO_PORT: 9300 }, 'relative.json');
      const config = load({ PORTICO_CONFIG_FILE: 'relative.json' }, dir);
      expect(config.port).toBe(9300);
      expect(config.configFile).toBe(join(dir, 'relative.json'));
      expect(config.dataDir).toBe(join(dir, '.portico'));
    });

    it('names the file in a problem with one of its values', () => {
      const file = writeConfig({ PORTICO_PORT: 'abc', PORTICO_SAMPLES: 'sometimes' });
      const error = configError(() => load({ PORTICO_CONFIG_FILE: file }));
      expect(problems(error)).toEqual([
        { variable: 'PORTICO_PORT', problem: `must be an integer from 0 to 65535, got "abc" (in config file "${file}")` },
        { variable: 'PORTICO_SAMPLES', problem: `must be one of 1, 0, true, false, yes, no, got "sometimes" (in config file "${file}")` },
      ]);
    });

    it('rejects a JSON value of the wrong type', () => {
      const file = writeConfig({ PORTICO_PORT: 80.5, PORTICO_HOST: 1, PORTICO_SHUTDOWN_TIMEOUT: 10, PORTICO_SAMPLES: null });
      const error = configError(() => load({ PORTICO_CONFIG_FILE: file }));
      expect(problems(error).map((p) => p.variable).sort()).toEqual([
        'PORTICO_HOST',
        'PORTICO_PORT',
        'PORTICO_SAMPLES',
        'PORTICO_SHUTDOWN_TIMEOUT',
      ]);
    });

    it('reports a missing file by name', () => {
      const file = join(dir, 'missing.json');
      const error = configError(() => load({ PORTICO_CONFIG_FILE: file }));
      expect(problems(error)).toEqual([
        { variable: 'PORTICO_CONFIG_FILE', problem: `cannot read config file "${file}": no such file` },
      ]);
    });

    it('reports a directory given as the file', () => {
      const error = configError(() => load({ PORTICO_CONFIG_FILE: dir }));
      expect(problems(error)[0]?.problem).toContain(`cannot read config file "${dir}"`);
    });

    it('reports a file that is not JSON', () => {
      const file = writeConfig('PORTICO_PORT=9000\n');
      const error = configError(() => load({ PORTICO_CONFIG_FILE: file }));
      expect(problems(error)).toHaveLength(1);
      expect(problems(error)[0]?.problem).toMatch(new RegExp(`^config file "${file}" is not valid JSON: `));
    });

    it('reports a file that is not a JSON object', () => {
      const file = writeConfig([1, 2]);
      const error = configError(() => load({ PORTICO_CONFIG_FILE: file }));
      expect(problems(error)[0]?.problem).toContain('must hold a JSON object');
    });

    it('reports unknown keys by name, and a file naming itself', () => {
      const file = writeConfig({ PORTICO_PROT: 9000, port: 9000, PORTICO_CONFIG_FILE: 'other.json' });
      const error = configError(() => load({ PORTICO_CONFIG_FILE: file }));
      expect(problems(error)).toEqual([
        { variable: 'PORTICO_PROT', problem: `unknown key in config file "${file}" (did you mean PORTICO_PORT?)` },
        { variable: 'port', problem: `unknown key in config file "${file}"` },
        { variable: 'PORTICO_CONFIG_FILE', problem: `can only be set in the environment, not in config file "${file}"` },
      ]);
    });

    it('reports problems in the environment and in the file together', () => {
      const file = writeConfig({ PORTICO_BODY_LIMIT: 10 });
      const error = configError(() => load({ PORTICO_CONFIG_FILE: file, PORTICO_PORT: 'x', PORTICO_PROT: '1' }));
      expect(problems(error).map((p) => p.variable)).toEqual(['PORTICO_PROT', 'PORTICO_PORT', 'PORTICO_BODY_LIMIT']);
    });

    it('does not echo a short admin token from the file either', () => {
      const file = writeConfig({ PORTICO_ADMIN_TOKEN: 'short-secret' });
      const error = configError(() => load({ PORTICO_CONFIG_FILE: file }));
      expect(error.message).not.toContain('short-secret');
      expect(error.message).toContain('PORTICO_ADMIN_TOKEN: must be at least 32 characters long');
    });
  });
});
