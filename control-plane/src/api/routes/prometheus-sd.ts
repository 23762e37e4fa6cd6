import { isIP } from 'node:net';
import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type RegistryBackend } from '../../registry/registry-backend.js';
import { compareStrings, type Instance, instanceHealth } from '../../registry/registry.js';
import { authErrorResponses } from '../schemas/common.js';
import { PrometheusSdQuerystring, PrometheusTargetGroups } from '../schemas/registry.js';

/** The backend whose instances are listed. */
export interface PrometheusSdRoutesOptions {
  backend: RegistryBackend;
}

interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** `host:port`, with IPv6 addresses in brackets as Prometheus expects. */
function target(instance: Instance): string {
  return isIP(instance.address) === 6 ? `[${instance.address}]:${instance.port}` : `${instance.address}:${instance.port}`;
}

/** A meta key as a label name: anything outside `[a-zA-Z0-9_]` becomes `_`, as Prometheus' own SDs do. */
function labelName(key: string): string {
  return key.replace(/[^a-zA-Z0-9_]/g, '_');
}

/**
 * One target group per instance. Every label is a `__meta_portico_*` label, as Prometheus' own service
 * discoveries do: relabelling maps what an operator wants onto target labels, and the rest is dropped
 * before scraping. Tags are joined with commas and wrapped in them (`,a,b,`, `,,` for none), as
 * `__meta_consul_tags` is, so one regular expression (`.*,tag,.*`) finds a tag anywhere.
 */
export function targetGroup(instance: Instance): TargetGroup {
  const labels: Record<string, string> = {
    __meta_portico_service: instance.service,
    __meta_portico_instance_id: instance.id,
    __meta_portico_address: instance.address,
    __meta_portico_port: String(instance.port),
    __meta_portico_tags: `,${instance.tags.join(',')},`,
    __meta_portico_health: instanceHealth(instance),
    __meta_portico_maintenance: String(instance.maintenance !== null),
  };
  for (const [key, value] of Object.entries(instance.meta)) labels[`__meta_portico_meta_${labelName(key)}`] = value;
  return { targets: [target(instance)], labels };
}

/**
 * `GET /api/v1/sd/prometheus`: every instance in Prometheus' `http_sd` format, for
 * `http_sd_configs` with a bearer token (a `viewer` token is enough).
 *
 * Every instance is listed by default, its health in `__meta_portico_health`: scraping a critical
 * instance is how its `up` series shows the failure, so dropping it is the operator's choice
 * (relabel with `action: keep` on `passing`, or ask for `?passing`). `?service=` (repeatable)
 * narrows the list to some services.
 *
 * ```yaml
 * scrape_configs:
 *   - job_name: portico
 *     http_sd_configs:
 *       - url: http://portico:8400/api/v1/sd/prometheus
 *         authorization: { type: Bearer, credentials: <token> }
 *     relabel_configs:
 *       - { source_labels: [__meta_portico_service], target_label: service }
 *       - { source_labels: [__meta_portico_instance_id], target_label: instance }
 * ```
 */
export const prometheusSdRoutes: FastifyPluginAsyncTypebox<PrometheusSdRoutesOptions> = async (app, { backend }) => {
  app.get(
    '/sd/prometheus',
    {
      config: { permission: 'registry:read' },
      schema: {
        tags: ['registry'],
        summary: 'Every instance as a Prometheus http_sd target group, with __meta_portico_* labels.',
        description:
          'Labels: __meta_portico_service, __meta_portico_instance_id, __meta_portico_address, __meta_portico_port, ' +
          '__meta_portico_tags (",a,b,"), __meta_portico_health, __meta_portico_maintenance, __meta_portico_meta_<key>. ' +
          'Every instance is listed unless ?passing is given.',
        querystring: PrometheusSdQuerystring,
        response: { 200: PrometheusTargetGroups, ...authErrorResponses },
      },
    },
    async (request) => {
      const passingOnly = request.query.passing === '' || request.query.passing === 'true';
      const names = request.query.service ?? (await backend.services()).value.map((service) => service.name);
      const groups: TargetGroup[] = [];
      for (const service of [...new Set(names)].sort()) {
        const { value } = await backend.instances({ service, passingOnly });
        for (const instance of [...value].sort((a, b) => compareStrings(a.id, b.id))) groups.push(targetGroup(instance));
      }
      return groups;
    },
  );
};
