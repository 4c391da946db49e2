// Issue 20, the socket layer's half of invariant I10: no connection is ever handed to a worker
// outside the core's routable set. The real Sockets class, a real listening socket on 127.0.0.1
// and real client connections, driven by random interleavings of what the core and the workers
// can say: a new routable set (the core's `route` effect), a worker's listen and its server's
// close, Node's receipt (NODE_HANDLE_ACK) and refusal (NODE_HANDLE_NACK), a worker's death, and
// new connections. Only the workers are played (by a fake `send`). After every hand-over: it went
// to a worker that is routable, listens on that socket, is alive, and never refused that
// connection before; at most one descriptor awaits a receipt per worker. At the end, with the
// ports closed and every worker gone, every connection the clients opened has ended (served, or
// reset): none hangs.
//
// Replay a failure with ZD_PROPERTY_SEED=<seed> ZD_PROPERTY_PATH=<path> node test/run.js property/sockets
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import type { WorkerId } from '../../src/core/events.ts';
import { Sockets, type ListenQuery } from '../../src/shell/sockets.ts';
import { waitUntil } from '../helpers/wait.ts';

const RUNS = Number(process.env.ZD_PROPERTY_RUNS ?? 40);
const replay = process.env.ZD_PROPERTY_SEED ? { seed: Number(process.env.ZD_PROPERTY_SEED), path: process.env.ZD_PROPERTY_PATH } : {};
const WORKERS = [1, 2, 3, 4];

type Op =
  | { op: 'route'; workers: number[] }
  | { op: 'listen'; worker: number }
  | { op: 'unlisten'; worker: number }
  | { op: 'connect' }
  | { op: 'ack'; worker: number }
  | { op: 'nack'; worker: number }
  | { op: 'gone'; worker: number };

const worker = fc.constantFrom(...WORKERS);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('route' as const), workers: fc.subarray(WORKERS) }),
  fc.record({ op: fc.constant('listen' as const), worker }),
  fc.record({ op: fc.constant('unlisten' as const), worker }),
  { arbitrary: fc.record({ op: fc.constant('connect' as const) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('ack' as const), worker }), weight: 2 },
  fc.record({ op: fc.constant('nack' as const), worker }),
  fc.record({ op: fc.constant('gone' as const), worker }),
);

const query: ListenQuery = { address: '127.0.0.1', port: 0, addressType: 4, flags: 0, readableAll: false, writableAll: false, index: 0, data: null, backlog: false };

interface Handle {
  close(): void;
}

async function run(ops: Op[]): Promise<void> {
  const routable = new Set<number>();
  const listening = new Set<number>();
  const dead = new Set<number>();
  /** Descriptors sent to each worker and not yet answered, in order. */
  const inFlight = new Map<number, Handle[]>();
  const refusedBy = new Map<Handle, Set<number>>();
  const broken: string[] = [];
  let key = '';
  let port = 0;
  let handedOver = 0;
  let stopped = false;
  const sockets = new Sockets({
    sched: 'rr',
    stickyPort: null,
    send(workerId, message, handle) {
      if (dead.has(workerId)) return false;
      if (message.act === 'listened') {
        key = String(message.key);
        port = Number((message.sockname as { port: number }).port);
        return true;
      }
      if (message.act !== 'conn') return true;
      const h = handle as Handle;
      handedOver += 1;
      if (!routable.has(workerId)) broken.push(`connection handed to worker ${workerId}, outside the routable set [${[...routable].join()}]`);
      if (!listening.has(workerId)) broken.push(`connection handed to worker ${workerId}, whose server does not listen`);
      if (refusedBy.get(h)?.has(workerId)) broken.push(`connection handed again to worker ${workerId}, which refused it`);
      const queue = inFlight.get(workerId) ?? [];
      // Until the stop, one at a time (node:cluster's pace); at the stop, what waited goes to the
      // routable workers room or not (Node queues the sends, and the receipts keep their order).
      if (queue.length > 0 && !stopped) broken.push(`worker ${workerId} got a second descriptor before its receipt for the first`);
      queue.push(h);
      inFlight.set(workerId, queue);
      return true;
    },
    onError: () => {},
  });
  const clients: Socket[] = [];
  const ended = new Set<Socket>();
  // The socket exists from the start: worker 1's listen binds it; whether it stays routable is up to the ops.
  sockets.onMessage(1 as WorkerId, { act: 'listen', id: 0, query });
  await waitUntil(() => port > 0, 2000, 'bound');
  listening.add(1);
  try {
    for (const step of ops) {
      switch (step.op) {
        case 'route':
          routable.clear();
          for (const w of step.workers) if (!dead.has(w)) routable.add(w);
          sockets.route([...routable].sort((a, b) => a - b) as WorkerId[]);
          break;
        case 'listen':
          if (dead.has(step.worker) || listening.has(step.worker)) break;
          listening.add(step.worker);
          sockets.onMessage(step.worker as WorkerId, { act: 'listen', id: 1, query });
          await new Promise((resolve) => setImmediate(resolve));
          break;
        case 'unlisten':
          if (!listening.delete(step.worker) || step.worker === 1) {
            if (step.worker === 1) listening.add(1); // worker 1 keeps the ephemeral port bound
            break;
          }
          sockets.onMessage(step.worker as WorkerId, { act: 'close', key });
          break;
        case 'connect': {
          const socket = connect(port, '127.0.0.1');
          socket.on('error', () => {});
          socket.on('close', () => ended.add(socket));
          clients.push(socket);
          const before = handedOver + sockets.waiting + sockets.stats.resets.ZD_CONN_OVERFLOW;
          await waitUntil(() => handedOver + sockets.waiting + sockets.stats.resets.ZD_CONN_OVERFLOW > before || ended.has(socket), 2000, 'the connection accepted');
          break;
        }
        case 'ack': {
          const h = inFlight.get(step.worker)?.shift();
          if (h) sockets.delivered(step.worker as WorkerId);
          break;
        }
        case 'nack': {
          const h = inFlight.get(step.worker)?.shift();
          if (!h) break;
          refusedBy.set(h, new Set([...(refusedBy.get(h) ?? []), step.worker]));
          sockets.refused(step.worker as WorkerId);
          break;
        }
        case 'gone':
          if (step.worker === 1) break;
          dead.add(step.worker);
          routable.delete(step.worker);
          listening.delete(step.worker);
          for (const h of inFlight.get(step.worker) ?? []) refusedBy.set(h, new Set([...(refusedBy.get(h) ?? []), step.worker]));
          inFlight.delete(step.worker);
          sockets.workerGone(step.worker as WorkerId);
          break;
      }
      assert.deepEqual(broken, [], `after ${JSON.stringify(step)}`);
    }
    // The stop: the ports close, every worker takes what it was sent, then goes.
    stopped = true;
    sockets.close();
    for (const [w, queue] of inFlight) for (const _ of queue) sockets.delivered(w as WorkerId);
    for (const w of WORKERS) {
      dead.add(w);
      sockets.workerGone(w as WorkerId);
    }
    assert.deepEqual(broken, [], 'at the stop');
    await waitUntil(() => clients.every((c) => ended.has(c)), 5000, 'every connection ended (served or reset), none left hanging');
  } finally {
    sockets.close();
    for (const c of clients) c.destroy();
  }
}

test('sockets: no connection ever goes to a worker outside the routable set, and none is left hanging', { timeout: 600_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => run(ops).catch((error: Error) => { if (process.env.ZD_DEBUG) console.error(error.message); throw error; })),
    { numRuns: RUNS, ...replay },
  );
});
