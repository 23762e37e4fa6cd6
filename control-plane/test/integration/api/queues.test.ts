import { randomUUID } from 'node:crypto';
import { type DeadLetter } from '@portico/sdk/bus/dead-letter';
import { messageJobOptions } from '@portico/sdk/bus/deliveries';
import { createEnvelope, type Envelope } from '@portico/sdk/bus/envelope';
import { deadLetterQueue, serviceQueue } from '@portico/sdk/bus/queues';
import { type Job, Queue, Worker } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { type JobView } from '../../../src/messaging/queue-admin.js';
import { redisServerInstalled, startRedisServer } from '../../support/redis-server.js';
import { bearer, createTestApp, useTestApp } from '../../support/test-app.js';

const canKillRedis = await redisServerInstalled();

describe('/api/v1/queues and /api/v1/messages over real BullMQ queues', () => {
  const t = useTestApp();
  const opened: Array<Queue | Worker> = [];
  afterAll(async () => {
    await Promise.all(opened.map((part) => part.close()));
  });

  const svc = () => `svc-${randomUUID().slice(0, 8)}`;
  const queue = (name: string) => {
    const q = new Queue(name, { connection: { url: t.redisUrl } });
    opened.push(q);
    return q;
  };
  const envelope = (type: string, payload: unknown = { n: 1 }) => createEnvelope({ kind: 'event', type, source: 'catalog', payload });
  const deadLetter = (name: string, message: Envelope | undefined): DeadLetter => ({
    reason: message === undefined ? 'malformed' : 'failed',
    queue: name,
    jobId: message?.id ?? randomUUID(),
    ...(message === undefined ? { raw: 'not an envelope' } : { envelope: message }),
    error: { message: 'handler failed' },
    attempts: 3,
    history: [{ attempt: 3, error: 'handler failed', at: new Date().toISOString() }],
    deadAt: new Date().toISOString(),
  });
  const addDeadLetter = async (name: string, message: Envelope | undefined) => {
    const letter = deadLetter(name, message);
    await queue(deadLetterQueue(name)).add(message?.type ?? 'malformed', letter, { jobId: letter.jobId });
    return letter;
  };
  const get = (url: string, token = t.adminToken) => t.app.inject({ method: 'GET', url, headers: bearer(token) });
  const post = (url: string, payload?: unknown, token = t.adminToken) =>
    t.app.inject({ method: 'POST', url, headers: bearer(token), ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
  const del = (url: string, token = t.adminToken) => t.app.inject({ method: 'DELETE', url, headers: bearer(token) });
  const jobsIn = async (name: string, state: string) => (await get(`/api/v1/queues/${name}/jobs?state=${state}`)).json<{ total: number; jobs: JobView[] }>();

  /** Run a worker over `name` until `count` jobs finished; `fail` names the message types it throws on. */
  async function work(name: string, count: number, fail: string[] = []): Promise<Worker> {
    let finished = 0;
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const worker = new Worker(
      name,
      async (job: Job) => {
        if (fail.includes(job.name)) throw new Error(`boom: ${job.name}`);
      },
      { connection: { url: t.redisUrl, maxRetriesPerRequest: null } },
    );
    opened.push(worker);
    const count1 = () => (++finished >= count ? done() : undefined);
    worker.on('completed', count1);
    worker.on('failed', count1);
    await all;
    return worker;
  }

  /** A queue with one completed, one failed, two waiting and one delayed job, and two dead letters (one malformed). */
  async function populated() {
    const service = svc();
    const name = serviceQueue(service);
    const q = queue(name);
    const ok = envelope('product.viewed');
    const bad = envelope('product.fails');
    await q.add(ok.type, ok, messageJobOptions(ok.id));
    await q.add(bad.type, bad, { jobId: bad.id, attempts: 1 });
    const worker = await work(name, 2, ['product.fails']);
    const live = (await get('/api/v1/queues')).json<{ queues: Array<{ name: string; consumers: number }> }>();
    expect(live.queues.find((entry) => entry.name === name)?.consumers).toBe(1);
    await worker.close();
    const waiting = [envelope('product.waiting', { n: 1 }), envelope('product.waiting', { n: 2 })];
    for (const message of waiting) await q.add(message.type, message, messageJobOptions(message.id));
    const delayed = envelope('product.later');
    await q.add(delayed.type, delayed, { ...messageJobOptions(delayed.id), delay: 60_000 });
    const dead = await addDeadLetter(name, envelope('product.dead'));
    const malformed = await addDeadLetter(name, undefined);
    return { service, name, q, ok, bad, waiting, delayed, dead, malformed };
  }

  it('lists every service queue with counts, dead letters, rates, oldest waiting age and consumers', async () => {
    const { service, name } = await populated();
    await queue(`not-a-service-${randomUUID()}`).add('x', {});
    const res = await get('/api/v1/queues');
    expect(res.statusCode, res.body).toBe(200);
    const { queues } = res.json<{ queues: Array<Record<string, unknown>> }>();
    const entry = queues.find((q) => q.name === name);
    expect(entry).toMatchObject({
      name,
      service,
      counts: { waiting: 2, active: 0, delayed: 1, failed: 1, completed: 1 },
      deadLetters: 2,
      rates: { completedPerMinute: 1, failedPerMinute: 1, source: 'finished-jobs' },
      consumers: 0,
    });
    expect(entry!.counts).not.toHaveProperty('paused');
    expect(entry!.oldestWaitingAgeMs).toEqual(expect.any(Number));
    expect(queues.every((q) => String(q.name).endsWith('_service_queue'))).toBe(true);
    expect(queues.some((q) => String(q.name).endsWith('.dlq'))).toBe(false);
  });

  it('lists jobs by state with their envelope, attempts, failure and times; state=dead lists the dead letters', async () => {
    const { name, ok, bad, waiting, delayed, dead, malformed } = await populated();
    const waitingPage = await jobsIn(name, 'waiting');
    expect(waitingPage.total).toBe(2);
    // Oldest first: the next to be processed.
    expect(waitingPage.jobs.map((job) => job.id)).toEqual(waiting.map((message) => message.id));
    expect(waitingPage.jobs[0]).toMatchObject({ name: 'product.waiting', state: 'waiting', data: waiting[0], attemptsMade: 0, failedReason: null, processedAt: null, finishedAt: null });
    expect(Date.parse(waitingPage.jobs[0]!.createdAt)).toBeGreaterThan(Date.now() - 60_000);

    const failed = await jobsIn(name, 'failed');
    expect(failed.jobs).toEqual([expect.objectContaining({ id: bad.id, name: bad.type, data: bad, attemptsMade: 1, failedReason: 'boom: product.fails', finishedAt: expect.any(String) })]);
    expect((await jobsIn(name, 'completed')).jobs.map((job) => job.id)).toEqual([ok.id]);
    expect((await jobsIn(name, 'delayed')).jobs.map((job) => job.id)).toEqual([delayed.id]);
    expect((await jobsIn(name, 'active')).jobs).toEqual([]);
    const deadPage = await jobsIn(name, 'dead');
    expect(deadPage.total).toBe(2);
    expect(deadPage.jobs.map((job) => job.id).sort()).toEqual([dead.jobId, malformed.jobId].sort());
    expect(deadPage.jobs.find((job) => job.id === dead.jobId)).toMatchObject({ state: 'dead', data: dead });

    const second = (await get(`/api/v1/queues/${name}/jobs?state=waiting&limit=1&offset=1`)).json<{ total: number; limit: number; offset: number; jobs: JobView[] }>();
    expect(second).toMatchObject({ total: 2, limit: 1, offset: 1 });
    expect(second.jobs.map((job) => job.id)).toEqual([waiting[1]!.id]);
  });

  it('answers a bad state or limit with a coded 400 and an unknown queue with a coded 404', async () => {
    const { name } = await populated();
    for (const query of ['state=lost', 'state=waiting&limit=0', 'state=waiting&limit=501', 'state=waiting&offset=-1', 'limit=10', 'state=waiting&extra=1']) {
      const res = await get(`/api/v1/queues/${name}/jobs?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().code, query).toBe('PORTICO_ERR_REQUEST_INVALID');
    }
    for (const unknown of [serviceQueue(svc()), 'orders', `${svc()}_service_queue.dlq`]) {
      const res = await get(`/api/v1/queues/${unknown}/jobs?state=waiting`);
      expect(res.statusCode, unknown).toBe(404);
      expect(res.json().code).toBe('PORTICO_ERR_QUEUE_NOT_FOUND');
    }
  });

  it('retries a failed job (it waits again) and replays a dead letter by id, auditing both; refuses others with coded errors', async () => {
    const { name, q, bad, waiting, dead, malformed } = await populated();
    const retried = await post(`/api/v1/queues/${name}/jobs/${bad.id}/retry`);
    expect(retried.statusCode, retried.body).toBe(200);
    expect(retried.json()).toEqual({ queue: name, id: bad.id, outcome: 'retried', jobId: bad.id });
    expect(await q.getJobState(bad.id)).toBe('waiting');
    expect((await q.getJob(bad.id))!.attemptsMade).toBe(0);

    const replayed = await post(`/api/v1/queues/${name}/jobs/${dead.jobId}/retry`);
    expect(replayed.statusCode, replayed.body).toBe(200);
    const { jobId } = replayed.json<{ outcome: string; jobId: string }>();
    expect(replayed.json()).toMatchObject({ outcome: 'replayed', id: dead.jobId });
    expect(jobId).toMatch(new RegExp(`^${dead.envelope!.id}-replay-\\d+$`));
    const replayedJob = await q.getJob(jobId);
    expect(replayedJob).toMatchObject({ name: dead.envelope!.type, data: dead.envelope });
    expect(await q.getJobState(jobId)).toBe('waiting');
    expect(await queue(deadLetterQueue(name)).getJob(dead.jobId)).toBeUndefined();

    const notFailed = await post(`/api/v1/queues/${name}/jobs/${waiting[0]!.id}/retry`);
    expect([notFailed.statusCode, notFailed.json().code]).toEqual([409, 'PORTICO_ERR_QUEUE_JOB_NOT_FAILED']);
    const malformedRetry = await post(`/api/v1/queues/${name}/jobs/${malformed.jobId}/retry`);
    expect([malformedRetry.statusCode, malformedRetry.json().code]).toEqual([409, 'PORTICO_ERR_QUEUE_DEAD_LETTER_MALFORMED']);
    const missing = await post(`/api/v1/queues/${name}/jobs/${randomUUID()}/retry`);
    expect([missing.statusCode, missing.json().code]).toEqual([404, 'PORTICO_ERR_QUEUE_JOB_NOT_FOUND']);
    const noQueue = await post(`/api/v1/queues/${serviceQueue(svc())}/jobs/${bad.id}/retry`);
    expect([noQueue.statusCode, noQueue.json().code]).toEqual([404, 'PORTICO_ERR_QUEUE_NOT_FOUND']);

    const audit = (await t.store.audit.list({ limit: 1000 })).filter((entry) => entry.target === `queue:${name}`);
    expect(audit.map((entry) => [entry.action, entry.details])).toEqual([
      ['queue.dead_letter.replay', { deadLetterId: dead.jobId, jobId, replayed: 1 }],
      ['queue.job.retry', { jobId: bad.id }],
    ]);
  });

  it('replays every dead letter with a message into its queue as new jobs, skipping malformed ones, even where the original is kept as completed', async () => {
    const service = svc();
    const name = serviceQueue(service);
    const q = queue(name);
    const original = envelope('order.placed', { order: 1 });
    await q.add(original.type, original, messageJobOptions(original.id));
    (await work(name, 1)).close().catch(() => undefined);
    const letters = [await addDeadLetter(name, original), await addDeadLetter(name, envelope('order.placed', { order: 2 }))];
    const malformed = await addDeadLetter(name, undefined);

    const res = await post(`/api/v1/queues/${name}/dlq/replay`);
    expect(res.statusCode, res.body).toBe(200);
    const report = res.json<{ replayed: number; jobs: Array<{ deadLetterId: string; jobId: string }>; skipped: Array<{ id: string; problem: string }>; notFound: string[]; remaining: number }>();
    expect(report).toMatchObject({ queue: name, replayed: 2, notFound: [], remaining: 0 });
    expect(report.skipped).toEqual([{ id: malformed.jobId, problem: expect.stringContaining('holds no message') }]);
    expect(report.jobs.map((job) => job.deadLetterId)).toEqual(letters.map((letter) => letter.jobId));
    for (const { deadLetterId, jobId } of report.jobs) {
      const letter = letters.find((l) => l.jobId === deadLetterId)!;
      expect(await q.getJob(jobId)).toMatchObject({ name: 'order.placed', data: letter.envelope });
      expect(await q.getJobState(jobId)).toBe('waiting');
    }
    // The original is still there, completed; the replay did not collide with it.
    expect(await q.getJobState(original.id)).toBe('completed');
    const dlq = queue(deadLetterQueue(name));
    expect((await dlq.getJobs(['waiting'])).map((job) => job.id)).toEqual([malformed.jobId]);

    const more = [await addDeadLetter(name, envelope('order.placed', { order: 3 })), await addDeadLetter(name, envelope('order.placed', { order: 4 }))];
    const unknown = randomUUID();
    const some = await post(`/api/v1/queues/${name}/dlq/replay`, { ids: [more[0]!.jobId, unknown] });
    expect(some.json()).toMatchObject({ replayed: 1, notFound: [unknown], skipped: [], remaining: 2 });
    expect(await dlq.getJob(more[1]!.jobId)).toBeDefined();

    const bad = await post(`/api/v1/queues/${name}/dlq/replay`, { ids: [] });
    expect([bad.statusCode, bad.json().code]).toEqual([400, 'PORTICO_ERR_REQUEST_INVALID']);

    const audit = (await t.store.audit.list({ limit: 1000, action: 'queue.dlq.replay' })).filter((entry) => entry.target === `queue:${name}`);
    expect(audit.map((entry) => entry.details)).toEqual([
      { replayed: 1, skipped: 0, notFound: 1, remaining: 2 },
      { replayed: 2, skipped: 1, notFound: 0, remaining: 0, all: true },
    ]);
  });

  it('discards a dead letter and removes a waiting job, but not one a worker is processing', async () => {
    const { name, q, waiting, dead } = await populated();
    const discarded = await del(`/api/v1/queues/${name}/jobs/${dead.jobId}`);
    expect(discarded.statusCode, discarded.body).toBe(200);
    expect(discarded.json()).toEqual({ queue: name, id: dead.jobId, removedFrom: 'dlq', state: 'dead' });
    expect(await queue(deadLetterQueue(name)).getJob(dead.jobId)).toBeUndefined();

    const removed = await del(`/api/v1/queues/${name}/jobs/${waiting[0]!.id}`);
    expect(removed.json()).toEqual({ queue: name, id: waiting[0]!.id, removedFrom: 'queue', state: 'waiting' });
    expect(await q.getJob(waiting[0]!.id)).toBeUndefined();
    const again = await del(`/api/v1/queues/${name}/jobs/${waiting[0]!.id}`);
    expect([again.statusCode, again.json().code]).toEqual([404, 'PORTICO_ERR_QUEUE_JOB_NOT_FOUND']);

    // A job held by a worker.
    const busyName = serviceQueue(svc());
    const busy = envelope('slow.job');
    await queue(busyName).add(busy.type, busy, messageJobOptions(busy.id));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const worker = new Worker(
      busyName,
      async () => {
        started();
        await released;
      },
      { connection: { url: t.redisUrl, maxRetriesPerRequest: null } },
    );
    opened.push(worker);
    await running;
    const refused = await del(`/api/v1/queues/${busyName}/jobs/${busy.id}`);
    expect([refused.statusCode, refused.json().code]).toEqual([409, 'PORTICO_ERR_QUEUE_JOB_ACTIVE']);
    release();
    await worker.close();

    const audit = (await t.store.audit.list({ limit: 1000 })).filter((entry) => entry.target === `queue:${name}`);
    expect(audit.map((entry) => entry.action)).toEqual(['queue.job.remove', 'queue.dead_letter.discard']);
  });

  it('lets a viewer look but not act: 403 for retry, remove, replay and sending messages', async () => {
    const { name, bad, dead } = await populated();
    const viewer = await t.tokenFor('viewer');
    expect((await get('/api/v1/queues', viewer)).statusCode).toBe(200);
    expect((await get(`/api/v1/queues/${name}/jobs?state=failed`, viewer)).statusCode).toBe(200);
    const before = await t.counts();
    for (const res of [
      await post(`/api/v1/queues/${name}/jobs/${bad.id}/retry`, undefined, viewer),
      await del(`/api/v1/queues/${name}/jobs/${dead.jobId}`, viewer),
      await post(`/api/v1/queues/${name}/dlq/replay`, undefined, viewer),
      await post('/api/v1/messages', { kind: 'event', type: 'x.y', payload: {} }, viewer),
    ]) {
      expect(res.statusCode).toBe(403);
      expect(res.json().code).toBe('PORTICO_ERR_AUTH_FORBIDDEN');
    }
    expect(await t.counts()).toEqual(before);
    expect((await jobsIn(name, 'failed')).total).toBe(1);
    const operator = await t.tokenFor('operator');
    expect((await post(`/api/v1/queues/${name}/jobs/${bad.id}/retry`, undefined, operator)).statusCode).toBe(200);
    expect((await get('/api/v1/queues', await t.tokenFor('agent'))).statusCode).toBe(403);
  });

  it('sends a command to one service\'s queue and an event to every subscriber\'s, with the same envelope, auditing each', async () => {
    const catalog = svc();
    await queue(serviceQueue(catalog)).add('seed', {});
    const command = await post('/api/v1/messages', { kind: 'command', service: catalog, type: 'sku_set_availability', payload: { sku: 'A1', available: false } });
    expect(command.statusCode, command.body).toBe(202);
    const sent = command.json<{ id: string; deliveredTo: string[] }>();
    expect(sent.deliveredTo).toEqual([serviceQueue(catalog)]);
    const job = await queue(serviceQueue(catalog)).getJob(sent.id);
    expect(job).toMatchObject({ id: sent.id, name: 'sku_set_availability', data: { id: sent.id, kind: 'command', type: 'sku_set_availability', source: 'portico', schemaVersion: 1, payload: { sku: 'A1', available: false } } });

    const type = `product.availability_changed.${randomUUID().slice(0, 8)}`;
    const [first, second] = [svc(), svc()].sort() as [string, string];
    await t.store.topology.replace(first, [type], new Date());
    await t.store.topology.replace(second, [type, 'other.event'], new Date());
    const event = await post('/api/v1/messages', { kind: 'event', type, payload: { sku: 'A1' } });
    expect(event.statusCode, event.body).toBe(202);
    const published = event.json<{ id: string; deliveredTo: string[] }>();
    expect(published.deliveredTo).toEqual([serviceQueue(first), serviceQueue(second)]);
    const [a, b] = await Promise.all(published.deliveredTo.map((name) => queue(name).getJob(published.id)));
    expect(a!.data).toMatchObject({ id: published.id, kind: 'event', type, source: 'portico', payload: { sku: 'A1' } });
    expect(b!.data).toEqual(a!.data);

    const nobody = await post('/api/v1/messages', { kind: 'event', type: `nobody.listens.${randomUUID().slice(0, 8)}`, payload: null });
    expect(nobody.statusCode).toBe(202);
    expect(nobody.json()).toMatchObject({ deliveredTo: [] });

    const audit = await t.store.audit.list({ limit: 1000, action: 'message.send' });
    expect(audit.find((entry) => entry.target === `message:${sent.id}`)?.details).toEqual({ kind: 'command', type: 'sku_set_availability', service: catalog, deliveredTo: [serviceQueue(catalog)] });
    expect(audit.find((entry) => entry.target === `message:${published.id}`)?.details).toEqual({ kind: 'event', type, deliveredTo: published.deliveredTo });
  });

  it('refuses a message that cannot be sent with a coded 400 or 404, changing nothing', async () => {
    const before = await t.counts();
    for (const body of [
      { kind: 'command', type: 'sku_set_availability', payload: {} },
      { kind: 'event', service: 'catalog', type: 'x.y', payload: {} },
      { kind: 'event', type: 'bad type!', payload: {} },
      { kind: 'event', type: 'x.y' },
      { kind: 'rumour', type: 'x.y', payload: {} },
      { kind: 'command', service: 'not a service', type: 'x', payload: {} },
    ]) {
      const res = await post('/api/v1/messages', body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().code).toBe('PORTICO_ERR_REQUEST_INVALID');
    }
    const unknown = await post('/api/v1/messages', { kind: 'command', service: svc(), type: 'x', payload: {} });
    expect([unknown.statusCode, unknown.json().code]).toEqual([404, 'PORTICO_ERR_QUEUE_NOT_FOUND']);
    expect(await t.counts()).toEqual(before);
  });

  it('sends a command to a service that declared it consumes the type, before its queue exists', async () => {
    const user = svc();
    await t.store.topology.replace(user, ['sku_update_wishlist'], new Date());
    const res = await post('/api/v1/messages', { kind: 'command', service: user, type: 'sku_update_wishlist', payload: { sku: 'A1' } });
    expect(res.statusCode, res.body).toBe(202);
    const sent = res.json<{ id: string; deliveredTo: string[] }>();
    expect(sent.deliveredTo).toEqual([serviceQueue(user)]);
    expect((await queue(serviceQueue(user)).getJob(sent.id))?.data).toMatchObject({ id: sent.id, kind: 'command', type: 'sku_update_wishlist' });
    // A service that declared nothing still needs a queue that exists.
    const other = await post('/api/v1/messages', { kind: 'command', service: svc(), type: 'sku_update_wishlist', payload: {} });
    expect([other.statusCode, other.json().code]).toEqual([404, 'PORTICO_ERR_QUEUE_NOT_FOUND']);
  });

  it('exports portico_queue_jobs{queue,state} on /metrics, read when scraped', async () => {
    const { name } = await populated();
    const body = (await t.app.inject('/metrics')).body;
    expect(body).toContain('# TYPE portico_queue_jobs gauge');
    for (const [state, count] of [['waiting', 2], ['active', 0], ['delayed', 1], ['failed', 1], ['completed', 1], ['dead', 2]] as const) {
      expect(body).toContain(`portico_queue_jobs{queue="${name}",state="${state}"} ${count}`);
    }
    expect(body).not.toMatch(/portico_queue_jobs\{queue="[^"]*\.dlq"/);
  });

  it('documents every queue and message route in the OpenAPI document', async () => {
    const doc = (await t.app.inject('/api/openapi.json')).json<{ paths: Record<string, Record<string, { tags?: string[]; responses: Record<string, unknown> }>> }>();
    for (const [path, method, tag] of [
      ['/api/v1/queues', 'get', 'queues'],
      ['/api/v1/queues/{name}/jobs', 'get', 'queues'],
      ['/api/v1/queues/{name}/jobs/{id}/retry', 'post', 'queues'],
      ['/api/v1/queues/{name}/jobs/{id}', 'delete', 'queues'],
      ['/api/v1/queues/{name}/dlq/replay', 'post', 'queues'],
      ['/api/v1/messages', 'post', 'messages'],
    ] as const) {
      const operation = doc.paths[path]?.[method];
      expect(operation, `${method} ${path}`).toBeDefined();
      expect(operation!.tags).toEqual([tag]);
      expect(Object.keys(operation!.responses)).toEqual(expect.arrayContaining(['401', '403', '503']));
    }
  });

  // Needs a Redis of its own to kill; CI installs redis-server, so this runs there.
  it.skipIf(!canKillRedis)('fails fast with a coded 503 when Redis is gone, and /metrics still answers without queue series', async () => {
    const own = await startRedisServer();
    const app = await createTestApp({ redisUrl: own.url });
    try {
      const catalog = svc();
      const seed = new Queue(serviceQueue(catalog), { connection: { url: own.url } });
      await seed.add('seed', {});
      await seed.close();
      expect((await app.app.inject({ method: 'GET', url: '/api/v1/queues', headers: bearer(app.adminToken) })).statusCode).toBe(200);
      expect((await app.app.inject('/metrics')).body).toContain(`portico_queue_jobs{queue="${serviceQueue(catalog)}",state="waiting"} 1`);
      own.kill();
      for (const request of [
        { method: 'POST' as const, url: '/api/v1/messages', payload: { kind: 'command', service: catalog, type: 'sku_set_availability', payload: {} } },
        { method: 'POST' as const, url: '/api/v1/messages', payload: { kind: 'event', type: 'x.y', payload: {} } },
        { method: 'GET' as const, url: '/api/v1/queues' },
        { method: 'GET' as const, url: `/api/v1/queues/${serviceQueue(catalog)}/jobs?state=waiting` },
        { method: 'POST' as const, url: `/api/v1/queues/${serviceQueue(catalog)}/dlq/replay` },
      ]) {
        const started = Date.now();
        const res = await app.app.inject({ ...request, headers: bearer(app.adminToken) });
        expect(Date.now() - started, request.url).toBeLessThan(2_000);
        expect(res.statusCode, `${request.url} ${res.body}`).toBe(503);
        expect(res.json()).toMatchObject({ code: 'PORTICO_ERR_MESSAGING_UNAVAILABLE' });
      }
      const started = Date.now();
      const metrics = await app.app.inject('/metrics');
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(metrics.statusCode).toBe(200);
      expect(metrics.body).not.toContain('portico_queue_jobs{');
      // The failed read is counted (seen from the next scrape on: prom-client reads every metric at once).
      expect((await app.app.inject('/metrics')).body).toMatch(/portico_queue_metrics_errors_total [1-9]/);
    } finally {
      await app.close();
      await own.stop();
    }
  });
});
