// A deploy that cannot boot aborts the rollout: the replacement is discarded, the old workers keep
// serving without a failed request, and the next SIGHUP with fixed code goes through.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { describeFailures, distinctPids, poller, sample } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { cleanupCopies, copyFixture, readFixture } from '../helpers/tmp.ts';
import { assertAllDead, cleanup, fastFlags, runApp } from '../helpers/zd.ts';

afterEach(() => {
  cleanup();
  cleanupCopies();
});

const v2 = () => readFixture('serve.cjs').replace("const VERSION = 'v1'", "const VERSION = 'v2'");

test('new code that throws on load aborts the rollout; old workers keep serving; a fixed deploy then works', async () => {
  const port = await freePort();
  const app = copyFixture('serve.cjs');
  const zd = runApp(app.file, ['-w', '2', ...fastFlags], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const oldPids = await distinctPids(port, 2, 5000);
  const client = poller(port, { intervalMs: 10, maxMs: 30_000 });

  app.writeFixture('crash-on-boot.cjs');
  let mark = zd.mark();
  zd.signal('SIGHUP');
  const aborted = await zd.waitForLog('ZD_RELOAD_ABORTED', undefined, 8000, mark);
  assert.equal(Number(aborted.generation), 2);
  assert.match(String(aborted.reason), /exit|crash|code 1/i, 'the reason says the new worker exited');
  assert.match(String(aborted.stderr), /boom at boot/, "the abort carries the app's stderr");
  assert.match(zd.stderr, /Error: boom at boot/, "the app's stderr is forwarded");
  assert.equal(zd.logs('ZD_RELOAD_DONE').length, 0);

  const failedPids = zd.logs('ZD_WORKER_FORKED').filter((log) => Number(log.generation) === 2).map((log) => log.pid as number);
  assert.ok(failedPids.length >= 1, zd.transcript());
  await assertAllDead(failedPids, 3000);
  for (const pid of failedPids) {
    const exited = await zd.waitForLog('ZD_WORKER_EXITED', (log) => log.pid === pid, 3000);
    assert.equal(exited.outcome, 'bootFailed', `worker ${pid} never became ready`);
  }

  // Both old workers are still there, still generation 1.
  assert.deepEqual(await distinctPids(port, 2, 3000), oldPids);
  for (const reply of await sample(port, 10)) {
    assert.ok(oldPids.has(reply.pid));
    assert.equal(reply.generation, '1');
  }
  assert.ok(zd.alive(), 'zd survives an aborted rollout');

  app.write(v2());
  mark = zd.mark();
  zd.signal('SIGHUP');
  const done = await zd.waitForLog('ZD_RELOAD_DONE', undefined, 10_000, mark);
  assert.ok(Number(done.generation) >= 2, `generation after an aborted one: ${done.generation}`);
  for (const reply of await sample(port, 10)) {
    assert.ok(!oldPids.has(reply.pid));
    assert.equal(reply.version, 'v2');
    assert.equal(reply.generation, String(done.generation));
  }
  await assertAllDead(oldPids, 4000);

  const report = await client.stop();
  assert.equal(report.failures.length, 0, `failed requests: ${describeFailures(report.failures)}`);
  // The poller covered the whole scenario, whatever the machine's speed: it was answered by the
  // old generation (through the aborted rollout) and by v2 after the fixed deploy.
  assert.ok(report.successes.some((r) => r.generation === '1'), 'the poller was answered by the old generation');
  assert.ok(report.successes.some((r) => r.version === 'v2'), 'and by the fixed deploy');
});

test('new code that never listens aborts the rollout at the ready timeout', async () => {
  const port = await freePort();
  const app = copyFixture('serve.cjs');
  const zd = runApp(app.file, ['-w', '1', '--ready-timeout', '1s', '--drain-timeout', '1s', '--kill-timeout', '500ms'], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const [oldPid] = zd.workerPids();
  const client = poller(port, { intervalMs: 10, maxMs: 20_000 });

  app.writeFixture('never-listen.cjs');
  const started = Date.now();
  zd.signal('SIGHUP');
  const aborted = await zd.waitForLog('ZD_RELOAD_ABORTED', undefined, 6000);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 900, `aborted after ${elapsed}ms, before the 1s ready timeout`);
  assert.match(String(aborted.reason), /time|ready/i);

  const stuck = zd.logs('ZD_WORKER_FORKED').filter((log) => Number(log.generation) === 2).map((log) => log.pid as number);
  assert.equal(stuck.length, 1, zd.transcript());
  await assertAllDead(stuck, 3000);

  for (const reply of await sample(port, 5)) assert.equal(reply.pid, oldPid);
  const report = await client.stop();
  assert.equal(report.failures.length, 0, `failed requests: ${describeFailures(report.failures)}`);
});
