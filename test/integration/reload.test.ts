// SIGHUP/SIGUSR2 is a rolling restart: every worker is replaced by one of the next generation, a new
// worker is ready before an old one drains, and a client never sees a failed request.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { describeFailures, distinctPids, getJson, poller, sample } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { cleanupCopies, copyFixture, readFixture } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { assertAllDead, cleanup, fastFlags, runApp } from '../helpers/zd.ts';

afterEach(() => {
  cleanup();
  cleanupCopies();
});

const v2 = () => readFixture('serve.cjs').replace("const VERSION = 'v1'", "const VERSION = 'v2'");

test('SIGHUP replaces every pid with generation 2 while a polling client sees no failure', async () => {
  const port = await freePort();
  const app = copyFixture('serve.cjs');
  const zd = runApp(app.file, ['-w', '2', ...fastFlags], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const oldPids = await distinctPids(port, 2, 5000);

  const client = poller(port, { intervalMs: 10, maxMs: 20_000 });
  await client.until((r) => r.successes.length >= 5, 3000, 'the poller to be answered');

  app.write(v2());
  // A request still being answered by an old worker when the rollout starts must complete.
  const inFlight = getJson(port, '/?delay=700', 8000);
  await sleep(50);
  const mark = zd.mark();
  zd.signal('SIGHUP');

  await zd.waitForLog('ZD_RELOAD_STARTED', (log) => Number(log.generation) === 2, 3000, mark);
  await zd.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === 2, 10_000, mark);
  const slow = await inFlight;
  assert.equal(slow.status, 200);
  assert.ok(oldPids.has(slow.json.pid), 'the in-flight request was answered by an old worker');

  const after = await sample(port, 20);
  const report = await client.stop();
  assert.equal(report.failures.length, 0, `failed requests: ${describeFailures(report.failures)}`);
  assert.ok(report.successes.length >= 20, `the poller ran through the rollout (${report.successes.length} answers)`);

  const newForked = zd.logs('ZD_WORKER_FORKED').filter((log) => Number(log.generation) === 2);
  assert.equal(newForked.length, 2, zd.transcript());
  const newPids = new Set(newForked.map((log) => log.pid as number));
  for (const reply of after) {
    assert.ok(!oldPids.has(reply.pid), `old pid ${reply.pid} still answers after ZD_RELOAD_DONE`);
    assert.ok(newPids.has(reply.pid), `pid ${reply.pid} is not a generation-2 worker`);
    assert.equal(reply.generation, '2');
    assert.equal(reply.version, 'v2');
  }
  assert.ok([...report.pids].some((pid) => oldPids.has(pid)), 'the poller was answered by old workers');
  assert.ok([...report.pids].some((pid) => newPids.has(pid)), 'the poller was answered by new workers');

  await assertAllDead(oldPids, 4000);
  for (const pid of oldPids) {
    const exited = await zd.waitForLog('ZD_WORKER_EXITED', (log) => log.pid === pid, 3000);
    assert.equal(exited.outcome, 'exited', `old worker ${pid} left on its own after draining`);
  }
  assert.equal(zd.logs('ZD_WORKER_CRASHED').length, 0, zd.transcript());
});

test('a new worker is ready before any old worker exits', async () => {
  const port = await freePort();
  const zd = runApp(copyFixture('serve.cjs').file, ['-w', '2', ...fastFlags], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const oldPids = new Set(zd.workerPids());

  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === 2, 10_000);
  await assertAllDead(oldPids, 4000);
  await zd.waitForLogs('ZD_WORKER_EXITED', 2, (log) => oldPids.has(log.pid as number), 3000);

  const entries = zd.logs();
  const firstOldExit = entries.findIndex((log) => log.code === 'ZD_WORKER_EXITED' && oldPids.has(log.pid as number));
  const firstNewReady = entries.findIndex((log) => log.code === 'ZD_WORKER_READY' && Number(log.generation) === 2);
  assert.ok(firstNewReady >= 0 && firstNewReady < firstOldExit, `log order:\n${zd.codes().join('\n')}`);
});

test('SIGUSR2 is a rolling restart too', async () => {
  const port = await freePort();
  const zd = runApp(copyFixture('serve.cjs').file, ['-w', '1', ...fastFlags], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const [oldPid] = zd.workerPids();

  zd.signal('SIGUSR2');
  await zd.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === 2, 10_000);
  for (const reply of await sample(port, 5)) {
    assert.notEqual(reply.pid, oldPid);
    assert.equal(reply.generation, '2');
  }
  await assertAllDead([oldPid!], 4000);
});
