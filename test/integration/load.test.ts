// Issue #4: no request lost across rolling restarts under real load, with no app change: 50
// keep-alive connections (undici pool, one request at a time each) and 8 clients opening a new
// connection per request hammer the app while zd performs 3 rolling restarts. Loopback only,
// bounded in time and count.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { getJson } from '../helpers/http.ts';
import { hammer, summary } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { cleanup, runApp, type Zd } from '../helpers/zd.ts';

afterEach(cleanup);

async function rollThreeTimes(zd: Zd): Promise<void> {
  for (const generation of [2, 3, 4]) {
    const mark = zd.mark();
    zd.signal('SIGHUP');
    await zd.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === generation, 15_000, mark);
    await sleep(300);
  }
}

for (const [name, fixture] of [
  ['a plain node:http app', 'serve.cjs'],
  ['an unmodified Express app', 'express-app.cjs'],
] as const) {
  test(`${name}: 0 failed and 0 non-2xx requests across 3 rolling restarts under keep-alive and fresh-connection load`, async () => {
    const port = await freePort();
    const zd = runApp(fixturePath(fixture), ['-w', '2', '--drain-timeout', '10s', '--ready-timeout', '5s'], {
      env: { PORT: String(port) },
    });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    const load = hammer(port, { keepAliveConnections: 50, freshLoops: 8, maxMs: 30_000 });
    await sleep(500);
    await rollThreeTimes(zd);
    // Past the drain of the last old workers: anything they did to their clients is counted.
    await zd.waitForLog('ZD_WORKER_EXITED', (log) => log.generation === 3, 12_000, zd.logs().findIndex((l) => l.code === 'ZD_RELOAD_STARTED' && l.generation === 4));
    await sleep(500);
    const report = await load.stop();

    assert.equal(report.failures.length, 0, summary(report));
    assert.equal(report.non2xx, 0, summary(report));
    assert.ok(report.ok > 1000, `the load was real: ${summary(report)}`);
    assert.equal(zd.logs('ZD_WORKER_CRASHED').length, 0, zd.transcript());
    for (const exited of zd.logs('ZD_WORKER_EXITED')) {
      assert.equal(exited.outcome, 'exited', `old workers drained and exited by themselves, not at a deadline:\n${zd.transcript()}`);
    }
    if (fixture === 'serve.cjs') assert.ok(report.generations.has('4'), 'the newest generation served');
  });
}

test('requests taking 2 s that are in flight during a reload complete, on the old generation', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', '--drain-timeout', '10s'], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const slow = Array.from({ length: 6 }, () => getJson(port, '/?delay=2000', 8000));
  await sleep(200);
  const mark = zd.mark();
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 10_000, mark);
  const replies = await Promise.all(slow);
  for (const { json } of replies) assert.equal(json.generation, '1');
  // The old workers exited once their slow requests were answered, before the drain deadline.
  await zd.waitForLog('ZD_WORKER_EXITED', (log) => log.generation === 1 && log.outcome === 'exited', 5000, mark);
});

test('a worker still busy at its drain deadline is killed, and only its in-flight requests fail', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '1', '--drain-timeout', '1s', '--kill-timeout', '1s'], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const load = hammer(port, { keepAliveConnections: 10, freshLoops: 2, maxMs: 15_000 });
  // Two requests that outlive the 1 s drain deadline: the only requests allowed to fail here.
  const doomed = [getJson(port, '/?delay=5000', 8000), getJson(port, '/?delay=5000', 8000)].map((p) =>
    p.then(
      () => 'answered',
      (error: Error) => error.message,
    ),
  );
  await sleep(200);
  const mark = zd.mark();
  zd.signal('SIGHUP');
  const exited = await zd.waitForLog('ZD_WORKER_EXITED', (log) => log.generation === 1, 5000, mark);
  assert.equal(exited.outcome, 'killed', 'killed at the drain deadline');
  assert.equal(exited.signal, 'SIGTERM');
  const outcomes = await Promise.all(doomed);
  for (const outcome of outcomes) assert.notEqual(outcome, 'answered', 'a request outliving the deadline is cut');
  await sleep(300);
  const report = await load.stop();
  assert.equal(report.failures.length, 0, `no other request failed: ${summary(report)}`);
  assert.equal(report.non2xx, 0, summary(report));
});
