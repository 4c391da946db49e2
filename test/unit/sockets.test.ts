// The primary's socket owner (src/shell/sockets.ts) with real listening sockets on 127.0.0.1 and
// real client connections, but no worker processes: what it hands to whom is recorded by a fake
// `send`, and Node's receipt (NODE_HANDLE_ACK) and a worker's death are played by the test.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import type { WorkerId } from '../../src/core/events.ts';
import { assignSlotSockets, hashAddress, pickRoundRobin, pickSticky } from '../../src/shell/connection-policy.ts';
import { Sockets, type ListenQuery, type SocketsOptions } from '../../src/shell/sockets.ts';
import { waitUntil } from '../helpers/wait.ts';

const id = (n: number) => n as WorkerId;

describe('connection policy', () => {
  it('round robin takes the first candidate after the last one, wrapping', () => {
    assert.equal(pickRoundRobin(null, [id(1), id(2)]), 1);
    assert.equal(pickRoundRobin(id(1), [id(1), id(2)]), 2);
    assert.equal(pickRoundRobin(id(2), [id(1), id(2)]), 1);
    assert.equal(pickRoundRobin(id(7), [id(3), id(9)]), 9, 'the last one may have left');
    assert.equal(pickRoundRobin(id(1), []), null);
  });

  it('sticky: a client keeps its slot; with its slot empty, the next slot; with no slot listening, any candidate by the hash', () => {
    const slots = [id(10), id(11), id(12)];
    const address = '127.0.0.9';
    const own = slots[hashAddress(address) % 3]!;
    assert.equal(pickSticky(address, slots, slots), own);
    const next = slots[(hashAddress(address) + 1) % 3]!;
    assert.equal(pickSticky(address, slots, slots.filter((w) => w !== own)), next);
    assert.equal(pickSticky(address, slots, [id(40), id(41)]), [id(40), id(41)][hashAddress(address) % 2]);
    assert.equal(pickSticky(address, slots, []), null);
  });

  it("reuseport: a slot's socket goes to its routable workers; an orphaned slot's to one other routable worker; with none routable, to nobody", () => {
    const slotOf = (w: WorkerId) => ({ 1: 0, 2: 1, 3: 1, 4: 0 })[w as number] ?? null;
    // Slot 1's old worker (2) and its replacement (3) share the slot's socket while both serve.
    assert.deepEqual([...assignSlotSockets([0, 1], [id(1), id(2), id(3)], slotOf)], [[0, [1]], [1, [2, 3]]]);
    // Slot 1's worker crashed (or is cold, warming, draining): its socket is taken by another.
    assert.deepEqual([...assignSlotSockets([0, 1], [id(1)], slotOf)], [[0, [1]], [1, [1]]]);
    // Scaled down to one slot, a third socket left: spread over the routable workers by slot.
    assert.deepEqual([...assignSlotSockets([0, 1, 2], [id(1), id(4)], slotOf)], [[0, [1, 4]], [1, [4]], [2, [1]]]);
    // Nobody routable: the kernel's backlog holds the connections until someone is.
    assert.deepEqual([...assignSlotSockets([0, 1], [], slotOf)], [[0, []], [1, []]]);
  });
});

interface Sent {
  workerId: WorkerId;
  message: Record<string, unknown>;
  handle?: { close(): void; getpeername?(out: Record<string, unknown>): number };
}

const owners: Sockets[] = [];
const clients: Socket[] = [];
afterEach(() => {
  for (const owner of owners.splice(0)) owner.close();
  for (const client of clients.splice(0)) client.destroy();
});

function owner(extra: Partial<SocketsOptions> = {}) {
  const sent: Sent[] = [];
  const gone = new Set<WorkerId>();
  const sockets = new Sockets({
    sched: 'rr',
    stickyPort: null,
    send: (workerId, message, handle) => {
      if (gone.has(workerId)) return false;
      sent.push({ workerId, message, handle: handle as Sent['handle'] });
      return true;
    },
    onError: (what, error) => assert.fail(`${what}: ${error.message}`),
    ...extra,
  });
  owners.push(sockets);
  const o = {
    sockets,
    sent,
    gone,
    routable: [] as number[],
    /** The core's `route` effect, played by the test. */
    route(workers: number[]) {
      o.routable = [...new Set(workers)].sort((a, b) => a - b);
      sockets.route(o.routable.map(id));
    },
  };
  return o;
}

const query = (port = 0): ListenQuery => ({ address: '127.0.0.1', port, addressType: 4, flags: 0, readableAll: false, writableAll: false, index: 0, data: null, backlog: false });

/** A worker's listen, answered: the port bound. `routable`: the core has it in its set (the default). */
async function listen(o: ReturnType<typeof owner>, workerId: number, q = query(), routable = true): Promise<{ key: string; port: number }> {
  if (routable) o.route([...o.routable, workerId]);
  o.sockets.onMessage(id(workerId), { act: 'listen', id: workerId, query: q });
  const reply = await waitUntil(() => o.sent.find((s) => s.workerId === workerId && s.message.act === 'listened'), 2000, 'the listen answered');
  assert.equal(reply.message.errno, undefined);
  return { key: String(reply.message.key), port: Number((reply.message.sockname as { port: number }).port) };
}

/** A client connection; resolves with what became of it: still open, or ended/reset by the other side. */
function client(port: number): { socket: Socket; closed: Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  clients.push(socket);
  socket.on('data', () => {});
  const closed = new Promise<string>((resolve) => {
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    socket.once('end', () => resolve('end'));
    socket.once('close', () => resolve('close'));
  });
  return { socket, closed };
}

const conns = (sent: Sent[]) => sent.filter((s) => s.message.act === 'conn');

describe('the socket owner', () => {
  it('binds once for every worker of the same address, and answers each with the same port', async () => {
    const o = owner();
    // Every worker's first listen(0) shares one port, as under node:cluster.
    const a = await listen(o, 1);
    const b = await listen(o, 2, query());
    assert.equal(a.port, b.port);
    assert.equal(a.key, b.key);
    assert.equal(a.key.split(':')[1], '0', 'port 0 asked for: the key is the listen, the port is the bound one');
  });

  it('hands connections over one at a time per worker, round robin, and closes its copy on Node’s receipt', async () => {
    const o = owner();
    const { port } = await listen(o, 1);
    await listen(o, 2, query());
    for (let i = 0; i < 3; i++) client(port);
    await waitUntil(() => conns(o.sent).length === 2, 2000, 'two handed over');
    assert.deepEqual(conns(o.sent).map((s) => s.workerId), [1, 2], 'one each, the third waits for room');
    o.sockets.delivered(id(1));
    await waitUntil(() => conns(o.sent).length === 3, 2000, 'the third handed over');
    assert.equal(conns(o.sent)[2]!.workerId, 1, 'to the worker that had room');
  });

  it('re-routes what a dead worker had not received, and resets it when no worker is left', async () => {
    const o = owner();
    const { port } = await listen(o, 1);
    await listen(o, 2, query());
    const first = client(port);
    await waitUntil(() => conns(o.sent).length === 1, 2000, 'handed to worker 1');
    o.gone.add(id(1));
    o.sockets.workerGone(id(1));
    assert.equal(conns(o.sent)[1]?.workerId, 2, 'worker 1 never got it: worker 2 does');
    o.gone.add(id(2));
    o.sockets.workerGone(id(2));
    assert.match(await first.closed, /ECONNRESET|end|close/, 'nobody left: reset at once, not left hanging');
  });

  it('a connection sent back (its worker’s server closed) goes to another worker', async () => {
    const o = owner();
    const { port, key } = await listen(o, 1);
    await listen(o, 2, query());
    client(port);
    const handed = await waitUntil(() => conns(o.sent)[0], 2000, 'handed over');
    o.sockets.onMessage(handed.workerId, { act: 'close', key });
    o.sockets.delivered(handed.workerId);
    // The worker returns its own copy of the descriptor: played here by the one it was sent.
    o.sockets.onMessage(handed.workerId, { act: 'back', key }, handed.handle);
    await waitUntil(() => conns(o.sent).length === 2, 2000, 'handed over again');
    assert.notEqual(conns(o.sent)[1]!.workerId, handed.workerId);
  });

  it('closed (the core’s ports.close), it refuses new connections and hands what it accepted to a worker', async () => {
    const o = owner();
    const { port } = await listen(o, 1);
    const served = client(port);
    await waitUntil(() => conns(o.sent).length === 1, 2000, 'handed over');
    o.sockets.close();
    o.sockets.delivered(id(1));
    const refused = client(port);
    assert.equal(await refused.closed, 'ECONNREFUSED');
    served.socket.destroy();
  });

  it('a bind that fails (the port is taken) answers the errno and is forgotten, so a later listen tries again', async () => {
    const blocker = owner();
    const { port } = await listen(blocker, 9);
    const o = owner();
    o.sockets.onMessage(id(1), { act: 'listen', id: 1, query: query(port) });
    const reply = await waitUntil(() => o.sent.find((s) => s.message.act === 'listened'), 2000, 'answered');
    assert.equal(reply.message.errno, -98, 'EADDRINUSE');
    blocker.sockets.close();
    o.sent.length = 0;
    const again = await listen(o, 1, query(port));
    assert.equal(again.port, port);
  });
});

describe('too many connections waiting', () => {
  it('stops accepting (the kernel’s backlog holds the rest) and accepts again on a copy the holder lends, losing none', { timeout: 20_000 }, async () => {
    // The keeper's part, played by a real child process holding a real copy of the socket.
    const { spawn } = await import('node:child_process');
    const script = `
      const held = new Map();
      process.on('message', (m, handle) => {
        if (m.hold) held.set(m.hold, handle);
        if (m.lend) process.send({ lent: m.lend }, held.get(m.key));
      });`;
    const keeper = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    try {
      const loans = new Map<number, (handle: unknown) => void>();
      let nextLoan = 0;
      keeper.on('message', (m: { lent: number }, handle: unknown) => {
        loans.get(m.lent)?.(handle ?? null);
        loans.delete(m.lent);
      });
      const o = owner({
        maxWaiting: 4,
        onBound: (key, handle) => void keeper.send({ hold: key }, handle as never),
        borrow: (key, got) => {
          const id = ++nextLoan;
          loans.set(id, got as (handle: unknown) => void);
          keeper.send({ lend: id, key });
        },
      });
      const { port } = await listen(o, 1);
      // The keeper holds its copy before the primary closes its own.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const all = Array.from({ length: 12 }, () => client(port));
      // Worker 1 takes nothing yet: one in flight, four waiting, the fifth accepted waits too, and
      // then zd accepts no more.
      await waitUntil(() => o.sockets.stats.pauses === 1, 5000, 'paused');
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(o.sockets.waiting, 5, 'the ones accepted before the pause wait; the rest are in the kernel’s backlog');
      assert.equal(o.sockets.stats.resets.ZD_CONN_OVERFLOW, 0, 'none reset');
      // Worker 1 takes them one by one: below half the bound zd borrows a copy and accepts again.
      while (conns(o.sent).length < all.length) {
        const before = conns(o.sent).length;
        o.sockets.delivered(id(1));
        await waitUntil(() => conns(o.sent).length > before, 5000, `connection ${before + 1} handed over`);
      }
      assert.equal(conns(o.sent).length, 12, 'every connection handed over, none lost');
      assert.equal(o.sockets.stats.resets.ZD_CONN_OVERFLOW + o.sockets.stats.resets.ZD_CONN_NO_WORKER, 0);
    } finally {
      keeper.kill();
    }
  });

  it('with no other holder of the socket, one past the bound is reset at once (and counted), not held', async () => {
    const o = owner({ maxWaiting: 2 });
    const { port } = await listen(o, 1);
    const all = Array.from({ length: 5 }, () => client(port));
    await waitUntil(() => o.sockets.stats.resets.ZD_CONN_OVERFLOW === 2, 5000, 'two reset');
    assert.equal(o.sockets.waiting, 2);
    const ends = await Promise.race([Promise.any(all.map((c) => c.closed)), new Promise((resolve) => setTimeout(() => resolve('none'), 2000))]);
    assert.match(String(ends), /ECONNRESET|end|close/);
  });
});
