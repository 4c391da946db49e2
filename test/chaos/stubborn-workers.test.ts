// Issue #7: workers that do not cooperate. One ignores SIGTERM and never finishes its drain, one
// blocks its event loop, one leaks memory. Every one of them is ended by a deadline or a limit zd
// enforces from outside, while the others serve.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { distinctPids, getJson, RequestError } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { assertAllDead, cleanup, runApp, timeOf } from '../helpers/zd.ts';
import { describeTimed, heldPorts, load, readyPids, timedPoller, unexplained, type Death } from './harness.ts';

afterEach(cleanup);

test('a worker that ignores SIGTERM and never finishes its drain is SIGKILLed at --drain-timeout + --kill-timeout; the rollout completes, no request fails', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('ignore-sigterm.cjs'), ['-w', '2', '--drain-timeout', '1s', '--kill-timeout', '500ms'], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const old = [...(await distinctPids(port, 2, 5000))];
  const traffic = load(port, { keepAliveConnections: 8, freshLoops: 2, maxMs: 20_000 });
  await sleep(200);

  const mark = zd.mark();
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', (l) => l.generation === 2, 8000, mark);
  for (const pid of old) {
    const draining = await zd.waitForLog('ZD_WORKER_DRAINING', (l) => l.pid === pid, 100, mark);
    const exited = await zd.waitForLog('ZD_WORKER_EXITED', (l) => l.pid === pid, 5000, mark);
    assert.equal(exited.outcome, 'killed', zd.transcript());
    assert.equal(exited.signal, 'SIGKILL', 'SIGTERM was not enough');
    const took = timeOf(exited) - timeOf(draining);
    assert.ok(took >= 1400 && took <= 3000, `killed ${took}ms after it began draining (deadlines: 1 s + 0.5 s)`);
    assert.ok(zd.lines.includes(`ignore-sigterm ${pid}: SIGTERM ignored`), 'it was sent SIGTERM first');
  }
  await assertAllDead(old, 500);
  await sleep(200);
  const { report, failures, text } = await traffic.stop();
  assert.equal(failures.length, 0, text);
  assert.equal(report.non2xx, 0, text);
  assert.ok(report.ok > 200, text);
  assert.equal(zd.logs('ZD_WORKER_CRASHED').length, 0, 'a kill at a deadline is planned, not a crash');
});

test('with --heartbeat-timeout, a worker whose event loop blocks is replaced (ready first) and killed; only requests sent to it fail; 2 ready again', async () => {
  const port = await freePort();
  const zd = runApp(
    fixturePath('block-loop.cjs'),
    ['-w', '2', '--heartbeat-timeout', '500ms', '--heartbeat-interval', '200ms', '--drain-timeout', '1s', '--kill-timeout', '500ms'],
    { env: { PORT: String(port) } },
  );
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const traffic = load(port, { keepAliveConnections: 4, freshLoops: 2, maxMs: 20_000 });
  await sleep(200);

  const blockedAt = Date.now();
  // Lands on whichever worker the primary picks; its answer is not JSON, so ask zd who it was.
  await getJson(port, '/block', 2000).catch(() => undefined);
  const unresponsive = await zd.waitForLog('ZD_WORKER_UNRESPONSIVE', undefined, 5000);
  const hung = unresponsive.pid as number;
  assert.ok(timeOf(unresponsive) - blockedAt < 2000, `noticed ${timeOf(unresponsive) - blockedAt}ms after the block`);
  // Its loop is stuck: it takes no connection and closes none until it is killed, so what it holds
  // now is what it holds at its end.
  const death: Death = { pid: hung, from: blockedAt, heldAt: Date.now(), ports: heldPorts(hung, port) };
  const exited = await zd.waitForLog('ZD_WORKER_EXITED', (l) => l.pid === hung, 8000);
  assert.equal(exited.outcome, 'killed', 'a blocked loop cannot drain: killed at the deadline');
  const replacement = zd.logs('ZD_WORKER_READY').find((l) => l.slot === unresponsive.slot && l.pid !== hung);
  assert.ok(replacement && timeOf(replacement) <= timeOf(exited), 'its replacement was ready before it was killed');
  await waitUntil(() => readyPids(zd).length === 2, 5000, 'two ready workers');
  await sleep(200);
  const { failures, text } = await traffic.stop();

  // Requests on connections the hung worker held could only fail, at its kill or at the client's
  // timeout; one zd handed it while stuck was never read, and is zd's to give to another worker.
  const bad = unexplained(failures, [death]);
  assert.deepEqual(bad, [], `failed requests not on a connection the blocked worker held:\n${describeTimed(bad, [death])}\n${text}`);
  const answering = await distinctPids(port, 2, 3000);
  assert.ok(!answering.has(hung));
  await assertAllDead([hung], 500);
});

test('without --heartbeat-timeout, a blocked worker is simply stuck: zd still counts it ready, a request routed to it hangs; SIGTERM still ends it (SIGKILL at the kill deadline)', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('block-loop.cjs'), ['-w', '2', '--drain-timeout', '1s', '--kill-timeout', '500ms'], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const workers = [...(await distinctPids(port, 2, 5000))];
  await getJson(port, '/block', 2000).catch(() => undefined);
  const mark = zd.mark();

  // Round robin hands it the next connection, which hangs; it never acknowledges that one, so
  // the primary sends every later connection to the other worker.
  const outcomes = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      sleep(i * 60).then(() =>
        getJson(port, '/', 1000).then(
          (r) => `ok ${r.json.pid}`,
          (e: RequestError) => e.code,
        ),
      ),
    ),
  );
  const timedOut = outcomes.filter((o) => o === 'ETIMEOUT').length;
  assert.ok(timedOut >= 1, `a request routed to the stuck worker hangs: ${outcomes.join(', ')}`);
  const served = new Set(outcomes.filter((o) => o.startsWith('ok ')).map((o) => Number(o.slice(3))));
  assert.equal(served.size, 1, 'one worker answers; the other is stuck');
  const stuck = workers.find((pid) => !served.has(pid))!;
  assert.deepEqual(zd.logs().slice(mark).map((l) => l.code), [], 'zd noticed nothing');
  assert.deepEqual(readyPids(zd).sort(), [...workers].sort(), 'zd still counts the stuck worker ready');

  const stopAt = Date.now();
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(8000), { code: 0, signal: null }, zd.transcript());
  assert.ok(Date.now() - stopAt < 3500, `stopped in ${Date.now() - stopAt}ms`);
  const end = zd.logs('ZD_WORKER_EXITED').find((l) => l.pid === stuck)!;
  assert.equal(end.outcome, 'killed');
  // The bootstrap catches SIGTERM (a group's SIGTERM is zd's to drain for, issue #10) and hands it
  // to the app or to the default action from its event loop, which is blocked: SIGKILL ends it.
  assert.equal(end.signal, 'SIGKILL', 'a blocked loop reads no signal: the kill deadline ends it');
  await assertAllDead(zd.treePids(), 1000);
});

test('a worker leaking memory is replaced at --max-memory (its replacement ready first), drains by itself, and no request fails', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('leak.cjs'), ['-w', '2', '--max-memory', '120M', '--drain-timeout', '3s'], {
    env: { PORT: String(port), LEAK_MB_PER_TICK: '4' },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const client = timedPoller(port, { intervalMs: 10, maxMs: 20_000 });

  const over = await zd.waitForLog('ZD_WORKER_OVER_MEMORY', undefined, 15_000);
  const leaker = over.pid as number;
  assert.ok((over.rssBytes as number) > 120 * 1024 * 1024);
  const draining = await zd.waitForLog('ZD_WORKER_DRAINING', (l) => l.pid === leaker, 8000);
  const replacement = zd.logs('ZD_WORKER_READY').find((l) => l.slot === over.slot && l.pid !== leaker && timeOf(l) >= timeOf(over));
  assert.ok(replacement && timeOf(replacement) <= timeOf(draining), 'its replacement was ready before it drained');
  const exited = await zd.waitForLog('ZD_WORKER_EXITED', (l) => l.pid === leaker, 5000);
  assert.equal(exited.outcome, 'exited', 'it drained and exited by itself');
  await waitUntil(() => readyPids(zd).length === 2, 5000, 'two ready workers');
  const { report, failures, text } = await client.stop();
  assert.equal(failures.length, 0, text);
  assert.ok(report.successes.length > 50, text);
  await assertAllDead([leaker], 500);
});
