// What both ends of the control socket share: telling a live socket from a stale one, and reading
// newline-delimited JSON.
import { connect } from 'node:net';

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
