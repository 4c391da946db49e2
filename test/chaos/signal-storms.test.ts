// Issue #7: signals faster than rollouts. A burst of SIGHUPs runs at most one queued rollout after
// the current one; a stop that lands in the middle of a reload or a drain still exits 0 with
// nothing left; a second SIGINT/SIGTERM forces.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { getJson, sample } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { assertAllDead, cleanup, fastFlags, runApp, timeOf } from '../helpers/zd.ts';
import { readyPids, timedPoller } from './harness.ts';

afterEach(cleanup);

test('50 SIGHUPs in one second: one rollout, then exactly one queued (the rest coalesced), at most 2 beyond the first; zd healthy, no request fails', async () => {
  const port = await freePort();
  // Workers take 300 ms to listen: a 2-worker rollout lasts longer than half the burst.
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...fastFlags], { env: { PORT: String(port), BOOT_DELAY_MS: '300' } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const first = zd.workerPids();
  const client = timedPoller(port, { intervalMs: 10, maxMs: 30_000 });
  const mark = zd.mark();

  const burstStart = Date.now();
  for (let i = 0; i < 50; i++) {
    zd.signal('SIGHUP');
    await sleep(18);
  }
  const burstMs = Date.now() - burstStart;
  assert.ok(burstMs <= 1300, `the burst took ${burstMs}ms`);

  const since = () => zd.logs().slice(mark);
  const count = (code: string) => since().filter((l) => l.code === code).length;
  // Quiet: every rollout started has ended, and none has started for a second.
  await waitUntil(
    () => count('ZD_RELOAD_STARTED') === count('ZD_RELOAD_DONE') + count('ZD_RELOAD_ABORTED') && Date.now() - timeOf(zd.logs().at(-1)!) > 1000,
    15_000,
    () => `rollouts to settle:\n${zd.transcript()}`,
  );
  const started = since().filter((l) => l.code === 'ZD_RELOAD_STARTED').map((l) => Number(l.generation));
  const queued = since().filter((l) => l.code === 'ZD_RELOAD_QUEUED');
  const fresh = queued.filter((l) => l.coalesced === false);
  assert.ok(started.length >= 2 && started.length <= 3, `rollouts started: ${started.join(', ')}`);
  assert.deepEqual(started, started.map((_, i) => 2 + i), 'generations run in order, none skipped');
  assert.equal(fresh.length, started.length - 1, 'every queued reload ran, one at a time');
  // A queued reload logs QUEUED when its SIGHUP arrives and STARTED when it runs: count it once.
  // Not required to be 50: POSIX merges a SIGHUP sent while another is still pending, which a
  // starved 2-core machine does (seen: 37 of 50 delivered while another suite ran).
  const handled = started.length - fresh.length + queued.length;
  assert.ok(handled <= 50 && handled >= 20, `SIGHUPs zd handled: ${handled}`);
  assert.ok(queued.length - fresh.length >= 10, `coalesced: ${queued.length - fresh.length}`);
  assert.equal(count('ZD_RELOAD_ABORTED'), 0);
  assert.equal(count('ZD_RELOAD_DONE'), started.length);

  // Healthy: two ready workers of the last generation serve, every older worker is gone.
  const last = String(started.at(-1));
  assert.equal(readyPids(zd).length, 2);
  for (const reply of await sample(port, 8)) assert.equal(reply.generation, last);
  const { failures, text } = await client.stop();
  assert.equal(failures.length, 0, text);
  const older = zd.logs('ZD_WORKER_FORKED').filter((l) => String(l.generation) !== last).map((l) => l.pid as number);
  await assertAllDead([...first, ...older], 3000);
  assert.equal(zd.logs('ZD_WORKER_FORKED').length, 2 * (1 + started.length), 'exactly one fork per slot per generation');
});

test('SIGHUP then SIGTERM 10 ms later: the rollout is aborted for the shutdown, exit 0, nothing left', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...fastFlags], { env: { PORT: String(port), BOOT_DELAY_MS: '300' } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  zd.signal('SIGHUP');
  await sleep(10);
  const stopAt = Date.now();
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(8000), { code: 0, signal: null }, zd.transcript());
  assert.ok(Date.now() - stopAt < 3000, `stopped in ${Date.now() - stopAt}ms`);
  const aborted = zd.logs('ZD_RELOAD_ABORTED');
  assert.equal(aborted.length, 1, zd.transcript());
  assert.equal(aborted[0]!.reason, 'shutdown');
  const shutdownAt = zd.logs().findIndex((l) => l.code === 'ZD_SHUTDOWN');
  assert.equal(zd.logs().slice(shutdownAt).filter((l) => l.code === 'ZD_WORKER_FORKED').length, 0, 'nothing forked after SIGTERM');
  assert.equal(zd.logs('ZD_WORKER_CRASHED').length, 0);
  await assertAllDead(zd.treePids(), 1000);
});

test("SIGTERM during a rollout's drain: the draining and the serving workers all finish their drain, exit 0, nothing left", async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('slow-drain.cjs'), ['-w', '2', '--drain-timeout', '5s', '--kill-timeout', '1s'], {
    env: { PORT: String(port), SLOW_DRAIN_MS: '1500' },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_WORKER_DRAINING', undefined, 5000);
  const stopAt = Date.now();
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(8000), { code: 0, signal: null }, zd.transcript());
  const took = Date.now() - stopAt;
  assert.ok(took < 4000, `stopped in ${took}ms: within the drain deadline, no kill`);
  for (const exited of zd.logs('ZD_WORKER_EXITED')) {
    assert.equal(exited.outcome, 'exited', `worker ${exited.pid} drained and exited by itself:\n${zd.transcript()}`);
  }
  assert.ok(zd.logs('ZD_WORKER_EXITED').length >= 3, 'the old ones and the new ones');
  const shutdownAt = zd.logs().findIndex((l) => l.code === 'ZD_SHUTDOWN');
  assert.equal(zd.logs().slice(shutdownAt).filter((l) => l.code === 'ZD_WORKER_FORKED').length, 0, 'nothing forked after SIGTERM');
  await assertAllDead(zd.treePids(), 1000);
});

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  test(`${signal} twice, 50 ms apart, with requests in flight: exit ${code} at once, nothing left`, async () => {
    const port = await freePort();
    const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', '--drain-timeout', '20s', '--kill-timeout', '20s'], { env: { PORT: String(port) } });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    // Requests that keep the drain busy far beyond this test's bound.
    const slow = Array.from({ length: 4 }, () => getJson(port, '/?delay=15000', 20_000).catch((e: Error) => e));
    await sleep(200);
    const tree = zd.treePids();
    zd.signal(signal);
    await sleep(50);
    const secondAt = Date.now();
    zd.signal(signal);
    assert.deepEqual(await zd.waitForExit(3000), { code, signal: null }, zd.transcript());
    assert.ok(Date.now() - secondAt < 1500, `forced exit took ${Date.now() - secondAt}ms`);
    assert.equal(zd.logs('ZD_SHUTDOWN_FORCED').length, 1);
    await assertAllDead(tree, 1000);
    for (const outcome of await Promise.all(slow)) assert.ok(outcome instanceof Error, 'requests on killed workers are cut');
  });
}
