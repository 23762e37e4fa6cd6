import { STATUS_CODES } from 'node:http';
import { type Duplex } from 'node:stream';
import { type ErrorCode, ErrorCatalogue } from '../errors.js';
import { type GatewayResponse } from './gateway-http.js';

/** An error answer written straight to a socket that has left Node's HTTP handling (an upgrade). */
export function writeRawError(socket: Duplex, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  const statusCode = ErrorCatalogue[code].status;
  const body = JSON.stringify({ code, message, statusCode });
  let head = `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  socket.end(`${head}\r\n${body}`);
}

/** Answer with the error catalogue's JSON shape, unless the response has started already. */
export function sendError(res: GatewayResponse, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const statusCode = ErrorCatalogue[code].status;
  const body = JSON.stringify({ code, message, statusCode });
  res.writeHead(statusCode, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

