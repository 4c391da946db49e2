// Issue #10, compatibility: Socket.IO long-polling under `zd run --sticky PORT`. Every polling
// packet is an HTTP request that must reach the worker holding its session; the primary owns the
// port and sends each client IP to one worker. Clients come from several loopback addresses so
// that they spread over the workers. A reload replaces a client's worker, and with it the
// in-memory session: the client reconnects (once per reload at most) and must get back in.
// Counted as a failure: an HTTP request that fails, or a (re)connect that fails.
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { afterEach, test } from 'node:test';
import { io } from 'socket.io-client';
import { sleep } from '../helpers/wait.ts';
import { compatCleanup, httpLoad, runScenario, track, type Identity, type Load, type Tally } from './harness.ts';

afterEach(compatCleanup);

const CLIENTS = ['127.0.0.10', '127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.14', '127.0.0.15'];

/** A long-polling client from `localAddress` that asks `who` (with an ack) every 100 ms. */
function socketIoClient(port: number, tally: Tally, localAddress: string): Load {
  let stopped = false;
  // Keep-alive, as a browser's polling requests are.
  const agent = new Agent({ keepAlive: true, localAddress } as ConstructorParameters<typeof Agent>[0]);
  const socket = io(`http://127.0.0.1:${port}`, {
    transports: ['polling'],
    agent: agent as never,
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    timeout: 5000,
  });
  socket.on('disconnect', (reason) => {
    if (!stopped) tally.note(`socket.io ${localAddress}`, `disconnect: ${reason}`);
  });
  socket.on('connect_error', (error) => {
    if (!stopped) tally.fail('socket.io', new Error(`${localAddress}: (re)connect failed: ${error.message}`));
  });
  const ask = setInterval(() => {
    if (!socket.connected) return;
    const sentAt = Date.now();
    socket.timeout(5000).emit('who', (error: Error | null, identity: Identity) => {
      if (!error) tally.answer('socket.io', sentAt, identity);
    });
  }, 100);
  return track({
    async stop() {
      stopped = true;
      clearInterval(ask);
      socket.disconnect();
      // disconnect() still sends its close packet: let it go out before the agent's sockets do.
      await sleep(300);
      agent.destroy();
    },
  });
}

test('Socket.IO long-polling under --sticky: clients stick between reloads, reconnect to the new code, and no request or reconnect fails', async (t) => {
  const outcome = await runScenario({
    diagnostic: (line) => t.diagnostic(line),
    app: 'socketio.cjs',
    sticky: true,
    // A client on an old worker moves at its next polling request, then reconnects (100–500 ms).
    windowMs: (via) => (via === 'socket.io' ? 3000 : 2000),
    holdMs: 3700,
    load: (port, tally) => [httpLoad(port, tally, { keepAlive: 4, fresh: 2 }), ...CLIENTS.map((address) => socketIoClient(port, tally, address))],
  });
  const firstSighup = outcome.reloads[0]!.sighupAt;
  const disconnects = outcome.tally.notes.filter((n) => n.via.startsWith('socket.io'));
  assert.deepEqual(
    disconnects.filter((n) => n.at < firstSighup).map((n) => `${n.via} ${n.what}`),
    [],
    'long-polling sessions hold between reloads: every client sticks to its worker',
  );
  for (const address of CLIENTS) {
    const mine = disconnects.filter((n) => n.via === `socket.io ${address}`);
    assert.ok(mine.length <= 2, `${address} lost its session ${mine.length} times in two reloads: ${mine.map((n) => n.what).join('; ')}`);
  }
});
