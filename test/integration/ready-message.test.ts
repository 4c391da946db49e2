// With --ready message a worker is ready when it sends 'ready', not when it listens.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { describeFailures, poller, sample } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { assertAllDead, cleanup, runApp, timeOf } from '../helpers/zd.ts';

afterEach(cleanup);

const flags = ['-w', '1', '--ready-timeout', '3s', '--drain-timeout', '1s', '--kill-timeout', '500ms'];
const env = (port: number) => ({ PORT: String(port), READY_DELAY_MS: '1000' });

test('--ready message waits for the worker to say ready', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('ready-message.cjs'), [...flags, '--ready', 'message'], { env: env(port) });
  const forked = await zd.waitForLog('ZD_WORKER_FORKED', undefined, 5000);
  const ready = await zd.waitForLog('ZD_WORKER_READY', undefined, 6000);
  assert.ok(timeOf(ready) - timeOf(forked) >= 1000, `ready ${timeOf(ready) - timeOf(forked)}ms after fork`);
  await zd.waitForLog('ZD_READY', undefined, 1000);
});

test('--ready listening does not wait for the message', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('ready-message.cjs'), [...flags, '--ready', 'listening'], { env: env(port) });
  const forked = await zd.waitForLog('ZD_WORKER_FORKED', undefined, 5000);
  const ready = await zd.waitForLog('ZD_WORKER_READY', undefined, 6000);
  assert.ok(timeOf(ready) - timeOf(forked) < 1000, `ready ${timeOf(ready) - timeOf(forked)}ms after fork`);
});

test('during a rollout the old worker serves until the new one says ready', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('ready-message.cjs'), [...flags, '--ready', 'message'], { env: env(port) });
  await zd.waitForLog('ZD_READY', undefined, 6000);
  const [oldPid] = zd.workerPids();
  const client = poller(port, { intervalMs: 10, maxMs: 20_000 });

  zd.signal('SIGHUP');
  const forked = await zd.waitForLog('ZD_WORKER_FORKED', (log) => Number(log.generation) === 2, 3000);
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 8000);
  const exited = await zd.waitForLog('ZD_WORKER_EXITED', (log) => log.pid === oldPid, 3000);
  assert.ok(timeOf(exited) - timeOf(forked) >= 1000, `old worker left ${timeOf(exited) - timeOf(forked)}ms after the fork`);
  for (const reply of await sample(port, 5)) assert.equal(reply.generation, '2');
  const report = await client.stop();
  assert.equal(report.failures.length, 0, `failed requests: ${describeFailures(report.failures)}`);
  await assertAllDead([oldPid!], 2000);
});
