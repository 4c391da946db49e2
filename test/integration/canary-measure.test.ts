// Issue #14, item 1: a canary's figures are measured in the worker with no app change, and only
// while zd asks. Real worker processes, forked by node:cluster with zd's bootstrap preloaded (as zd
// forks them), driven by the shell's own collector (src/shell/measure.ts), with HTTP on 127.0.0.1.
import assert from 'node:assert/strict';
import cluster, { type Worker } from 'node:cluster';
import { Agent, request } from 'node:http';
import { connect as connectH2, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LATENCY_BUCKETS_MS, type Figures } from '../../src/core/canary-figures.ts';
import type { PrimaryEvent } from '../../src/core/events.ts';
import { classifyMessage, reachesReducer } from '../../src/core/messages.ts';
import { COLLECT_WAIT_MS, createMeasure } from '../../src/shell/measure.ts';
import { freePort } from '../helpers/ports.ts';
import { isAlive, killAll, trackPid } from '../helpers/pids.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { repoRoot } from '../helpers/zd.ts';

const BOOTSTRAP = join(repoRoot, 'src', 'worker', 'bootstrap.cjs');
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
const CHANNELS = ['http.server.request.start', 'http.server.response.finish', 'http2.server.stream.start', 'http2.server.stream.finish', 'http2.server.stream.close'];

const workers = new Map<number, Worker>();
const sessions: ClientHttp2Session[] = [];
after(() => {
  for (const session of sessions) session.destroy();
  for (const worker of workers.values()) worker.process.kill('SIGKILL');
  killAll();
});

cluster.setupPrimary({
  exec: fixturePath('measure-app.cjs'),
  execArgv: ['--require', BOOTSTRAP],
  // The test runner reads this process's stdout: the workers' must not mix into it.
  stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
});

interface Started {
  worker: Worker;
  port: number;
  h2Port: number;
  /** `test:closed` messages: a /hang request whose client gave up. */
  closed: () => number;
}

/** Forks one worker on its own ports, so each request reaches the worker the test means. */
async function fork(workerId: number): Promise<Started> {
  const [port, h2Port] = [await freePort(), await freePort()];
  const worker = cluster.fork({ PORT: String(port), H2_PORT: String(h2Port), ZD_WORKER_ID: String(workerId) });
  trackPid(worker.process.pid);
  workers.set(workerId, worker);
  let closed = 0;
  worker.on('message', (m: { type?: string }) => {
    if (m?.type === 'test:closed') closed++;
  });
  const listening = new Set<number>();
  worker.on('listening', (address) => listening.add(address.port));
  await waitUntil(() => listening.has(port) && listening.has(h2Port), 15_000, `worker ${workerId} listening on ${port} and ${h2Port}`);
  return { worker, port, h2Port, closed: () => closed };
}

const ioErrors: string[] = [];
const measure = createMeasure({ worker: (id) => workers.get(id), onIoError: (id, what, error) => ioErrors.push(`${id} ${what}: ${error.message}`) });

/** Runs a collect; resolves with its one event and how long it took. */
function collect(workerIds: number[], requestId: number): Promise<{ event: Extract<PrimaryEvent, { type: 'canary.figures' }>; ms: number }> {
  const at = Date.now();
  return new Promise((resolve, reject) => {
    const events: PrimaryEvent[] = [];
    measure.collect(workerIds, requestId, (event) => {
      events.push(event);
      if (events.length > 1) reject(new Error(`a second event: ${JSON.stringify(event)}`));
      if (event.type !== 'canary.figures') return reject(new Error(`not canary.figures: ${JSON.stringify(event)}`));
      // A second event would fail the test above; give it the chance to arrive.
      setTimeout(() => resolve({ event, ms: Date.now() - at }), 50);
    });
  });
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 4 });
after(() => keepAlive.destroy());

/** GET path: its status, or the error's code. `abortAfterMs` gives up on it (the client closes). */
function get(port: number, path: string, abortAfterMs?: number, agent: Agent | false = keepAlive): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent, timeout: 15_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'ERESPONSE'));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'EREQUEST'));
    if (abortAfterMs !== undefined) setTimeout(() => req.destroy(), abortAfterMs);
    req.end();
  });
}

async function subscribed(port: number): Promise<Record<string, boolean>> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/subs', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(JSON.parse(body) as Record<string, boolean>));
    });
    req.on('error', reject);
    req.end();
  });
}
const none = Object.fromEntries(CHANNELS.map((name) => [name, false]));
const all = Object.fromEntries(CHANNELS.map((name) => [name, true]));

/** Sends `measure.start` and waits until the worker has subscribed: the /subs request that sees it is counted (one 2xx). */
async function startMeasuring(workerIds: number[], ports: number[]): Promise<void> {
  measure.start(workerIds);
  for (const port of ports) await waitUntil(async () => (await subscribed(port))['http.server.request.start'], 5000, `worker on ${port} measuring`);
}

const sumOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
/** Buckets up to and including the one whose upper bound is `ms`. */
const atMost = (f: Figures, ms: number) => sumOf(f.buckets.slice(0, LATENCY_BUCKETS_MS.indexOf(ms) + 1));

test('the answers are zd-internal: they never reach the reducer as worker.message', () => {
  const kind = classifyMessage({ type: 'zd:figures', id: 1, figures: {} });
  assert.equal(kind, 'zd-internal');
  assert.equal(reachesReducer(kind), false);
});

test('a worker measures statuses, errors and latency between measure.start and measure.collect, and nothing outside it', async () => {
  const a = await fork(1);
  const b = await fork(2);
  // Never asked: no channel has a subscriber, so Node publishes nothing.
  assert.deepEqual(await subscribed(a.port), none);
  assert.deepEqual(await subscribed(b.port), none);
  // Traffic before the window is not counted.
  for (let i = 0; i < 5; i++) assert.equal(await get(a.port, '/status/500'), 500);

  await startMeasuring([1, 2], [a.port, b.port]); // +1 2xx on each
  assert.deepEqual(await subscribed(a.port), all); // +1 2xx on a
  const onA = [
    ...Array.from({ length: 20 }, () => get(a.port, '/')),
    ...Array.from({ length: 10 }, () => get(a.port, '/status/500')),
    ...Array.from({ length: 2 }, () => get(a.port, '/status/404')),
    ...Array.from({ length: 3 }, () => get(a.port, '/status/302')),
    ...Array.from({ length: 5 }, () => get(a.port, '/slow?ms=150')),
    // The client gives up: the response never finishes.
    ...Array.from({ length: 3 }, () => get(a.port, '/hang', 100, false)),
  ];
  const statuses = await Promise.all(onA);
  assert.deepEqual(statuses.slice(0, 40).filter((s) => typeof s !== 'number'), []);
  for (let i = 0; i < 7; i++) assert.equal(await get(b.port, '/'), 200);
  await waitUntil(() => a.closed() === 3, 5000, 'the worker seeing the 3 abandoned requests close');
  // Pipelined on one connection: two answered, the third never; the client then hangs up.
  const raw = connect(a.port, '127.0.0.1');
  raw.on('error', () => {});
  raw.write('GET /slow?ms=100 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET /hang HTTP/1.1\r\nHost: a\r\n\r\n');
  let replies = '';
  raw.on('data', (chunk: Buffer) => (replies += chunk.toString('latin1')));
  await waitUntil(() => replies.match(/HTTP\/1\.1 200/g)?.length === 2, 5000, 'two pipelined answers');
  raw.destroy();
  await waitUntil(() => a.closed() === 4, 5000, 'the worker seeing the pipelined request close');
  // Idle keep-alive connections closing are no errors.
  keepAlive.destroy();
  await sleep(200);
  // Still in flight at the collect: counted neither as a request nor as an error.
  const inFlight = get(a.port, '/slow?ms=1500', undefined, false);
  await sleep(100);

  const { event, ms } = await collect([1, 2, 99], 42);
  assert.equal(event.requestId, 42);
  assert.deepEqual(event.figures.map((f) => f.workerId), [1, 2, 99]);
  const [fa, fb, unknown] = event.figures.map((f) => f.figures);
  assert.ok(fa && fb, JSON.stringify(event));
  assert.equal(unknown, null, 'a worker zd does not know has no figures');
  assert.ok(ms < COLLECT_WAIT_MS, `answered in ${ms} ms: every live worker answered, none was waited out`);

  assert.deepEqual(fa.status, { '1xx': 0, '2xx': 2 + 20 + 5 + 2, '3xx': 3, '4xx': 2, '5xx': 10 });
  assert.equal(fa.requests, 44);
  assert.equal(fa.errors, 4);
  assert.equal(fa.buckets.length, LATENCY_BUCKETS_MS.length + 1);
  assert.equal(sumOf(fa.buckets), fa.requests);
  // The five slow ones took at least 150 ms, so at most the 39 others are at 100 ms or less.
  assert.ok(fa.requests - atMost(fa, 100) >= 5, JSON.stringify(fa.buckets));
  assert.deepEqual(fb, { requests: 8, status: { '1xx': 0, '2xx': 8, '3xx': 0, '4xx': 0, '5xx': 0 }, errors: 0, buckets: fb.buckets });
  assert.equal(sumOf(fb.buckets), 8);

  // Collected: unsubscribed again, and the request that was in flight is in no later window.
  assert.deepEqual(await subscribed(a.port), none);
  assert.deepEqual(await subscribed(b.port), none);
  await startMeasuring([1], [a.port]); // +1
  // It ends inside the next window, on its own connection: neither an answer nor an error of it.
  assert.equal(await inFlight, 200);
  await sleep(100);
  const again = (await collect([1], 43)).event.figures[0]?.figures;
  assert.deepEqual(again, { requests: 1, status: { '1xx': 0, '2xx': 1, '3xx': 0, '4xx': 0, '5xx': 0 }, errors: 0, buckets: again?.buckets });
  assert.deepEqual(ioErrors, []);
});

test('a worker that does not answer in time, or has gone, has null figures; the event still comes once', async () => {
  const c = await fork(3);
  const d = await fork(4);
  await startMeasuring([3, 4], [c.port, d.port]);
  // d's event loop is blocked past the collect's deadline; c answers at once.
  const blocked = get(d.port, '/block?ms=3500', undefined, false);
  await sleep(200);
  const { event, ms } = await collect([3, 4], 7);
  assert.ok(ms >= COLLECT_WAIT_MS - 50 && ms < COLLECT_WAIT_MS + 1000, `${ms} ms`);
  assert.equal(event.figures.find((f) => f.workerId === 3)?.figures?.requests, 1);
  assert.equal(event.figures.find((f) => f.workerId === 4)?.figures, null);
  assert.equal(await blocked, 200);

  // A worker that dies before it could answer (its loop is blocked) is not waited for.
  await startMeasuring([3], [c.port]);
  const exited = new Promise((resolve) => c.worker.once('exit', resolve));
  void get(c.port, '/block?ms=5000', undefined, false);
  await sleep(200);
  const pending = collect([3, 4], 8);
  await sleep(100);
  c.worker.process.kill('SIGKILL');
  const late = await pending;
  assert.ok(late.ms < COLLECT_WAIT_MS, `${late.ms} ms`);
  assert.equal(late.event.figures.find((f) => f.workerId === 3)?.figures, null);
  // d's late answer to request 7 was not taken for request 8; having stopped then, d has no figures for 8.
  assert.equal(late.event.figures.find((f) => f.workerId === 4)?.figures, null);
  await exited;
  assert.equal(isAlive(c.worker.process.pid!), false);
  // Asked of workers that are all gone: answered at once, and never from inside the call.
  let sync = true;
  const gone = new Promise<PrimaryEvent>((resolve) => measure.collect([3], 9, resolve));
  sync = false;
  const event9 = await gone;
  assert.equal(sync, false);
  assert.deepEqual(event9, { type: 'canary.figures', requestId: 9, figures: [{ workerId: 3, figures: null }] });
});

test('HTTP/2 streams are measured where Node publishes http2.server.stream.* (Node 24), not on Node 20', async () => {
  const e = await fork(5);
  await startMeasuring([5], [e.port]); // +1 HTTP/1.1 2xx
  const session = connectH2(`http://127.0.0.1:${e.h2Port}`);
  sessions.push(session);
  const stream = (path: string, cancelAfterMs?: number) =>
    new Promise<number | string>((resolve) => {
      const req = session.request({ ':path': path });
      let status = 0;
      req.on('response', (headers) => (status = Number(headers[':status'])));
      req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'ESTREAM'));
      req.on('close', () => resolve(status || 'CLOSED'));
      req.resume();
      if (cancelAfterMs !== undefined) setTimeout(() => req.close(8 /* CANCEL */), cancelAfterMs);
    });
  const results = await Promise.all([
    ...Array.from({ length: 6 }, () => stream('/')),
    ...Array.from({ length: 4 }, () => stream('/status/503')),
    stream('/slow?ms=150'),
    ...Array.from({ length: 2 }, () => stream('/hang', 100)),
  ]);
  assert.deepEqual(results.slice(0, 11), [200, 200, 200, 200, 200, 200, 503, 503, 503, 503, 200]);
  await waitUntil(() => e.closed() === 2, 5000, 'the worker seeing the 2 cancelled streams close');
  const figures = (await collect([5], 11)).event.figures[0]?.figures;
  assert.ok(figures);
  if (NODE_MAJOR >= 24) {
    assert.deepEqual(figures.status, { '1xx': 0, '2xx': 1 + 7, '3xx': 0, '4xx': 0, '5xx': 4 });
    assert.equal(figures.requests, 12);
    assert.equal(figures.errors, 2);
    assert.ok(figures.requests - atMost(figures, 100) >= 1, JSON.stringify(figures.buckets));
  } else {
    // Node 20 has no HTTP/2 channels: only the HTTP/1.1 request that saw the subscription counts.
    assert.deepEqual(figures, { requests: 1, status: { '1xx': 0, '2xx': 1, '3xx': 0, '4xx': 0, '5xx': 0 }, errors: 0, buckets: figures.buckets });
  }
});
