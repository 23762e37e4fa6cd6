import { createHash } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * The instance id an agent uses when none is given: `<service>-<12 hex digits>`, a hash of the
 * service, the machine's host name, the address and the port. The same service on the same host and
 * port gets the same id after a restart, so a restart re-registers the instance rather than leaving a
 * dead one behind (Dapr's Consul resolver leaked one per restart); two copies on one host differ by port.
 */
export function defaultInstanceId(target: { service: string; address: string; port: number; host?: string }): string {
  const digest = createHash('sha256')
    .update([target.service, target.host ?? hostname(), target.address, String(target.port)].join('\n'))
    .digest('hex');
  return `${target.service}-${digest.slice(0, 12)}`;
}
