import { randomUUID } from 'node:crypto';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Envelope, StaticTopology } from '../../src/bus/index.js';
import { useTestResources, waitUntil } from '../support/bus.js';

// A service that registers the OpenTelemetry SDK, as one that exports traces would.
const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
beforeAll(() => {
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
});
beforeEach(() => exporter.reset());

const resources = useTestResources();
const { redis, database, bus } = resources;

const spanNamed = (name: string): ReadableSpan => {
  const span = exporter.getFinishedSpans().find((s) => s.name === name);
  if (span === undefined) throw new Error(`no span "${name}" among ${exporter.getFinishedSpans().map((s) => s.name).join(', ')}`);
  return span;
};

describe('MessageBus: OpenTelemetry across a message', () => {
  it('carries the publishing span in the envelope through the outbox, and runs the handler in a CONSUMER span that is its child', async () => {
    const server = await redis();
    const suffix = randomUUID().slice(0, 8);
    const [inventory, catalog] = [`inventory-${suffix}`, `catalog-${suffix}`];
    const type = 'product.availability_changed';
    const topology = new StaticTopology();
    const received: { envelope: Envelope; traceId: string | undefined }[] = [];
    const tracer = trace.getTracer('test');

    const consumer = bus({ service: catalog, redis: server.url, topology, database: (await database(catalog)).db });
    consumer.on(type, (message) => {
      // The handler's own span joins the trace.
      tracer.startActiveSpan('apply availability', (span) => {
        received.push({ envelope: message, traceId: trace.getActiveSpan()?.spanContext().traceId });
        span.end();
      });
    });
    await consumer.start();
    const publisherDb = (await database(inventory)).db;
    const publisher = bus({ service: inventory, redis: server.url, topology, database: publisherDb });
    await publisher.start();

    // A request handled by the inventory service publishes in its transaction.
    const request = tracer.startSpan('PUT /products/sku-1');
    await context.with(trace.setSpan(context.active(), request), () =>
      publisherDb.transaction().execute(async (trx) => {
        await trx.insertInto('products').values({ sku: 'sku-1', available: 0 }).execute();
        await publisher.publish(type, { sku: 'sku-1', available: false }, { trx });
      }),
    );
    request.end();
    await waitUntil('the delivery', () => received.length === 1 && exporter.getFinishedSpans().some((s) => s.name === `process ${type}`));

    const traceId = request.spanContext().traceId;
    const [delivery] = received;
    expect(delivery?.envelope.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(delivery?.traceId).toBe(traceId);

    const produce = spanNamed(`publish ${type}`);
    expect(produce.kind).toBe(SpanKind.PRODUCER);
    expect(produce.spanContext().traceId).toBe(traceId);
    expect(produce.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(produce.attributes).toMatchObject({ 'messaging.system': 'bullmq', 'messaging.operation.type': 'create', 'messaging.message.id': delivery?.envelope.id });
    // The envelope names the producer span as the parent.
    expect(delivery?.envelope.traceparent).toContain(produce.spanContext().spanId);

    const process = spanNamed(`process ${type}`);
    expect(process.kind).toBe(SpanKind.CONSUMER);
    expect(process.spanContext().traceId).toBe(traceId);
    expect(process.parentSpanContext?.spanId).toBe(produce.spanContext().spanId);
    expect(process.attributes).toMatchObject({ 'messaging.destination.name': `${catalog}_service_queue`, 'messaging.message.id': delivery?.envelope.id, 'messaging.message.delivery_attempt': 1, 'portico.message.outcome': 'processed' });
    expect(spanNamed('apply availability').parentSpanContext?.spanId).toBe(process.spanContext().spanId);
  });

  it('marks the CONSUMER span of a failing delivery as an error, and keeps a trace context given explicitly', async () => {
    const server = await redis();
    const suffix = randomUUID().slice(0, 8);
    const catalog = `catalog-${suffix}`;
    const consumer = bus({ service: catalog, redis: server.url, topology: new StaticTopology(), retry: { attempts: 2, delayMs: 10, maxDelayMs: 10 } });
    consumer.on('sku_set_availability', () => {
      throw new Error('the catalog refuses');
    });
    await consumer.start();
    const sender = bus({ service: `inventory-${suffix}`, redis: server.url, topology: new StaticTopology() });
    await sender.start();
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const sent = await sender.send(catalog, 'sku_set_availability', { sku: 'sku-1' }, { traceparent });
    expect(sent.traceparent).toBe(traceparent);
    // Given explicitly, the context is carried as it is, with no producer span of the bus's own.
    expect(exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.PRODUCER)).toHaveLength(0);

    await waitUntil('both attempts', () => exporter.getFinishedSpans().filter((s) => s.name === 'process sku_set_availability').length === 2);
    const attempts = exporter.getFinishedSpans().filter((s) => s.name === 'process sku_set_availability');
    for (const span of attempts) {
      expect(span.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
      expect(span.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
      expect(span.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'the catalog refuses' });
    }
    expect(attempts.map((span) => span.attributes['portico.message.outcome']).sort()).toEqual(['dead_lettered', 'retried']);
  });
});
