// SIGTERM/SIGINT drain every worker and exit 0 leaving no process behind; a second one forces.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { distinctPids, getJson } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { assertAllDead, cleanup, fastFlags, runApp } from '../helpers/zd.ts';

afterEach(cleanup);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} drains in-flight requests, exits 0 and leaves no process`, async () => {
    const port = await freePort();
    const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...fastFlags], { env: { PORT: String(port) } });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    await distinctPids(port, 2, 5000);
    const tree = zd.treePids();
    assert.ok(tree.length >= 3, `zd and two workers: ${tree.join(', ')}`);

    const inFlight = getJson(port, '/?delay=500', 5000);
    await sleep(100);
    zd.signal(signal);
    const exit = await zd.waitForExit(8000);
    assert.deepEqual(exit, { code: 0, signal: null }, zd.transcript());

    // Graceful means zd outlives its workers: none may still be running when it exits.
    await assertAllDead(tree, 300);
    const reply = await inFlight;
    assert.equal(reply.status, 200, 'the in-flight request was answered before exit');
    const shutdown = await zd.waitForLog('ZD_SHUTDOWN', undefined, 100);
    assert.equal(shutdown.signal, signal);
    const stopped = await zd.waitForLog('ZD_STOPPED', undefined, 100);
    assert.equal(stopped.exitCode, 0);
  });
}

test('SIGTERM with a worker ignoring it: killed after the deadlines, still exits 0', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('ignore-sigterm.cjs'), ['-w', '1', '--drain-timeout', '500ms', '--kill-timeout', '500ms'], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const tree = zd.treePids();

  const started = Date.now();
  zd.signal('SIGTERM');
  const exit = await zd.waitForExit(8000);
  const elapsed = Date.now() - started;
  assert.equal(exit.code, 0, zd.transcript());
  assert.ok(elapsed >= 800, `exited after ${elapsed}ms, before drain + kill timeouts (1s)`);
  await assertAllDead(tree, 300);
  const exited = await zd.waitForLog('ZD_WORKER_EXITED', undefined, 100);
  assert.equal(exited.outcome, 'killed');
  assert.equal(exited.signal, 'SIGKILL');
});

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  test(`a second ${signal} kills at once and exits ${code}`, async () => {
    const port = await freePort();
    // Deadlines far beyond the test's bound: only the forced path can end this in time.
    const zd = runApp(fixturePath('ignore-sigterm.cjs'), ['-w', '2', '--drain-timeout', '20s', '--kill-timeout', '20s'], {
      env: { PORT: String(port) },
    });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    await distinctPids(port, 2, 5000);
    const tree = zd.treePids();

    zd.signal(signal);
    await zd.waitForLog('ZD_SHUTDOWN', undefined, 3000);
    await sleep(200);
    assert.ok(zd.alive(), 'the first signal waits for the workers to drain');
    const started = Date.now();
    zd.signal(signal);
    const exit = await zd.waitForExit(3000);
    const elapsed = Date.now() - started;
    assert.equal(exit.code, code, zd.transcript());
    assert.ok(elapsed < 2000, `forced exit took ${elapsed}ms`);
    await assertAllDead(tree, 2000);
  });
}
