// `zd logs` on the primary's side: the ring's last lines (src/shell/log-ring.ts), then, with
// `follow`, every batch as the workers write it. A follower slower than the workers is not
// buffered for without bound: past FOLLOWER_BYTES queued on its socket, batches are dropped for
// it and counted, and once it has caught up it is told how many lines it missed.
import type { Socket } from 'node:net';
import type { LogBatch, LogRing } from '../shell/log-ring.ts';
import type { LogsMessage } from './logs-protocol.ts';
import type { ControlRequest } from './protocol.ts';

/** Bytes queued on one follower's socket before batches are dropped for it. */
export const FOLLOWER_BYTES = 256 * 1024;
/** `zd logs` without -n. */
export const DEFAULT_LINES = 20;

const NEWLINE = 0x0a;

export function serveLogs(
  socket: Socket,
  request: Extract<ControlRequest, { cmd: 'logs' }>,
  ring: LogRing,
  primary: { name: string; pid: number },
): void {
  const send = (message: LogsMessage) => {
    if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(message)}\n`);
  };
  const lines = (batch: LogBatch): LogsMessage => ({
    type: 'lines',
    seq: batch.seq,
    worker: batch.workerId,
    generation: batch.generation,
    stream: batch.stream,
    text: batch.data.toString('utf8'),
  });
  send({ type: 'hello', name: primary.name, pid: primary.pid });
  if (request.after) {
    // Back after its stream closed: from where it was with the same primary; all this one kept
    // if another primary answers now (zd upgrade), whose workers it has not heard yet.
    const { batches, missed } = ring.since(request.after.pid === primary.pid ? request.after.seq : 0);
    if (missed) send({ type: 'dropped', lines: null });
    for (const batch of batches) send(lines(batch));
  } else {
    for (const batch of ring.tail(request.lines ?? DEFAULT_LINES)) send(lines(batch));
  }
  if (!request.follow) {
    send({ type: 'end' });
    socket.end();
    return;
  }
  let dropped = 0;
  const caughtUp = () => {
    if (dropped === 0 || socket.writableLength > FOLLOWER_BYTES) return;
    send({ type: 'dropped', lines: dropped });
    dropped = 0;
  };
  const unsubscribe = ring.subscribe((batch) => {
    if (socket.writableLength > FOLLOWER_BYTES) {
      dropped += countLines(batch.data);
      return;
    }
    caughtUp();
    send(lines(batch));
  });
  socket.on('drain', caughtUp);
  socket.on('close', unsubscribe);
}

function countLines(data: Buffer): number {
  let count = 0;
  for (let i = data.indexOf(NEWLINE); i !== -1; i = data.indexOf(NEWLINE, i + 1)) count++;
  return count;
}
