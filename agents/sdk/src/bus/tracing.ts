import { type Attributes, type Context, context, propagation, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { type Envelope, type MessageKind } from './envelope.js';
import { serviceQueue } from './queues.js';

/**
 * The bus's OpenTelemetry spans, through `@opentelemetry/api` only: with no SDK registered (the
 * service's choice) they cost next to nothing and nothing is recorded. A send is a PRODUCER span whose
 * context travels in the envelope (`traceparent`, `tracestate`, W3C trace context, through the
 * registered propagator); each delivery is a CONSUMER span, a child of it, active while the handler
 * runs, so the handler's own spans join the trace. Attributes follow OpenTelemetry's messaging
 * conventions.
 */
const tracer = trace.getTracer('@portico/sdk/bus');

const SYSTEM = 'bullmq';

/** W3C trace context to put in an envelope. */
export interface TraceFields {
  traceparent?: string;
  tracestate?: string;
}

/** A PRODUCER span for a message about to be published or sent, in the active context. */
export function startSendSpan(kind: MessageKind, type: string, target: string | undefined, outbox: boolean): Span {
  const operation = kind === 'event' ? 'publish' : 'send';
  return tracer.startSpan(`${operation} ${target === undefined ? type : `${type} to ${target}`}`, {
    kind: SpanKind.PRODUCER,
    attributes: {
      'messaging.system': SYSTEM,
      // Through the outbox the message is created now and sent by the relay later.
      'messaging.operation.type': outbox ? 'create' : 'send',
      'messaging.operation.name': operation,
      // An event's subscribers are many: its type names where it goes. A command goes to one queue.
      'messaging.destination.name': target === undefined ? type : serviceQueue(target),
      'portico.message.type': type,
    },
  });
}

/** The W3C trace context of `span`, as the registered propagator writes it (nothing without one). */
export function traceFieldsOf(span: Span): TraceFields {
  const carrier: TraceFields = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  return carrier;
}

/** Record how a span's work ended and end it. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    const failure = error instanceof Error ? error : new Error(typeof error === 'string' ? error : JSON.stringify(error));
    span.recordException(failure);
    span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
  }
  span.end();
}

/** A CONSUMER span for one delivery of `envelope` (a child of its sender's span when it carries one); with the context to run its handler in. */
export function startProcessSpan(envelope: Envelope | undefined, queue: string, attempt: number): { span: Span; context: Context } {
  const parent = envelope?.traceparent === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, envelope);
  const attributes: Attributes = {
    'messaging.system': SYSTEM,
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.destination.name': queue,
    'messaging.message.delivery_attempt': attempt,
  };
  if (envelope !== undefined) {
    attributes['messaging.message.id'] = envelope.id;
    attributes['portico.message.type'] = envelope.type;
    attributes['portico.message.source'] = envelope.source;
  }
  const span = tracer.startSpan(`process ${envelope?.type ?? 'message'}`, { kind: SpanKind.CONSUMER, attributes }, parent);
  return { span, context: trace.setSpan(parent, span) };
}
