import { type AgentOptions, AgentError, isTcpTarget, parseDuration, resolveAgentConfig } from '@portico/sdk';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

/** Exit codes of `portico-agent`, besides the supervised command's own. */
export const EXIT_CODES = {
  ok: 0,
  /** The control plane refused the registration (other than the token), or an unexpected failure. */
  failure: 1,
  /** Bad flags. */
  usage: 2,
  /** The token is wrong, revoked, or not issued for the service (sysexits' EX_NOPERM). */
  unauthorized: 77,
  /** The command to supervise could not be started (as a shell reports it). */
  commandNotFound: 127,
} as const;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Everything the command line says, checked. */
export interface SidecarSettings {
  /** The agent's options, without a logger. */
  agent: Omit<AgentOptions, 'logger'>;
  /** The service to start and supervise (after `--`); empty when the service runs on its own. */
  command: string[];
  /** Time the command has to exit after SIGTERM before it is killed. */
  stopTimeoutMs: number;
  logLevel: (typeof LOG_LEVELS)[number];
}

/** What parsing ended in: settings to run with, or an exit (help printed, or a usage error). */
export type ParseOutcome = { settings: SidecarSettings } | { exitCode: number };

interface Flags {
  service: string;
  port: number;
  id?: string;
  address: string;
  tags?: string[];
  meta?: Record<string, string>;
  healthPath?: string;
  healthTcp?: true | string;
  interval: string;
  timeout?: string;
  controlPlane: string;
  token?: string;
  deregisterAfter: string;
  drain: string;
  stopTimeout: string;
  logLevel: SidecarSettings['logLevel'];
}

function duration(text: string): string {
  try {
    parseDuration(text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
  return text;
}

function port(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 65535) throw new InvalidArgumentError(`"${text}" is not a port (1-65535)`);
  return value;
}

function tags(text: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...text.split(',').map((tag) => tag.trim()).filter((tag) => tag !== '')];
}

function meta(text: string, previous: Record<string, string> | undefined): Record<string, string> {
  const equals = text.indexOf('=');
  if (equals < 1) throw new InvalidArgumentError(`"${text}" is not key=value`);
  return { ...previous, [text.slice(0, equals)]: text.slice(equals + 1) };
}

function tcpTarget(text: string): string {
  if (!isTcpTarget(text)) throw new InvalidArgumentError(`"${text}" is not host:port`);
  return text;
}

function program(): Command {
  return new Command('portico-agent')
    .description(
      'Registers a service with Portico, checks its health on this machine and reports each result as a TTL heartbeat. ' +
        'Registers again when the control plane lost the instance or comes back. On SIGTERM or SIGINT: maintenance, ' +
        'the drain period, deregistration, then the supervised command is stopped and its exit code returned.',
    )
    .usage('--service <name> --port <port> [options] [-- <command> [args...]]')
    .requiredOption('--service <name>', 'the service\'s name in the registry')
    .requiredOption('--port <port>', 'the port the service listens on', port)
    .option('--id <id>', 'instance id (default: <service>-<hash of service, host name, address, port>, stable across restarts)')
    .option('--address <address>', 'address others reach the service at; also the one checked', '127.0.0.1')
    .option('--tags <tags>', 'comma-separated tags (repeatable)', tags)
    .option('--meta <key=value>', 'metadata (repeatable)', meta)
    .addOption(new Option('--health-path <path>', 'HTTP check: GET http://<address>:<port><path>; 2xx passing, 429 warning, else critical').conflicts('healthTcp'))
    .addOption(new Option('--health-tcp [host:port]', 'TCP check: a connection opens (default <address>:<port>; the default check)').argParser(tcpTarget))
    .option('--interval <duration>', 'time between checks and heartbeats', duration, '10s')
    .option('--timeout <duration>', 'time a check may take (default: the interval, at most 10s)', duration)
    .addOption(new Option('--control-plane <url>', 'the control plane\'s URL').env('PORTICO_AGENT_CONTROL_PLANE').default('http://127.0.0.1:8400'))
    .addOption(new Option('--token <token>', 'an agent token issued for the service (prefer the environment variable: flags show in ps)').env('PORTICO_AGENT_TOKEN'))
    .option('--deregister-after <duration>', 'the registry removes the instance once critical this long (0: never)', duration, '1m')
    .option('--drain <duration>', 'time in maintenance before deregistering on SIGTERM', duration, '5s')
    .option('--stop-timeout <duration>', 'time the command has to exit after SIGTERM before SIGKILL', duration, '10s')
    .addOption(new Option('--log-level <level>', 'log level (pino JSON on stderr)').choices(LOG_LEVELS).default('info'))
    .argument('[command...]', 'after --: the service to start and supervise (signals forwarded, its exit code returned)')
    .addHelpText(
      'after',
      '\nDurations are written as in Consul: 500ms, 10s, 1m30s.\n' +
        'The TTL registered is 2 x interval + timeout: one late or lost heartbeat does not flap the instance.\n' +
        `Exit codes: the command's own; ${EXIT_CODES.usage} bad flags; ${EXIT_CODES.unauthorized} token refused; ${EXIT_CODES.failure} registration refused; ${EXIT_CODES.commandNotFound} command not started.\n\n` +
        'Example:\n  PORTICO_AGENT_TOKEN=ptc_... portico-agent --service catalog --port 4002 --health-path /health -- node server.js',
    )
    .showHelpAfterError('(portico-agent --help lists the flags)')
    .exitOverride();
}

/**
 * Parse `portico-agent`'s arguments (without `node` and the script). Usage errors are written to
 * stderr by commander, help to stdout; both end in an exit code rather than a settings object.
 */
export function parseCommandLine(args: string[], output?: { writeOut: (text: string) => void; writeErr: (text: string) => void }): ParseOutcome {
  const command = program();
  if (output !== undefined) command.configureOutput(output);
  try {
    command.parse(args, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return { exitCode: error.code === 'commander.helpDisplayed' || error.code === 'commander.help' ? EXIT_CODES.ok : EXIT_CODES.usage };
    throw error;
  }
  const flags = command.opts<Flags>();
  const usage = (message: string): ParseOutcome => {
    try {
      command.error(`error: ${message}`, { exitCode: EXIT_CODES.usage });
    } catch {
      // exitOverride: error() writes the message and throws
    }
    return { exitCode: EXIT_CODES.usage };
  };
  if (flags.token === undefined || flags.token === '') return usage('a token is required: set PORTICO_AGENT_TOKEN (or --token)');

  const agent: SidecarSettings['agent'] = {
    service: flags.service,
    port: flags.port,
    address: flags.address,
    tags: flags.tags ?? [],
    meta: flags.meta ?? {},
    health: flags.healthPath !== undefined ? { path: flags.healthPath } : { tcp: flags.healthTcp ?? true },
    interval: flags.interval,
    controlPlane: flags.controlPlane,
    token: flags.token,
    deregisterAfter: flags.deregisterAfter,
    drain: flags.drain,
  };
  if (flags.id !== undefined) agent.id = flags.id;
  if (flags.timeout !== undefined) agent.timeout = flags.timeout;
  if (flags.healthPath !== undefined && !flags.healthPath.startsWith('/')) return usage(`--health-path "${flags.healthPath}" must start with /`);
  try {
    resolveAgentConfig(agent);
  } catch (error) {
    if (error instanceof AgentError) return usage(error.message);
    throw error;
  }
  return { settings: { agent, command: command.args, stopTimeoutMs: parseDuration(flags.stopTimeout), logLevel: flags.logLevel } };
}
