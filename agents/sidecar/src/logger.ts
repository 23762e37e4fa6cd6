import { destination, pino, type Logger } from 'pino';

/**
 * The sidecar's log: pino JSON lines on stderr (stdout stays the supervised command's), written
 * synchronously so nothing is lost when the process exits right after a fatal line.
 */
export function createLogger(level: string): Logger {
  return pino({ name: 'portico-agent', level }, destination({ dest: 2, sync: true }));
}
