/**
 * A short, readable phrase for a failed connection or exchange (`connection refused`, `no route to
 * host`), for probe outputs. Falls back to the error's own message.
 */
export function describeNetworkError(error: unknown): string {
  switch (errorCode(error)) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset by peer';
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return 'connection closed by the other side';
    case 'EHOSTUNREACH':
      return 'no route to host';
    case 'ENETUNREACH':
      return 'network is unreachable';
    case 'ENOTFOUND':
      return 'host not found';
    case 'EAI_AGAIN':
      return 'host name lookup failed (temporary failure)';
    case 'EADDRNOTAVAIL':
      return 'address not available';
    default:
      return error instanceof Error && error.message !== '' ? error.message : String(error);
  }
}

/** The errno or undici code of an error; Node's happy-eyeballs connect wraps one per address in an AggregateError. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  if (error instanceof AggregateError) return errorCode(error.errors[0]);
  return undefined;
}
