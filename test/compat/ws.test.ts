// Issue #10, compatibility: a `ws` WebSocket server beside plain HTTP routes. A WebSocket is not
// HTTP: zd cannot hand it over, so a connection to an old worker lasts at the latest until the
// drain deadline (SIGTERM), and its client reconnects, to the new code. Counted as a failure: an
// HTTP request that fails, or a (re)connect that fails. A WebSocket closing under its client is
// not, as long as the client gets back in.
import { afterEach, test } from 'node:test';
import WebSocket from 'ws';
import { compatCleanup, httpLoad, runScenario, track, type Load, type Tally } from './harness.ts';

afterEach(compatCleanup);

const DRAIN_MS = 2000;

/** A client that asks every 50 ms on one WebSocket and reconnects 100 ms after it closes. */
function wsClient(port: number, tally: Tally): Load {
  let stopped = false;
  let current: WebSocket | null = null;
  let retry: NodeJS.Timeout | undefined;
  const connect = () => {
    if (stopped) return;
    const socket = new WebSocket(`ws://127.0.0.1:${port}/`, { handshakeTimeout: 5000 });
    current = socket;
    let opened = false;
    const sent: number[] = [];
    const ask = setInterval(() => {
      if (socket.readyState !== WebSocket.OPEN) return;
      sent.push(Date.now());
      socket.send('who');
    }, 50);
    socket.on('open', () => (opened = true));
    socket.on('message', (data) => tally.answer('ws', sent.shift() ?? Date.now(), data.toString()));
    socket.on('error', (error) => {
      if (!opened && !stopped) tally.fail('ws', new Error(`WebSocket (re)connect failed: ${error.message}`));
    });
    socket.on('close', (code) => {
      clearInterval(ask);
      if (opened && !stopped) tally.note('ws', `closed (${code}) with ${sent.length} unanswered`);
      if (!stopped) retry = setTimeout(connect, 100);
    });
  };
  connect();
  return track({
    async stop() {
      stopped = true;
      clearTimeout(retry);
      const socket = current;
      if (!socket || socket.readyState === WebSocket.CLOSED) return;
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.terminate();
      });
    },
  });
}

test('ws: WebSocket clients reconnect to the new code by the drain deadline; no HTTP request and no reconnect fails', async (t) => {
  await runScenario({
    diagnostic: (line) => t.diagnostic(line),
    app: 'ws.cjs',
    drainMs: DRAIN_MS,
    // A WebSocket on an old worker ends at the drain deadline at the latest; 1 s for the reconnect.
    windowMs: (via) => (via === 'ws' ? DRAIN_MS + 1000 : 2000),
    holdMs: DRAIN_MS + 1000 + 700,
    drainsByItself: false,
    load: (port, tally) => [httpLoad(port, tally, { keepAlive: 4, fresh: 2 }), ...Array.from({ length: 4 }, () => wsClient(port, tally))],
  });
});
