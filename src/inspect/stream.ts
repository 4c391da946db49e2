// The inspector's side of the control socket: one `inspect` request, then messages for as long as
// the primary lives. `request()` in control/client.ts is for bounded replies; this stream has no
// end of its own, only a deadline for the hello.
import { connect } from 'node:net';
import { answers, lineReader, readStreamLine, type StreamWords } from '../control/socket.ts';
import type { Instance } from '../control/client.ts';
import { ZdError } from '../errors.ts';
import { parseInspectMessage, type InspectMessage } from './messages.ts';

const HELLO_TIMEOUT_MS = 5000;

const INSPECT_STREAM: StreamWords = { stream: 'the inspect stream', refused: 'refused to inspect', message: 'an inspect message' };

export interface InspectStream {
  /**
   * Resolves when the stream ends: the primary closed it (it stopped) or `close()` was called.
   * Rejects when the primary cannot be reached or answers something that is not the protocol.
   */
  readonly ended: Promise<void>;
  close(): void;
}

/** `onMessage` gets each message and its line as sent, for `--json` to pass through untouched. */
export function openInspectStream(instance: Instance, onMessage: (message: InspectMessage, line: string) => void): InspectStream {
  const socket = connect(instance.path);
  let settle!: (error?: Error) => void;
  const ended = new Promise<void>((resolve, reject) => {
    let settled = false;
    settle = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(helloTimer);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
  });
  const helloTimer = setTimeout(
    () => settle(new ZdError('ZD_E_TIMEOUT', `'${instance.name}' did not start the inspect stream within ${HELLO_TIMEOUT_MS}ms`, 1)),
    HELLO_TIMEOUT_MS,
  );
  socket.setEncoding('utf8');
  socket.once('connect', () => socket.write(`${JSON.stringify({ cmd: 'inspect' })}\n`));
  socket.on(
    'data',
    lineReader((line) => {
      if (socket.destroyed) return false;
      const message = readStreamLine(line, instance.name, INSPECT_STREAM, parseInspectMessage);
      if (message instanceof ZdError) {
        settle(message);
        return false;
      }
      if (message.type === 'hello') {
        greeted = true;
        clearTimeout(helloTimer);
      }
      try {
        onMessage(message, line);
      } catch (error) {
        settle(error as Error);
        return false;
      }
      return true;
    }),
  );
  let greeted = false;
  socket.on('error', (error: NodeJS.ErrnoException) => {
    // A primary that exits with the stream open may reset it rather than close it: once the stream
    // was up, that is its end like any other.
    if (greeted && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) settle();
    else settle(new ZdError('ZD_E_CONTROL', `control socket of '${instance.name}': ${error.message}`, 1));
  });
  socket.on('close', () => settle());
  return { ended, close: () => settle() };
}

/** How long a closed stream's instance has to answer again before the inspector calls it stopped. */
const FOLLOW_PROBE_MS = 1000;

/**
 * The same stream, following the instance across `zd upgrade`: when a primary's stream ends and
 * the instance's control socket still answers, a newer primary took it over, and the stream goes
 * on from it (a new hello and snapshot). It ends when nobody answers there any more, or on close().
 */
export function followInspectStream(instance: Instance, onMessage: (message: InspectMessage, line: string) => void): InspectStream {
  let current = openInspectStream(instance, onMessage);
  let closed = false;
  const ended = (async () => {
    await current.ended;
    for (;;) {
      if (closed || !(await answers(instance.path, FOLLOW_PROBE_MS, false))) return;
      current = openInspectStream(instance, onMessage);
      // What answered may be a primary on its way out (a stop, not an upgrade): a stream that
      // cannot start from it is the instance's end, not an error.
      try {
        await current.ended;
      } catch {
        return;
      }
    }
  })();
  return {
    ended,
    close: () => {
      closed = true;
      current.close();
    },
  };
}
