// The load generator, run as a child of run.mjs (child_process.fork) so that the orchestrator's
// event loop, which times the reloads, is not the one busy sending requests.
//   argv[2]: JSON { mode: 'keepalive' | 'per-connection', port, durationMs, connections, maxRequests, binMs }
// Sends { type: 'started', at } when the load begins and { type: 'result', ... } at the end.
// Targets 127.0.0.1 only; bounded by durationMs and by maxRequests.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const autocannon = require('autocannon');

const spec = JSON.parse(process.argv[2]);
const HOST = '127.0.0.1';
const TIMEOUT_S = 10; // autocannon's default request timeout, used by both modes
// When the first failed requests happened (ms since the load started): enough to place them
// against a reload or an upgrade, bounded so a broken server cannot grow the result.
const MAX_ERROR_TIMES = 100;

/** Responses (any status) per bin of binMs since `startedAt`: the throughput curve. */
function binner(binMs, durationMs) {
  const bins = new Array(Math.ceil(durationMs / binMs) + 2).fill(0);
  let startedAt = 0;
  return {
    start(at) {
      startedAt = at;
    },
    hit() {
      const i = Math.floor((Date.now() - startedAt) / binMs);
      if (i >= 0 && i < bins.length) bins[i]++;
    },
    bins,
    get startedAt() {
      return startedAt;
    },
  };
}

function isConnectionClose(rawHeaders) {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (String(rawHeaders[i]).toLowerCase() === 'connection' && /close/i.test(String(rawHeaders[i + 1]))) return true;
  }
  return false;
}

function countInto(map, key) {
  map[key] = (map[key] ?? 0) + 1;
}

/**
 * autocannon's own counters, plus what it does not count. autocannon reconnects silently when the
 * server closes a connection (FIN) while a request is outstanding: that request is lost but is in
 * neither `errors` nor `timeouts`. We count it as `droppedOnClose`. autocannon also ignores
 * `Connection: close` and writes its next request on that connection anyway; a loss or reset that
 * follows such a response is counted separately (`afterConnClose`) so it can be told apart.
 */
async function keepalive() {
  const bins = binner(spec.binMs, spec.durationMs);
  const errorTimes = [];
  const extra = {
    droppedOnClose: 0,
    droppedOnCloseAfterConnClose: 0,
    connErrors: {},
    connErrorsAfterConnClose: 0,
    connCloseResponses: 0,
  };
  const setupClient = (client) => {
    client.on('headers', (opts) => {
      if (!isConnectionClose(opts.headers ?? [])) return;
      client.benchToldClose = true;
      extra.connCloseResponses++;
    });
    const connect = client._connect;
    client._connect = function patchedConnect() {
      this.benchToldClose = false;
      connect.call(this);
      const conn = this.conn;
      conn.prependListener('end', () => {
        if (this.destroyed || this.conn !== conn) return;
        const pending = this.pipelinedRequests.size();
        if (pending > 0) {
          if (errorTimes.length < MAX_ERROR_TIMES) errorTimes.push({ ms: Date.now() - bins.startedAt, code: this.benchToldClose ? 'lost after Connection: close' : 'lost on close', n: pending });
          extra.droppedOnClose += pending;
          if (this.benchToldClose) extra.droppedOnCloseAfterConnClose += pending;
          // autocannon would leave them queued, and charge their age to the next responses.
          this.pipelinedRequests.clear();
        }
      });
      conn.prependListener('error', (error) => {
        if (this.destroyed) return;
        countInto(extra.connErrors, error.code ?? error.message);
        if (errorTimes.length < MAX_ERROR_TIMES) errorTimes.push({ ms: Date.now() - bins.startedAt, code: `connection ${error.code ?? error.message}${this.benchToldClose ? ' after Connection: close' : ''}` });
        if (this.benchToldClose && this.conn === conn) extra.connErrorsAfterConnClose++;
        // autocannon counts this as an error; its request must not also count as lost.
        if (this.conn === conn) this.pipelinedRequests.clear();
      });
    };
  };
  const instance = autocannon({
    url: `http://${HOST}:${spec.port}/`,
    connections: spec.connections,
    pipelining: 1,
    duration: spec.durationMs / 1000,
    timeout: TIMEOUT_S,
    maxOverallRequests: spec.maxRequests,
    setupClient,
  });
  const reqErrors = {};
  instance.on('response', () => bins.hit());
  instance.on('reqError', (error) => {
    countInto(reqErrors, error.code ?? error.message);
    if (errorTimes.length < MAX_ERROR_TIMES) errorTimes.push({ ms: Date.now() - bins.startedAt, code: error.code ?? error.message });
  });
  const ticks = [];
  instance.on('tick', ({ counter }) => ticks.push(counter));
  bins.start(Date.now());
  process.send({ type: 'started', at: bins.startedAt });
  const result = await instance;
  return {
    mode: 'keepalive',
    startedAt: bins.startedAt,
    endedAt: Date.now(),
    durationS: result.duration,
    sent: result.requests.sent,
    responses: result.requests.total,
    ok2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    reqErrors,
    errorTimes,
    ...extra,
    rps: result.requests.total / result.duration,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
    latencyMax: result.latency.max,
    perSecond: ticks,
    bins: bins.bins,
    binMs: spec.binMs,
  };
}

/** `concurrency` loops, each sending one request per new connection (agent: false), until the deadline. */
async function perConnection() {
  const bins = binner(spec.binMs, spec.durationMs);
  const out = { responses: 0, ok2xx: 0, non2xx: 0, errors: 0, timeouts: 0, reqErrors: {}, errorTimes: [], sent: 0, responsesInWindow: 0 };
  const startedAt = Date.now();
  const deadline = startedAt + spec.durationMs;
  bins.start(startedAt);
  process.send({ type: 'started', at: startedAt });

  const once = () =>
    new Promise((resolve) => {
      out.sent++;
      let settled = false;
      const done = (kind, code) => {
        if (settled) return;
        settled = true;
        if (kind === 'ok') {
          out.responses++;
          if (Date.now() <= deadline) out.responsesInWindow++;
          bins.hit();
          if (code >= 200 && code < 300) out.ok2xx++;
          else out.non2xx++;
        } else {
          out.errors++;
          if (kind === 'timeout') out.timeouts++;
          countInto(out.reqErrors, code);
          if (out.errorTimes.length < MAX_ERROR_TIMES) out.errorTimes.push({ ms: Date.now() - startedAt, code });
        }
        resolve();
      };
      const req = http.get({ host: HOST, port: spec.port, path: '/', agent: false }, (res) => {
        res.on('data', () => {});
        res.on('end', () => done('ok', res.statusCode));
        res.on('error', (error) => done('error', error.code ?? error.message));
        res.on('aborted', () => done('error', 'ABORTED'));
      });
      req.setTimeout(TIMEOUT_S * 1000, () => {
        done('timeout', 'TIMEOUT');
        req.destroy();
      });
      req.on('error', (error) => done('error', error.code ?? error.message));
    });

  const loop = async () => {
    while (Date.now() < deadline && out.sent < spec.maxRequests) await once();
  };
  await Promise.all(Array.from({ length: spec.connections }, loop));
  const endedAt = Date.now();
  // Requests still in flight at the deadline are awaited (up to their timeout) so that a hung one
  // is counted; the rate is over the nominal window.
  return {
    mode: 'per-connection',
    startedAt,
    endedAt,
    durationS: spec.durationMs / 1000,
    lastSettledAfterDeadlineMs: endedAt - deadline,
    ...out,
    rps: out.responsesInWindow / (spec.durationMs / 1000),
    bins: bins.bins,
    binMs: spec.binMs,
  };
}

const result = spec.mode === 'keepalive' ? await keepalive() : await perConnection();
process.send({ type: 'result', result }, () => process.exit(0));
