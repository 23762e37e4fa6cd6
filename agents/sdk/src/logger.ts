/**
 * The logging the SDK does: the subset of pino's API it calls, so a pino logger (or a child of one)
 * fits as it is. Without one, the SDK says nothing: a library does not write to the terminal.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const ignore = (): void => undefined;

/** A logger that drops everything. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };
