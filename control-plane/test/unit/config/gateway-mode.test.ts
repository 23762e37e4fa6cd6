import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ConfigProblem, loadConfig } from '../../../src/config/load.js';
import { PorticoError } from '../../../src/errors.js';

/** The variables of `portico gateway` (the gateway run on its own), and how they are checked. */

const CWD = '/srv/portico';
const TOKEN = 'ptc_gateway-viewer-token-secret';

function gateway(env: Record<string, string>) {
  return loadConfig({ env, cwd: CWD, mode: 'gateway' });
}

/** The problems `fn` reports; fails when it does not throw the config error. */
function problemsOf(fn: () => unknown): ConfigProblem[] {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PorticoError);
    expect((error as PorticoError).code).toBe('PORTICO_ERR_CONFIG_INVALID');
    const problems = (error as PorticoError).details as ConfigProblem[];
    // Every problem is in the message too, one per line, by name.
    for (const problem of problems) expect((error as PorticoError).message).toContain(`${problem.variable}: ${problem.problem}`);
    return problems;
  }
  throw new Error('expected loadConfig to throw');
}

describe('loadConfig for the gateway on its own', () => {
  it('reads PORTICO_GATEWAY_CONTROL_PLANE and PORTICO_GATEWAY_TOKEN', () => {
    const config = gateway({ PORTICO_GATEWAY_CONTROL_PLANE: 'http://10.0.0.5:8400', PORTICO_GATEWAY_TOKEN: TOKEN });
    expect(config.gatewayControlPlane).toBe('http://10.0.0.5:8400');
    expect(config.gatewayToken).toBe(TOKEN);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('follows Consul alone with PORTICO_CONSUL_ADDR, or Consul for the registry and a control plane for the routes', () => {
    expect(gateway({ PORTICO_CONSUL_ADDR: '127.0.0.1:8500' }).consul.addr).toBe('127.0.0.1:8500');
    const both = gateway({ PORTICO_CONSUL_ADDR: 'http://consul:8500', PORTICO_GATEWAY_CONTROL_PLANE: 'https://portico.internal/', PORTICO_GATEWAY_TOKEN: TOKEN });
    expect(both.gatewayControlPlane).toBe('https://portico.internal/');
  });

  it('is an error to follow nothing', () => {
    const problems = problemsOf(() => gateway({}));
    expect(problems).toEqual([{ variable: 'PORTICO_GATEWAY_CONTROL_PLANE', problem: expect.stringMatching(/must be set when the gateway runs on its own.*PORTICO_CONSUL_ADDR/) as unknown }]);
  });

  it('needs the token with the control plane, and the control plane with the token', () => {
    expect(problemsOf(() => gateway({ PORTICO_GATEWAY_CONTROL_PLANE: 'http://127.0.0.1:8400' }))).toEqual([
      { variable: 'PORTICO_GATEWAY_TOKEN', problem: expect.stringContaining('must be set too when PORTICO_GATEWAY_CONTROL_PLANE is set') as unknown },
    ]);
    // Alone, a token means the control plane was forgotten: one problem, naming it.
    expect(problemsOf(() => gateway({ PORTICO_GATEWAY_TOKEN: TOKEN })).map((p) => p.variable)).toEqual(['PORTICO_GATEWAY_CONTROL_PLANE']);
    expect(problemsOf(() => gateway({ PORTICO_CONSUL_ADDR: '127.0.0.1:8500', PORTICO_GATEWAY_TOKEN: TOKEN }))).toEqual([
      { variable: 'PORTICO_GATEWAY_CONTROL_PLANE', problem: expect.stringContaining('must be set too when PORTICO_GATEWAY_TOKEN is set') as unknown },
    ]);
  });

  it.each(['127.0.0.1:8400', 'ftp://host:8400', 'http://host:8400/?x=1', 'http://host:8400/#top', 'http://', 'http://[::1'])(
    'refuses PORTICO_GATEWAY_CONTROL_PLANE=%s, naming it',
    (url) => {
      const problems = problemsOf(() => gateway({ PORTICO_GATEWAY_CONTROL_PLANE: url, PORTICO_GATEWAY_TOKEN: TOKEN }));
      expect(problems.map((p) => p.variable)).toEqual(['PORTICO_GATEWAY_CONTROL_PLANE']);
      expect(problems[0]?.problem).toMatch(/must be/);
    },
  );

  it('never echoes the token', () => {
    const problems = problemsOf(() => gateway({ PORTICO_GATEWAY_TOKEN: TOKEN, PORTICO_GATEWAY_CONTROL_PLANE: 'nope' }));
    expect(JSON.stringify(problems)).not.toContain(TOKEN);
  });

  it('reports every problem at once, the gateway\'s with the others', () => {
    const problems = problemsOf(() => gateway({ PORTICO_PORT: 'abc', PORTICO_GATEWAY_PORT: '70000', PORTICO_GATEWAY_CONTROL_PLANE: 'http://127.0.0.1:8400' }));
    expect(problems.map((p) => p.variable).sort()).toEqual(['PORTICO_GATEWAY_PORT', 'PORTICO_GATEWAY_TOKEN', 'PORTICO_PORT']);
  });

  it('takes both from the config file too', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-gateway-config-'));
    try {
      const file = join(dir, 'gateway.json');
      writeFileSync(file, JSON.stringify({ PORTICO_GATEWAY_CONTROL_PLANE: 'http://cp:8400', PORTICO_GATEWAY_TOKEN: TOKEN }));
      const config = gateway({ PORTICO_CONFIG_FILE: file });
      expect(config.gatewayControlPlane).toBe('http://cp:8400');
      expect(config.gatewayToken).toBe(TOKEN);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves them alone for the control plane, which neither needs nor reads them', () => {
    expect(() => loadConfig({ env: {}, cwd: CWD })).not.toThrow();
    expect(loadConfig({ env: { PORTICO_GATEWAY_TOKEN: TOKEN }, cwd: CWD }).gatewayToken).toBe(TOKEN);
    // A value that is not valid still is not, whichever program reads it.
    expect(problemsOf(() => loadConfig({ env: { PORTICO_GATEWAY_CONTROL_PLANE: 'nope' }, cwd: CWD })).map((p) => p.variable)).toEqual(['PORTICO_GATEWAY_CONTROL_PLANE']);
  });
});
