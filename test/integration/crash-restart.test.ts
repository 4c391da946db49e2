// A ready worker that crashes is replaced in its slot after a backoff of 100ms doubling per crash.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { distinctPids, getJson, getJsonEventually } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { assertAllDead, cleanup, fastFlags, runApp, timeOf } from '../helpers/zd.ts';

afterEach(cleanup);

test('each crash is replaced after 100, 200, 400ms and the new pid serves', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('crash-after.cjs'), ['-w', '1', '--max-restarts', '50', ...fastFlags], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const [first] = zd.logs('ZD_WORKER_FORKED');
  let pid = first!.pid as number;
  const delays: unknown[] = [];

  for (let i = 0; i < 3; i++) {
    const mark = zd.mark();
    const reply = await getJson(port, '/crash');
    assert.equal(reply.json.pid, pid);
    const crashed = await zd.waitForLog('ZD_WORKER_CRASHED', (log) => log.pid === pid, 3000, mark);
    assert.equal(crashed.exitCode, 1);
    delays.push(crashed.restartInMs);
    const exited = await zd.waitForLog('ZD_WORKER_EXITED', (log) => log.pid === pid, 3000, mark);
    assert.equal(exited.outcome, 'crashed');
    await assertAllDead([pid], 2000);

    const forked = await zd.waitForLog('ZD_WORKER_FORKED', (log) => log.pid !== pid, 5000, mark);
    const waited = timeOf(forked) - timeOf(crashed);
    assert.ok(waited >= Number(crashed.restartInMs) - 20, `forked ${waited}ms after the crash, backoff ${crashed.restartInMs}ms`);
    assert.equal(forked.slot, first!.slot, 'the replacement takes the crashed worker’s slot');
    await zd.waitForLog('ZD_WORKER_READY', (log) => log.pid === forked.pid, 5000, mark);
    pid = forked.pid as number;
    assert.equal((await getJsonEventually(port, '/', 3000)).json.pid, pid, 'the replacement serves');
  }
  assert.deepEqual(delays, [100, 200, 400]);
  assert.ok(zd.alive());
});

test('while one of two workers is replaced the other keeps serving', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('crash-after.cjs'), ['-w', '2', '--max-restarts', '50', ...fastFlags], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const before = await distinctPids(port, 2, 5000);

  const mark = zd.mark();
  const victim = (await getJson(port, '/crash')).json.pid;
  const survivor = [...before].find((pid) => pid !== victim)!;
  await zd.waitForLog('ZD_WORKER_CRASHED', (log) => log.pid === victim, 3000, mark);
  // Between the crash and the replacement being ready, every request lands on the survivor.
  for (let i = 0; i < 5; i++) assert.equal((await getJson(port, '/')).json.pid, survivor);
  const forked = await zd.waitForLog('ZD_WORKER_FORKED', undefined, 5000, mark);
  await zd.waitForLog('ZD_WORKER_READY', (log) => log.pid === forked.pid, 5000, mark);
  const after = await distinctPids(port, 2, 5000);
  assert.deepEqual([...after].sort(), [survivor, forked.pid as number].sort());
});

test('a worker that keeps crashing is a crash loop: restarts stop at --max-restarts', async () => {
  const port = await freePort();
  const maxRestarts = 2;
  const zd = runApp(fixturePath('crash-after.cjs'), ['-w', '1', '--max-restarts', String(maxRestarts), ...fastFlags], {
    env: { PORT: String(port), CRASH_AFTER_MS: '50' },
  });
  await zd.waitForLog('ZD_CRASH_LOOP', undefined, 10_000);
  const forks = zd.logs('ZD_WORKER_FORKED').length;
  // One initial fork plus at most maxRestarts replacements (one more tolerated for counting style).
  assert.ok(forks <= maxRestarts + 2, `${forks} forks for --max-restarts ${maxRestarts}\n${zd.transcript()}`);
  await sleep(1000);
  assert.equal(zd.logs('ZD_WORKER_FORKED').length, forks, 'no fork after ZD_CRASH_LOOP');
  if (zd.alive()) zd.signal('SIGTERM');
  await zd.waitForExit(5000);
  await assertAllDead([zd.pid, ...zd.workerPids()], 3000);
});
