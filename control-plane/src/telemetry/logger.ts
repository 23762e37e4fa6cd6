import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Fields that may carry secrets, censored wherever they appear in a log line. Requests are not logged
 * with their headers, but a stray `log.info({ req })` or an error carrying a request must not leak a token.
 */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-consul-token"]',
  'headers.authorization',
  'headers["x-consul-token"]',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'adminToken',
  '*.adminToken',
  'password',
  '*.password',
];

/** @param options.service the `service` field of every line (default `portico-control-plane`; `portico gateway` says `portico-gateway`). */
export function createLogger(options: { level: string; destination?: DestinationStream; service?: string }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: options.service ?? 'portico-control-plane' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    options.destination,
  );
}

export type { Logger };
