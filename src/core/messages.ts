// Which of a worker's IPC messages concern the primary, decided once, at the edge. An app may send
// one message per request (Node's cluster docs' notifyRequest, Socket.IO's cluster adapter): those
// are the app's own business and must cost the primary no more than reading them, so the shell
// queues an event only for what the reducer acts on.
import { isReadyMessage, pongSeq } from './events.ts';

/**
 * - `ready`: the worker says it is ready (`'ready'`, or `{ type: 'zd:ready' }`);
 * - `pong`: its answer to a heartbeat ping (`{ type: 'zd:pong', seq }`);
 * - `zd-internal`: any other `zd:` message, or prom-client's cluster answer: the metrics server's,
 *   read from cluster directly, or nobody's;
 * - `app`: everything else.
 */
export type MessageKind = 'ready' | 'pong' | 'zd-internal' | 'app';

/** prom-client's AggregatorRegistry answer from a worker. */
const PROM_CLIENT_ANSWER = 'prom-client:getMetricsRes';

export function classifyMessage(message: unknown): MessageKind {
  if (isReadyMessage(message)) return 'ready';
  if (typeof message !== 'object' || message === null) return 'app';
  const type = (message as { type?: unknown }).type;
  if (typeof type !== 'string') return 'app';
  if (pongSeq(message) !== null) return 'pong';
  if (type.startsWith('zd:') || type === PROM_CLIENT_ANSWER) return 'zd-internal';
  return 'app';
}

/** The kinds the reducer acts on, as a `worker.message` event. */
export function reachesReducer(kind: MessageKind): boolean {
  return kind === 'ready' || kind === 'pong';
}
