import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanEnv, run, type RunningProcess } from '../../../sdk/test/support/portico.js';

export const SIDECAR_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `portico-agent` as its own process, from its sources; the token goes in PORTICO_AGENT_TOKEN. */
export function startSidecar(args: string[], token?: string): RunningProcess {
  return run(process.execPath, ['--import', 'tsx', join(SIDECAR_DIR, 'src', 'main.ts'), ...args], {
    cwd: SIDECAR_DIR,
    env: cleanEnv(token === undefined ? {} : { PORTICO_AGENT_TOKEN: token }),
  });
}

/** The sidecar's pino lines (stderr and stdout are captured together; other lines are skipped). */
export function logLines(sidecar: RunningProcess): Array<{ level: number; msg: string; time: number; [key: string]: unknown }> {
  return sidecar
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{"level"'))
    .map((line) => JSON.parse(line) as { level: number; msg: string; time: number });
}

/**
 * A small HTTP service for the sidecar to start with `-- node -e ...`: `/health` answers 200; on
 * SIGTERM it says so on stdout and exits with `exitCode` after closing its server.
 */
export function childServiceScript(port: number, exitCode: number): string[] {
  const source = [
    "const server = require('node:http').createServer((q, s) => s.end(q.url === '/health' ? 'ok' : 'hello'));",
    `server.listen(${port}, '127.0.0.1', () => console.log('child listening'));`,
    `process.on('SIGTERM', () => { console.log('child got SIGTERM at ' + Date.now()); server.close(); server.closeAllConnections(); process.exit(${exitCode}); });`,
  ].join('\n');
  return [process.execPath, '-e', source];
}
