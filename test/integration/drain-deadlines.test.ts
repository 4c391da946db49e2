// An old worker that will not finish draining is sent SIGTERM at the drain deadline, and one that
// ignores SIGTERM gets SIGKILL at the kill deadline, while the new generation serves.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { describeFailures, poller, sample } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { assertAllDead, cleanup, runApp, timeOf } from '../helpers/zd.ts';

afterEach(cleanup);

const flags = ['-w', '1', '--ready-timeout', '2s', '--drain-timeout', '1s', '--kill-timeout', '1s'];

for (const { fixture, signal, min, max } of [
  { fixture: 'slow-drain.cjs', signal: 'SIGTERM', min: 900, max: 1900 },
  { fixture: 'ignore-sigterm.cjs', signal: 'SIGKILL', min: 1900, max: 3500 },
]) {
  test(`${fixture}: the old worker is killed with ${signal} about ${min + 100}ms after being replaced`, async () => {
    const port = await freePort();
    const zd = runApp(fixturePath(fixture), flags, { env: { PORT: String(port) } });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    const [oldPid] = zd.workerPids();
    const client = poller(port, { intervalMs: 10, maxMs: 20_000 });

    zd.signal('SIGHUP');
    const ready = await zd.waitForLog('ZD_WORKER_READY', (log) => Number(log.generation) === 2, 5000);
    const exited = await zd.waitForLog('ZD_WORKER_EXITED', (log) => log.pid === oldPid, 6000);
    assert.equal(exited.outcome, 'killed', zd.transcript());
    assert.equal(exited.signal, signal);
    const drained = timeOf(exited) - timeOf(ready);
    assert.ok(drained >= min && drained <= max, `old worker exited ${drained}ms after its replacement was ready`);
    await assertAllDead([oldPid!], 1000);
    if (fixture === 'slow-drain.cjs') {
      assert.ok(zd.lines.includes(`slow-drain ${oldPid}: got zd:shutdown`), 'the old worker was sent {type: "zd:shutdown"}');
    }

    await zd.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === 2, 5000);
    for (const reply of await sample(port, 5)) assert.equal(reply.generation, '2');
    const report = await client.stop();
    assert.equal(report.failures.length, 0, `failed requests: ${describeFailures(report.failures)}`);
    assert.equal(zd.logs('ZD_WORKER_CRASHED').length, 0, 'a planned kill is not a crash');
  });
}
