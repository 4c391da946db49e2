// The soak's load, run as a child (child_process.fork) so that the orchestrator timing the reloads
// does not share its event loop with it. Plain node:http, 127.0.0.1 only:
//   argv[2]: JSON { port, keepalive, fresh, maxMs, maxRequests }
//   - `keepalive` loops share one keep-alive agent (a socket each, reused request after request);
//   - `fresh` loops open a new connection per request (agent: false).
// Each loop sends its next request as soon as the last one settled, until the parent sends
// { type: 'stop' }, or maxMs passed, or maxRequests were sent. Then it awaits what is in flight and
// sends { type: 'result', … }: every request either answered 2xx, answered otherwise, or failed.
import http from 'node:http';

const spec = JSON.parse(process.argv[2]);
const HOST = '127.0.0.1';
const TIMEOUT_MS = 10_000;
const KEEP_FAILURES = 50;

const agent = new http.Agent({ keepAlive: true, maxSockets: spec.keepalive });
const startedAt = Date.now();
let stopping = false;
const out = {
  keepalive: { sent: 0, ok: 0, non2xx: 0, failed: 0 },
  fresh: { sent: 0, ok: 0, non2xx: 0, failed: 0 },
  errors: {},
  /** The first failures, with when they happened (ms since the load started). */
  failures: [],
};

function fail(kind, code) {
  out[kind].failed++;
  out.errors[code] = (out.errors[code] ?? 0) + 1;
  if (out.failures.length < KEEP_FAILURES) out.failures.push({ kind, code, at: Date.now() - startedAt });
}

function once(kind) {
  return new Promise((resolve) => {
    out[kind].sent++;
    let settled = false;
    const done = (outcome, code) => {
      if (settled) return;
      settled = true;
      if (outcome === 'ok') {
        if (code >= 200 && code < 300) out[kind].ok++;
        else {
          out[kind].non2xx++;
          fail(kind, `HTTP ${code}`);
          out[kind].failed--; // counted as non2xx, not twice
        }
      } else fail(kind, code);
      resolve();
    };
    const req = http.get({ host: HOST, port: spec.port, path: '/', agent: kind === 'keepalive' ? agent : false }, (res) => {
      res.on('data', () => {});
      res.on('end', () => done('ok', res.statusCode));
      res.on('aborted', () => done('error', 'ABORTED'));
      res.on('error', (error) => done('error', error.code ?? error.message));
    });
    req.setTimeout(TIMEOUT_MS, () => {
      done('error', 'TIMEOUT');
      req.destroy();
    });
    req.on('error', (error) => done('error', error.code ?? error.message));
  });
}

const sentTotal = () => out.keepalive.sent + out.fresh.sent;
async function loop(kind) {
  while (!stopping && Date.now() - startedAt < spec.maxMs && sentTotal() < spec.maxRequests) await once(kind);
}

process.on('message', (message) => {
  if (message?.type === 'stop') stopping = true;
});
process.on('disconnect', () => {
  stopping = true;
});
process.send({ type: 'started', at: startedAt });
await Promise.all([
  ...Array.from({ length: spec.keepalive }, () => loop('keepalive')),
  ...Array.from({ length: spec.fresh }, () => loop('fresh')),
]);
agent.destroy();
const endedAt = Date.now();
if (process.connected) process.send({ type: 'result', result: { ...out, startedAt, endedAt } }, () => process.exit(0));
