import { describe, expect, it } from 'vitest';
import { EXIT_CODES, parseCommandLine, type SidecarSettings } from '../../src/cli/command-line.js';

function parse(args: string[], env: Record<string, string> = { PORTICO_AGENT_TOKEN: 'ptc_secret' }) {
  const out: string[] = [];
  const err: string[] = [];
  const saved = process.env.PORTICO_AGENT_TOKEN;
  if (env.PORTICO_AGENT_TOKEN === undefined) delete process.env.PORTICO_AGENT_TOKEN;
  else process.env.PORTICO_AGENT_TOKEN = env.PORTICO_AGENT_TOKEN;
  try {
    const outcome = parseCommandLine(args, { writeOut: (text) => out.push(text), writeErr: (text) => err.push(text) });
    return { outcome, out: out.join(''), err: err.join('') };
  } finally {
    if (saved === undefined) delete process.env.PORTICO_AGENT_TOKEN;
    else process.env.PORTICO_AGENT_TOKEN = saved;
  }
}

function settings(args: string[]): SidecarSettings {
  const { outcome, err } = parse(args);
  if (!('settings' in outcome)) throw new Error(`expected settings, got exit ${outcome.exitCode}: ${err}`);
  return outcome.settings;
}

describe('portico-agent\'s command line', () => {
  it('reads the control plane\'s URL from PORTICO_AGENT_CONTROL_PLANE, a flag overriding it', () => {
    const saved = process.env.PORTICO_AGENT_CONTROL_PLANE;
    process.env.PORTICO_AGENT_CONTROL_PLANE = 'http://cp.internal:8400';
    try {
      expect(settings(['--service', 'catalog', '--port', '4002']).agent.controlPlane).toBe('http://cp.internal:8400');
      expect(settings(['--service', 'catalog', '--port', '4002', '--control-plane', 'http://other:1']).agent.controlPlane).toBe('http://other:1');
    } finally {
      if (saved === undefined) delete process.env.PORTICO_AGENT_CONTROL_PLANE;
      else process.env.PORTICO_AGENT_CONTROL_PLANE = saved;
    }
    expect(settings(['--service', 'catalog', '--port', '4002']).agent.controlPlane).toBe('http://127.0.0.1:8400');
  });

  it('reads every flag, the token from PORTICO_AGENT_TOKEN, and the command after --', () => {
    const result = settings([
      '--service', 'catalog', '--port', '4002', '--id', 'catalog-1', '--address', '10.0.0.7', '--tags', 'v1,blue', '--tags', 'canary',
      '--meta', 'zone=a', '--meta', 'build=1=2', '--health-path', '/health', '--interval', '5s', '--timeout', '1s',
      '--control-plane', 'http://cp:8400', '--deregister-after', '2m', '--drain', '3s', '--stop-timeout', '20s', '--log-level', 'debug',
      '--', 'node', 'server.js', '--port', '4002',
    ]);
    expect(result).toEqual({
      agent: {
        service: 'catalog', port: 4002, id: 'catalog-1', address: '10.0.0.7', tags: ['v1', 'blue', 'canary'], meta: { zone: 'a', build: '1=2' },
        health: { path: '/health' }, interval: '5s', timeout: '1s', controlPlane: 'http://cp:8400', token: 'ptc_secret', deregisterAfter: '2m', drain: '3s',
      },
      command: ['node', 'server.js', '--port', '4002'],
      stopTimeoutMs: 20_000,
      logLevel: 'debug',
    });
  });

  it('defaults to a TCP check of the service\'s port, 10s, 1m, 5s and the local control plane', () => {
    const result = settings(['--service', 'catalog', '--port', '4002']);
    expect(result.agent).toMatchObject({ address: '127.0.0.1', health: { tcp: true }, interval: '10s', deregisterAfter: '1m', drain: '5s', controlPlane: 'http://127.0.0.1:8400' });
    expect(result.command).toEqual([]);
    expect(settings(['--service', 'catalog', '--port', '4002', '--health-tcp', '127.0.0.1:9000']).agent.health).toEqual({ tcp: '127.0.0.1:9000' });
  });

  it('prints help and exits 0 on --help', () => {
    const { outcome, out } = parse(['--help']);
    expect(outcome).toEqual({ exitCode: EXIT_CODES.ok });
    for (const flag of ['--service', '--port', '--id', '--address', '--tags', '--meta', '--health-path', '--health-tcp', '--interval', '--timeout', '--control-plane', '--token', '--deregister-after', '--drain']) {
      expect(out).toContain(flag);
    }
    expect(out).toContain('PORTICO_AGENT_TOKEN');
  });

  it.each([
    [['--port', '4002'], /required option '--service <name>' not specified/],
    [['--service', 'catalog', '--port', 'http'], /"http" is not a port/],
    [['--service', 'catalog', '--port', '4002', '--interval', '10'], /"10" is not a duration/],
    [['--service', 'catalog', '--port', '4002', '--health-path', '/h', '--health-tcp'], /cannot be used with option '--health-tcp/],
    [['--service', 'catalog', '--port', '4002', '--meta', 'novalue'], /"novalue" is not key=value/],
    [['--service', 'catalog', '--port', '4002', '--interval', '50ms'], /interval: must be at least 100 ms/],
    [['--service', 'bad name', '--port', '4002'], /service: "bad name" is not a service name/],
    [['--service', 'catalog', '--port', '4002', '--health-path', 'health'], /must start with \//],
    [['--service', 'catalog', '--port', '4002', '--frobnicate'], /unknown option '--frobnicate'/],
  ])('refuses %j with a usage error, exit 2', (args, message) => {
    const { outcome, err } = parse(args);
    expect(outcome).toEqual({ exitCode: EXIT_CODES.usage });
    expect(err).toMatch(message);
  });

  it('refuses to start without a token, naming the variable', () => {
    const { outcome, err } = parse(['--service', 'catalog', '--port', '4002'], {});
    expect(outcome).toEqual({ exitCode: EXIT_CODES.usage });
    expect(err).toMatch(/a token is required: set PORTICO_AGENT_TOKEN/);
  });
});
