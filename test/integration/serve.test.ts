// `zd run` forks N workers that share one port, each told its slot and generation.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { distinctPids, getJsonEventually, sample } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';
import { cleanup, fastFlags, runApp } from '../helpers/zd.ts';

afterEach(cleanup);

test('-w 2 serves from two distinct worker pids, all of generation 1', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...fastFlags], { env: { PORT: String(port) } });

  const ready = await zd.waitForLog('ZD_READY', undefined, 10_000);
  assert.equal(ready.workers, 2);
  assert.equal(zd.logs('ZD_WORKER_FORKED').length, 2, zd.transcript());
  assert.equal(zd.logs('ZD_WORKER_READY').length, 2, zd.transcript());

  const pids = await distinctPids(port, 2, 5000);
  assert.deepEqual([...pids].sort(), zd.workerPids().sort(), 'the pids that answer are the forked workers');

  const replies = await sample(port, 10);
  for (const reply of replies) {
    assert.equal(reply.generation, '1');
    assert.ok(pids.has(reply.pid), `unexpected pid ${reply.pid}`);
  }
  const slots = new Set(replies.map((reply) => reply.slot));
  assert.equal(slots.size, 2, `each worker has its own ZD_WORKER_SLOT, got ${[...slots].join(', ')}`);
  const ids = new Set(replies.map((reply) => reply.workerId));
  assert.equal(ids.size, 2, `each worker has its own ZD_WORKER_ID, got ${[...ids].join(', ')}`);

  for (const forked of zd.logs('ZD_WORKER_FORKED')) assert.equal(forked.generation, 1);
  assert.ok(zd.alive(), 'zd keeps running');
});

test('the worker count defaults to WORKER_COUNT', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), fastFlags, { env: { PORT: String(port), WORKER_COUNT: '3' } });

  const ready = await zd.waitForLog('ZD_READY', undefined, 10_000);
  assert.equal(ready.workers, 3);
  assert.equal(zd.logs('ZD_WORKER_FORKED').length, 3, zd.transcript());
  await distinctPids(port, 3, 5000);
});

test('arguments after -- reach the app, and worker stdout/stderr pass through', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '1', ...fastFlags, '--', '--app-flag', 'value'], {
    env: { PORT: String(port), SAY_STDERR: 'a line {"from":"the app"}' },
  });

  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const { json } = await getJsonEventually(port);
  assert.deepEqual(json.argv, ['--app-flag', 'value']);
  await waitUntil(() => zd.stdout.includes(`serve ${json.pid} listening on ${port}\n`), 2000, 'the worker stdout line');
  await waitUntil(() => zd.lines.includes('a line {"from":"the app"}'), 2000, 'the worker stderr line, unchanged');
});
