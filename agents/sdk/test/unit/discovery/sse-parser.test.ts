import { describe, expect, it } from 'vitest';
import { type SseEvent, SseParser } from '../../../src/discovery/sse-parser.js';

function parse(chunks: string[]): { events: SseEvent[]; comments: string[] } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const parser = new SseParser({ onEvent: (event) => events.push(event), onComment: (text) => comments.push(text) });
  for (const chunk of chunks) parser.push(chunk);
  return { events, comments };
}

describe('SseParser', () => {
  const stream = ': connected\n\nid: 7\nevent: instance.registered\ndata: {"a":1}\n\nid: 8\nevent: reset\ndata: line one\ndata: line two\n\n';

  it('reads ids, event names, multi-line data and comments', () => {
    const { events, comments } = parse([stream]);
    expect(comments).toEqual(['connected']);
    expect(events).toEqual([
      { id: '7', event: 'instance.registered', data: '{"a":1}' },
      { id: '8', event: 'reset', data: 'line one\nline two' },
    ]);
  });

  it('gives the same result whatever the chunking, one character at a time included', () => {
    expect(parse(stream.split(''))).toEqual(parse([stream]));
  });

  it('accepts CRLF and CR line ends, split between chunks too', () => {
    const crlf = stream.replaceAll('\n', '\r\n');
    expect(parse([crlf])).toEqual(parse([stream]));
    expect(parse(crlf.split(''))).toEqual(parse([stream]));
    expect(parse([stream.replaceAll('\n', '\r')])).toEqual(parse([stream]));
  });

  it('keeps the last id for later events, defaults the event name, and skips blocks without data', () => {
    const { events } = parse(['id: 3\nevent: ping\n\ndata: x\n\n']);
    expect(events).toEqual([{ id: '3', event: 'message', data: 'x' }]);
  });

  it('drops a half-received message on reset', () => {
    const events: SseEvent[] = [];
    const parser = new SseParser({ onEvent: (event) => events.push(event) });
    parser.push('event: instance.updated\ndata: {"partial":');
    parser.reset();
    parser.push('event: instance.deregistered\ndata: {}\n\n');
    expect(events).toEqual([{ id: undefined, event: 'instance.deregistered', data: '{}' }]);
  });
});
