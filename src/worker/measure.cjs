// @ts-check
// A canary's figures (issue 14), measured in the worker with no change to the app: responses by
// status class, requests whose response never finished, and a latency histogram (request start →
// response finish). zd's `{ type: 'zd:measure', on: true, buckets }` resets and starts it;
// `{ type: 'zd:measure', collect: true, id }` stops it and is answered
// `{ type: 'zd:figures', id, figures }`.
//
// It listens to node:diagnostics_channel, and only between `on` and `collect`: Node publishes to a
// channel only while it has a subscriber, so outside a canary window serving costs nothing more.
// HTTP/1.1 (http and https servers, every framework on them): `http.server.request.start` and
// `http.server.response.finish`, on Node 20 and 24. HTTP/2: the `http2.server.stream.*` channels,
// which Node 24 publishes and Node 20 does not (there, HTTP/2 traffic is not measured).
// A request counts only if it starts inside the window and ends before the collect: one still in
// flight at the collect is left out.
//
// So that the canary gets its share of real traffic, each keep-alive connection that predates the
// window is closed once, after its first response in it (`Connection: close`, as a draining worker
// answers): its client reconnects, and cluster's round robin spreads the new connections over every
// worker, the canary included. A connection that predates the window is one whose server has
// already written to it when its first request of the window starts; one opened in the window
// keeps alive.
'use strict';

const cluster = /** @type {import('node:cluster').Cluster} */ (/** @type {unknown} */ (require('node:cluster')));

// ZD_NO_MEASURE=1 exists for bench/canary-overhead.mjs only: zd as it was before this module.
if (cluster.isWorker && typeof process.send === 'function' && process.env.ZD_NO_MEASURE !== '1') setup();

function setup() {
  const dc = require('node:diagnostics_channel');
  const { performance } = require('node:perf_hooks');

  // Marks on Node's own objects: which window a request (a response, an HTTP/2 stream) started
  // in, and when; 0 once it was counted. A socket's: the window its pending count is of.
  const kWindow = Symbol('zd.measure.window');
  const kStart = Symbol('zd.measure.start');
  const kStatus = Symbol('zd.measure.status');
  const kPending = Symbol('zd.measure.pending');
  const kRebalanced = Symbol('zd.measure.rebalanced');

  /** The window being measured; 0: none. A new number per window, so a request of an earlier one is never counted in a later one. */
  let current = 0;
  let lastWindow = 0;
  /** @type {number[]} latency upper bounds, ms */
  let bounds = [];
  let requests = 0;
  let errors = 0;
  /** [1xx, 2xx, 3xx, 4xx, 5xx] */
  let status = [0, 0, 0, 0, 0];
  /** @type {number[]} */
  let buckets = [0];

  /** @param {number} code @param {number} ms */
  function record(code, ms) {
    requests++;
    // Node accepts 100–999; a code past 5xx is no success either.
    const klass = code >= 600 ? 4 : Math.max(0, Math.floor(code / 100) - 1);
    status[klass] = /** @type {number} */ (status[klass]) + 1;
    let i = 0;
    while (i < bounds.length && ms > /** @type {number} */ (bounds[i])) i++;
    buckets[i] = /** @type {number} */ (buckets[i]) + 1;
  }

  // --- HTTP/1.1 ---------------------------------------------------------------------------------
  // A request that never got its answer is one whose connection closed first. Counted per
  // connection (one 'close' listener per socket, not one per request: keep-alive connections carry
  // thousands), as the requests of this window still unfinished on it when it closes.
  /** @param {any} message */
  function onRequestStart(message) {
    const response = message.response;
    const socket = message.socket;
    response[kWindow] = current;
    response[kStart] = performance.now();
    if (socket[kRebalanced] !== current) {
      socket[kRebalanced] = current;
      if (socket.bytesWritten > 0 && !response.headersSent) response.setHeader('connection', 'close');
    }
    if (socket[kWindow] !== current) {
      if (socket[kWindow] === undefined) socket.on('close', onSocketClose);
      socket[kWindow] = current;
      socket[kPending] = 0;
    }
    socket[kPending]++;
  }
  /** @param {any} message */
  function onResponseFinish(message) {
    const response = message.response;
    if (response[kWindow] !== current) return;
    response[kWindow] = 0;
    message.socket[kPending]--;
    record(response.statusCode, performance.now() - response[kStart]);
  }
  /** @this {any} */
  function onSocketClose() {
    if (this[kWindow] !== current) return;
    errors += this[kPending];
    this[kPending] = 0;
  }

  // --- HTTP/2 (Node ≥ 24) ---------------------------------------------------------------------
  // `finish` is the response's headers being sent; the stream's `close` ends it, cleanly (rstCode
  // 0) or not.
  /** @param {any} message */
  function onStreamStart(message) {
    const stream = message.stream;
    stream[kWindow] = current;
    stream[kStart] = performance.now();
  }
  /** @param {any} message */
  function onStreamFinish(message) {
    if (message.stream[kWindow] === current) message.stream[kStatus] = Number(message.headers?.[':status']);
  }
  /** @param {any} message */
  function onStreamClose(message) {
    const stream = message.stream;
    if (stream[kWindow] !== current) return;
    stream[kWindow] = 0;
    const code = stream[kStatus];
    if (code >= 100 && stream.rstCode === 0) record(code, performance.now() - stream[kStart]);
    else errors++;
  }

  /** @type {Array<[string, (message: any) => void]>} */
  const channels = [
    ['http.server.request.start', onRequestStart],
    ['http.server.response.finish', onResponseFinish],
    ['http2.server.stream.start', onStreamStart],
    ['http2.server.stream.finish', onStreamFinish],
    ['http2.server.stream.close', onStreamClose],
  ];

  /** @param {unknown} buckets */
  function start(buckets) {
    bounds = Array.isArray(buckets) && buckets.every((b) => typeof b === 'number' && Number.isFinite(b)) ? buckets.slice() : [];
    reset();
    if (current === 0) for (const [name, handler] of channels) dc.subscribe(name, handler);
    current = ++lastWindow;
  }

  function stop() {
    if (current !== 0) for (const [name, handler] of channels) dc.unsubscribe(name, handler);
    current = 0;
  }

  function reset() {
    requests = 0;
    errors = 0;
    status = [0, 0, 0, 0, 0];
    buckets = bounds.map(() => 0).concat(0);
  }

  function figures() {
    const [s1, s2, s3, s4, s5] = status;
    return { requests, status: { '1xx': s1, '2xx': s2, '3xx': s3, '4xx': s4, '5xx': s5 }, errors, buckets: buckets.slice() };
  }

  // cluster itself keeps a 'message' listener on every worker's process, so this one does not
  // change whether the IPC channel keeps the worker alive.
  process.on('message', (message) => {
    const m = /** @type {{ type?: unknown, on?: unknown, collect?: unknown, id?: unknown, buckets?: unknown } | null} */ (message);
    if (!m || typeof m !== 'object' || m.type !== 'zd:measure') return;
    if (m.on === true) return start(m.buckets);
    if (m.collect !== true) return;
    // A worker that was not measuring (forked after the window opened) has no figures to give.
    const answer = current === 0 ? null : figures();
    stop();
    if (process.connected) process.send?.({ type: 'zd:figures', id: m.id, figures: answer });
  });
}
