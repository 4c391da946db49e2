// What both ends of the control socket share: telling a live socket from a stale one, and reading
// newline-delimited JSON.
import { connect } from 'node:net';
import { ZdError } from '../errors.ts';

/**
 * Whether something accepts a connection on the socket within `timeoutMs`. `ifSilent` is the
 * answer when the connection neither succeeds nor fails in time.
 */
export function answers(path: string, timeoutMs: number, ifSilent: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(ifSilent);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * A `data` handler that calls `onLine` for each complete line; returns the unfinished remainder's
 * length so a caller can bound it. `onLine` may return `false` to stop reading this chunk.
 */
export function lineReader(onLine: (line: string) => boolean | void): (chunk: string) => number {
  let buffer = '';
  return (chunk) => {
    buffer += chunk;
    for (let newline = buffer.indexOf('\n'); newline !== -1; newline = buffer.indexOf('\n')) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (onLine(line) === false) {
        buffer = '';
        break;
      }
    }
    return buffer.length;
  };
}

/** What a streamed request (inspect, logs) calls itself in its error lines. */
export interface StreamWords {
  /** "the inspect stream" */
  stream: string;
  /** "refused to inspect" */
  refused: string;
  /** "an inspect message" */
  message: string;
}

/**
 * One line of a streamed answer from an instance: its message, or the one-line error that ends the
 * stream (not JSON, a refusal, or a message this zd does not understand).
 */
export function readStreamLine<T>(line: string, name: string, words: StreamWords, parse: (value: unknown) => T | null): T | ZdError {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return new ZdError('ZD_E_CONTROL', `'${name}' sent a line that is not JSON on ${words.stream}`, 1);
  }
  if ((value as { ok?: unknown } | null)?.ok === false) {
    const why = String((value as { error?: { message?: unknown } }).error?.message ?? 'the request failed');
    return new ZdError('ZD_E_CONTROL', `'${name}' ${words.refused}: ${why}`, 1);
  }
  const message = parse(value);
  if (message === null) return new ZdError('ZD_E_CONTROL', `'${name}' sent ${words.message} this zd does not understand: ${line.slice(0, 80)}`, 1);
  return message;
}
