import { type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PorticoError } from '../../errors.js';

/**
 * A dependency `/readyz` checks: resolves when it answers, rejects with the reason otherwise. It may
 * resolve with a note that is shown without making the process unready (e.g. "serving the last known state").
 */
export type ReadinessCheck = () => Promise<void | string>;

export interface HealthRoutesOptions {
  checks: Record<string, ReadinessCheck>;
  /** True once shutdown began: the process still serves in-flight work but wants no new traffic. */
  isShuttingDown: () => boolean;
  /** Bound on each check, so a hung dependency cannot hang the probe. */
  checkTimeoutMs?: number;
}

const CheckResult = Type.Object({
  ok: Type.Boolean(),
  code: Type.Optional(Type.String()),
  message: Type.Optional(Type.String()),
});

const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  checks: Type.Record(Type.String(), CheckResult),
});

interface CheckOutcome {
  ok: boolean;
  code?: string;
  message?: string;
}

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<CheckOutcome> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const note = await Promise.race([
      check(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return typeof note === 'string' ? { ok: true, message: note } : { ok: true };
  } catch (error) {
    return error instanceof PorticoError
      ? { ok: false, code: error.code, message: error.message }
      : { ok: false, message: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** `/healthz` (the process is alive) and `/readyz` (it can serve: store and Redis answer). Unauthenticated, for probes. */
export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, options) => {
  const timeoutMs = options.checkTimeoutMs ?? 2000;

  app.get(
    '/healthz',
    { schema: { tags: ['health'], summary: 'Liveness: the process answers.', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: the store and Redis answer. 503 with the reason otherwise.',
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_request, reply) => {
      const names = Object.keys(options.checks);
      const results = await Promise.all(names.map((name) => runCheck(options.checks[name] as ReadinessCheck, timeoutMs)));
      const checks: Record<string, CheckOutcome> = Object.fromEntries(names.map((name, i) => [name, results[i] as CheckOutcome]));
      if (options.isShuttingDown()) {
        checks.shutdown = { ok: false, code: 'PORTICO_ERR_SERVER_SHUTTING_DOWN', message: new PorticoError('PORTICO_ERR_SERVER_SHUTTING_DOWN').message };
      }
      const ready = Object.values(checks).every((check) => check.ok);
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
    },
  );
};
