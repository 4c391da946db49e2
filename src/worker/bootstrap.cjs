// @ts-check
// Preloaded into every zd worker (`node --require …/bootstrap.cjs app.js`), so that draining loses
// no request with no change to the app. Plain CommonJS on purpose: it runs in the app's process,
// before the app, and must not bring a compiler or a module loader of zd's with it.
//
// HTTP/1.1 has no safe way to close an idle keep-alive connection: a client may be writing its next
// request on it at that very moment (PM2's ~2 % ECONNRESET on reload). So when a server closes —
// because zd drains the worker (cluster's disconnect closes every server) or the app closes it —
// its connections are retired the way HTTP allows:
//   - a request in flight, or arriving on a kept-alive connection, is answered `Connection: close`;
//   - an idle connection is left to the keep-alive timeout the server advertised
//     (`Keep-Alive: timeout=5`), which well-behaved clients honour by closing first, and is only
//     cut at that timeout, capped below zd's drain deadline;
// and once zd's drain has closed every server and the app's onShutdown hooks have settled, the
// worker exits 0. What is still open at the drain deadline (a WebSocket, a hook that never settles)
// is zd's to end, with SIGTERM then SIGKILL: the app's own SIGTERM handler still runs.
//
// HTTP/2 sessions get GOAWAY when their server closes (http2.cjs); SIGINT/SIGTERM/SIGHUP/SIGUSR2
// sent to zd's whole process group are zd's to act on, not the worker's (signals.cjs).
'use strict';

// First, before anything of the app's can listen for a signal.
const { armSignals, releaseStopSignals } = require('./signals.cjs');
armSignals();

const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const cluster = /** @type {import('node:cluster').Cluster} */ (/** @type {unknown} */ (require('node:cluster')));
const { shared } = require('./shared.cjs');
const { isHttp2Server, trackHttp2 } = require('./http2.cjs');
require('./measure.cjs'); // a canary's figures (issue 14): nothing is measured until zd asks

const drainBudgetMs = Number(process.env.ZD_DRAIN_TIMEOUT_MS) || 30_000;
const killTimeoutMs = Number(process.env.ZD_KILL_TIMEOUT_MS) || 5_000;

/** @type {Set<net.Server>} */
const servers = new Set();
/** @type {Set<net.Server>} */
const closing = new Set();

const originalListen = net.Server.prototype.listen;
// Every server the app starts passes through here, whatever framework made it.
/** @this {net.Server} @param {any[]} args */
net.Server.prototype.listen = function listen(...args) {
  track(this);
  return originalListen.apply(this, /** @type {any} */ (args));
};

// zd's primary owns the listening sockets and hands connections over (listen.cjs).
require('./listen.cjs').install();

/** @param {net.Server} server */
function track(server) {
  if (servers.has(server)) return;
  servers.add(server);
  if (isHttp2Server(server)) return trackHttp2(server, http2Hooks);
  if (!(server instanceof http.Server || server instanceof https.Server)) return;
  const httpServer = /** @type {http.Server} */ (server);
  // Connections are tracked (once each: cheap under keep-alive); requests are not, so that serving
  // costs nothing until a drain. Whether a connection is busy is what Node itself uses: a response
  // in progress on it (`socket._httpMessage`).
  /** @type {Set<import('node:net').Socket>} */
  const sockets = new Set();
  httpServer.prependListener('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const busy = (/** @type {import('node:net').Socket} */ socket) => Boolean(/** @type {any} */ (socket)._httpMessage);

  const closeIdle = httpServer.closeIdleConnections?.bind(httpServer);
  if (closeIdle) {
    // http.Server#close() cuts idle connections at once (Node ≥ 19). While retiring, idle ones
    // are cut only when the keep-alive timeout the clients were told has passed.
    httpServer.closeIdleConnections = () => {
      if (!closing.has(httpServer)) closeIdle();
    };
  }

  const originalClose = httpServer.close;
  /** @param {((err?: Error) => void) | undefined} [callback] */
  httpServer.close = function close(callback) {
    if (closing.has(httpServer)) return originalClose.call(httpServer, callback);
    beginClose(httpServer);
    // From now on every response closes its connection: decided before the app writes its
    // headers, so Node sends `Connection: close` and closes the connection once it is done.
    httpServer.prependListener('request', (_req, res) => {
      res.shouldKeepAlive = false;
    });
    for (const socket of sockets) markClosing(socket);
    const keepAliveMs = httpServer.keepAliveTimeout > 0 ? httpServer.keepAliveTimeout : 5000;
    // Cut idle connections by the time clients were told to expect it, and well before the deadline.
    const idleCutMs = Math.max(0, Math.min(keepAliveMs, drainBudgetMs - 500));
    setTimeout(() => {
      for (const socket of sockets) if (!busy(socket)) socket.destroy();
    }, idleCutMs).unref();
    const closed = (/** @type {Error | undefined} */ error) => {
      servers.delete(httpServer);
      callback?.(error);
      maybeExit();
    };
    originalClose.call(httpServer, closed);
    return httpServer;
  };

  /** A busy connection closes after its current response. @param {import('node:net').Socket} socket */
  function markClosing(socket) {
    const res = /** @type {any} */ (socket)._httpMessage;
    if (res && !res.headersSent) res.shouldKeepAlive = false;
  }
}

/** @param {net.Server} server */
function beginClose(server) {
  closing.add(server);
  // cluster sets exitedAfterDisconnect before closing the worker's servers on zd's disconnect.
  if (cluster.worker?.exitedAfterDisconnect) startDrain();
}

/** @type {import('./http2.cjs').DrainHooks} */
const http2Hooks = {
  begin: beginClose,
  end(server) {
    servers.delete(server);
    maybeExit();
  },
};

/** zd began draining this worker: the app's onShutdown hooks run now. */
function startDrain() {
  if (shared.draining) return;
  shared.draining = true;
  releaseStopSignals(); // zd's SIGTERM at the drain deadline is the app's to handle, or dies of it
  shared.hooksDone = Promise.allSettled(shared.hooks.map((hook) => Promise.resolve().then(hook))).then(() => undefined);
  // zd ends a drain that overruns (SIGTERM, then SIGKILL). If zd itself is gone (SIGKILLed), no
  // one would: past both deadlines, the worker ends itself rather than serve on as an orphan.
  setTimeout(() => process.exit(1), drainBudgetMs + killTimeoutMs + 500).unref();
  maybeExit(); // an app with no server has nothing else to wait for
}

function maybeExit() {
  if (!shared.draining) return;
  for (const server of servers) if (server.listening || closing.has(server)) return;
  exitSoon();
}

function exitSoon() {
  void shared.hooksDone.then(() => {
    if (process.exitCode === undefined) process.exitCode = 0;
    setImmediate(() => process.exit());
  });
}

// zd's `{ type: 'zd:shutdown' }` arrives just before the disconnect; apps that opted in to
// onShutdown hear it through the API, and the drain starts even if an app has no server.
shared.onShutdownMessage = startDrain;

// --heartbeat-timeout: answer zd's pings from the event loop, so that a blocked loop goes
// unanswered. Only then: a 'message' listener keeps the IPC channel referenced.
if (process.env.ZD_HEARTBEAT === '1' && typeof process.send === 'function') {
  process.on('message', (message) => {
    const m = /** @type {{ type?: unknown, seq?: unknown } | null} */ (message);
    if (m && m.type === 'zd:ping' && process.connected) process.send?.({ type: 'zd:pong', seq: m.seq });
  });
}

// prom-client's cluster support (or an app's own late process.send()) may answer after zd's
// disconnect, while onShutdown hooks still run: unheard, that 'error' kills the draining worker.
// Only that error is dropped.
cluster.worker?.on('error', (error) => {
  if (/** @type {NodeJS.ErrnoException} */ (error).code !== 'ERR_IPC_CHANNEL_CLOSED') throw error;
});

// --metrics-port: answer zd's `{ type: 'zd:stats', requestId }` with the event-loop delay since
// the last ask. Only then: a 'message' listener keeps the IPC channel referenced.
if (process.env.ZD_STATS === '1' && typeof process.send === 'function') {
  const { monitorEventLoopDelay } = require('node:perf_hooks');
  const resolutionMs = 10;
  const delay = monitorEventLoopDelay({ resolution: resolutionMs });
  delay.enable();
  // The histogram records whole timer intervals: the delay is what exceeds the resolution.
  const lagMs = (/** @type {number} */ ns) => (Number.isFinite(ns) ? Math.max(0, ns / 1e6 - resolutionMs) : 0);
  process.on('message', (message) => {
    const m = /** @type {{ type?: unknown, requestId?: unknown } | null} */ (message);
    if (!m || m.type !== 'zd:stats' || !process.connected) return;
    const lag = { mean: lagMs(delay.mean), p99: lagMs(delay.percentile(99)), max: lagMs(delay.max) };
    delay.reset();
    process.send?.({ type: 'zd:stats', requestId: m.requestId, lagMs: lag });
  });
}
