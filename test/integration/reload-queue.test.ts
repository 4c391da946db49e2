// A SIGHUP during a rollout is queued and coalesced: however many arrive, exactly one more rollout
// runs after the current one.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { describeFailures, poller, sample } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { assertAllDead, cleanup, fastFlags, runApp } from '../helpers/zd.ts';

afterEach(cleanup);

test('SIGHUPs during a rollout are queued into exactly one more rollout (generation 3)', async () => {
  const port = await freePort();
  // Workers take 400ms to listen, so a two-worker rollout lasts long enough to be interrupted.
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...fastFlags], {
    env: { PORT: String(port), BOOT_DELAY_MS: '400' },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const firstPids = new Set(zd.workerPids());
  const client = poller(port, { intervalMs: 10, maxMs: 30_000 });

  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_STARTED', (log) => Number(log.generation) === 2, 3000);
  zd.signal('SIGHUP');
  await sleep(20);
  zd.signal('SIGHUP');
  await sleep(20);
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_QUEUED', undefined, 3000);
  assert.equal(zd.logs('ZD_RELOAD_DONE').length, 0, 'the SIGHUPs arrived during the first rollout');

  await zd.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === 3, 15_000);
  await sleep(1500);
  const started = zd.logs('ZD_RELOAD_STARTED').map((log) => Number(log.generation));
  assert.deepEqual(started, [2, 3], `rollouts started:\n${zd.codes().join('\n')}`);
  assert.deepEqual(
    zd.logs('ZD_RELOAD_DONE').map((log) => Number(log.generation)),
    [2, 3],
  );
  const codes = zd.codes();
  assert.ok(codes.indexOf('ZD_RELOAD_DONE') < codes.lastIndexOf('ZD_RELOAD_STARTED'), 'generation 3 starts after 2 is done');
  assert.ok(
    zd.logs('ZD_WORKER_FORKED').every((log) => Number(log.generation) <= 3),
    'no generation 4',
  );

  for (const reply of await sample(port, 10)) assert.equal(reply.generation, '3');
  const report = await client.stop();
  assert.equal(report.failures.length, 0, `failed requests: ${describeFailures(report.failures)}`);
  const gen2 = zd.logs('ZD_WORKER_FORKED').filter((log) => Number(log.generation) === 2).map((log) => log.pid as number);
  await assertAllDead([...firstPids, ...gen2], 4000);
});
