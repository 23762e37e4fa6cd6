/**
 * `portico-agent`: the composition root. Parse the command line (usage errors and --help end here),
 * make the logger, run the sidecar, exit with its code.
 */
import { parseCommandLine } from './cli/command-line.js';
import { createLogger } from './logger.js';
import { runSidecar } from './sidecar.js';

const parsed = parseCommandLine(process.argv.slice(2));
if ('exitCode' in parsed) process.exit(parsed.exitCode);

const log = createLogger(parsed.settings.logLevel);
try {
  process.exit(await runSidecar(parsed.settings, log));
} catch (error) {
  log.fatal({ err: error }, 'portico-agent failed');
  process.exit(1);
}
