import { type AgentError, createAgent, isAgentError } from '@portico/sdk';
import { type Logger } from 'pino';
import { type ChildExit, exitCodeOf, SupervisedChild } from './child-process.js';
import { EXIT_CODES, type SidecarSettings } from './cli/command-line.js';

/** What ends a running sidecar: a stop signal, the service exiting, or the control plane refusing the agent. */
type Ending = { kind: 'signal'; signal: NodeJS.Signals } | { kind: 'child'; exit: ChildExit } | { kind: 'fatal'; error: AgentError };

/** Signals passed straight on to the service: they are its business (reload, reopen logs). */
const FORWARDED: NodeJS.Signals[] = ['SIGHUP', 'SIGUSR2'];
const STOPPING: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/** A readable line for a fatal refusal, with what to do about it. */
function explain(error: AgentError): string {
  if (error.statusCode === 401) {
    return `${error.message} Check --token / PORTICO_AGENT_TOKEN. Agent tokens live in the control plane's store: a token issued before its data was wiped no longer exists.`;
  }
  if (error.statusCode === 403) return `${error.message} Issue an agent token that names this service (POST /api/v1/tokens {"role":"agent","services":[...]}).`;
  return error.message;
}

function exitCodeForError(error: AgentError): number {
  return error.kind === 'unauthorized' ? EXIT_CODES.unauthorized : EXIT_CODES.failure;
}

/**
 * `portico-agent` at run time: the SDK's agent, plus the service as a child process when a command is
 * given. Returns the exit code:
 *
 * - SIGTERM/SIGINT: maintenance → drain → deregister (the agent's `stop()`), then the signal is passed
 *   to the service, which has `stopTimeoutMs` to exit before SIGKILL; its exit code is returned (0
 *   without a service). A second signal cuts the drain short; so does the service exiting meanwhile.
 * - The service exits by itself: deregister at once (nothing left to drain), return its code.
 * - The control plane refuses the agent (at start, before the service is started, or later): stop the
 *   service, return 77 for a refused token, 1 otherwise. Unreachable is not refusal: the agent retries.
 */
export async function runSidecar(settings: SidecarSettings, log: Logger, processRef: NodeJS.Process = process): Promise<number> {
  const agent = createAgent({ ...settings.agent, logger: log });
  let end!: (ending: Ending) => void;
  const ending = new Promise<Ending>((resolve) => {
    end = resolve;
  });
  let stopSignal: NodeJS.Signals | undefined;
  let child: SupervisedChild | undefined;

  const onStop = (signal: NodeJS.Signals) => {
    if (stopSignal !== undefined) {
      log.info({ signal }, 'signal received again: ending the drain now');
      agent.skipDrain();
      return;
    }
    stopSignal = signal;
    log.info({ signal }, 'stopping: maintenance, drain, deregister, then the service');
    end({ kind: 'signal', signal });
  };
  const onForward = (signal: NodeJS.Signals) => child?.signal(signal);
  for (const signal of STOPPING) processRef.on(signal, onStop);
  for (const signal of FORWARDED) processRef.on(signal, onForward);
  agent.on('fatal', (error) => end({ kind: 'fatal', error }));

  try {
    try {
      await agent.start();
    } catch (error) {
      if (!isAgentError(error)) throw error;
      log.fatal({ code: error.code, statusCode: error.statusCode }, explain(error));
      return exitCodeForError(error);
    }

    if (settings.command.length > 0 && stopSignal === undefined) {
      const started = new SupervisedChild(settings.command, log);
      child = started;
      void started.exited.then((exit) => end({ kind: 'child', exit }));
    }

    const first = await ending;
    switch (first.kind) {
      case 'signal': {
        // Draining a service that has gone already serves nothing.
        void child?.exited.then(() => agent.skipDrain());
        await agent.stop();
        if (child === undefined) return EXIT_CODES.ok;
        const exit = await child.stop(first.signal, settings.stopTimeoutMs, log);
        log.info({ code: exit.code, signal: exit.signal }, 'the service stopped');
        return exitCodeOf(exit);
      }
      case 'child': {
        const { exit } = first;
        if (exit.error !== undefined) {
          log.error({ err: exit.error.message, command: settings.command }, 'could not start the service');
          await agent.stop({ drain: false });
          return EXIT_CODES.commandNotFound;
        }
        log.info({ code: exit.code, signal: exit.signal }, 'the service exited: deregistering');
        await agent.stop({ drain: false });
        return exitCodeOf(exit);
      }
      default: {
        log.fatal({ code: first.error.code, statusCode: first.error.statusCode }, explain(first.error));
        await child?.stop('SIGTERM', settings.stopTimeoutMs, log);
        return exitCodeForError(first.error);
      }
    }
  } finally {
    for (const signal of STOPPING) processRef.off(signal, onStop);
    for (const signal of FORWARDED) processRef.off(signal, onForward);
  }
}
