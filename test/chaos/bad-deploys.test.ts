// Issue #7: broken deploys under load. The app file is overwritten with bad code and zd gets
// SIGHUP, as a deploy script does. A deploy that cannot serve aborts its rollout with a reason
// that says why (ZD_RELOAD_ABORTED), the old workers keep serving, and no request fails. A deploy
// that serves but crashes later is a rollout that succeeded, then ordinary crashes.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { distinctPids, sample } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { cleanupCopies, copyFixture, readFixture } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { assertAllDead, cleanup, runApp, timeOf, type ZdLog } from '../helpers/zd.ts';
import { describeTimed, load, noneReadyWindows, portsSaid, timedPoller, unexplained, type Death } from './harness.ts';

afterEach(() => {
  cleanup();
  cleanupCopies();
});

const FLAGS = ['-w', '2', '--ready-timeout', '1s', '--drain-timeout', '2s', '--kill-timeout', '1s'];

/** zd -w 2 serving v1 from a copy of serve.cjs that the test will overwrite. */
async function serving(extra: string[] = [], env: Record<string, string> = {}) {
  const port = await freePort();
  const app = copyFixture('serve.cjs');
  const zd = runApp(app.file, [...FLAGS, ...extra], { env: { PORT: String(port), ...env } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const oldPids = await distinctPids(port, 2, 5000);
  return { port, app, zd, oldPids };
}

const aborting: Array<{ name: string; fixture: string; reason: RegExp; stderr?: RegExp }> = [
  { name: 'throws on load', fixture: 'crash-on-boot.cjs', reason: /^exited with code 1$/, stderr: /Error: boom at boot/ },
  { name: 'never becomes ready (never listens)', fixture: 'never-listen.cjs', reason: /^not ready within 1000ms$/ },
  { name: 'exits 0 right after start', fixture: 'chaos-exit-zero.cjs', reason: /^exited with code 0$/ },
  // Under plain node this would exit 0 at once; a cluster worker is held by its IPC channel, so
  // only the ready deadline catches it, and the reason names the deadline, not an exit.
  { name: 'runs to its end without listening', fixture: 'chaos-run-to-end.cjs', reason: /^not ready within 1000ms$/ },
];

for (const { name, fixture, reason, stderr } of aborting) {
  test(`a deploy that ${name}: ZD_RELOAD_ABORTED (${reason.source.replace(/[\^$]/g, '')}), the old workers serve on, no request fails`, async () => {
    const { port, app, zd, oldPids } = await serving();
    const traffic = load(port, { keepAliveConnections: 8, freshLoops: 2, maxMs: 20_000 });
    await sleep(200);

    app.write(readFixture(fixture));
    const mark = zd.mark();
    zd.signal('SIGHUP');
    const aborted = await zd.waitForLog('ZD_RELOAD_ABORTED', undefined, 8000, mark);
    assert.equal(aborted.generation, 2);
    assert.match(String(aborted.reason), reason);
    if (stderr) assert.match(String(aborted.stderr), stderr, "the abort quotes the app's stderr");
    assert.equal(zd.logs('ZD_RELOAD_DONE').length, 0);
    assert.equal(zd.logs('ZD_WORKER_DRAINING').length, 0, 'no old worker was told to drain');
    const failed = zd.logs('ZD_WORKER_FORKED').filter((l) => l.generation === 2).map((l) => l.pid as number);
    assert.ok(failed.length >= 1, zd.transcript());
    await assertAllDead(failed, 3000);

    await sleep(300);
    const { report, failures, text } = await traffic.stop();
    assert.equal(failures.length, 0, text);
    assert.equal(report.non2xx, 0, text);
    assert.ok(report.ok > 200, `the load was real: ${text}`);
    assert.deepEqual(await distinctPids(port, 2, 3000), oldPids, 'the same old workers serve');
    for (const reply of await sample(port, 6)) assert.equal(reply.generation, '1');
    assert.ok(zd.alive());
  });
}

/** The first log, from `since` on, with one of these codes. */
function firstOf(zd: ReturnType<typeof runApp>, codes: string[], since: number, timeoutMs: number): Promise<ZdLog> {
  return waitUntil(() => zd.logs().slice(since).find((l) => codes.includes(l.code)), timeoutMs, codes.join(' or '));
}

test(
  'a deploy that listens on the wrong port: the rollout aborts, naming both ports; the old workers serve on, no request fails',
  
  async () => {
    const wrongPort = await freePort();
    const { port, app, zd, oldPids } = await serving([], { WRONG_PORT: String(wrongPort) });
    const traffic = load(port, { keepAliveConnections: 8, freshLoops: 2, maxMs: 20_000 });
    await sleep(200);

    app.write(readFixture('chaos-wrong-port.cjs'));
    const mark = zd.mark();
    zd.signal('SIGHUP');
    const outcome = await firstOf(zd, ['ZD_RELOAD_ABORTED', 'ZD_RELOAD_DONE'], mark, 8000);
    await sleep(500);
    const { failures, text } = await traffic.stop();
    assert.equal(outcome.code, 'ZD_RELOAD_ABORTED', `the rollout ended with ${outcome.code}: ${outcome.msg}`);
    assert.match(String(outcome.reason), new RegExp(`${wrongPort}`), 'the reason names where the new code listens');
    assert.equal(failures.length, 0, text);
    assert.deepEqual(await distinctPids(port, 2, 3000), oldPids, 'the old workers serve');
  },
);

// Issue #10: a replacement serves out --min-ready before its predecessor drains; dying within it
// is a failed boot, so the rollout aborts instead of completing onto code that is about to die.
test(
  'a deploy that exits 0 just after it starts listening: with --min-ready the rollout aborts and the old workers serve on',
  async () => {
    const { port, app, zd, oldPids } = await serving(['--max-restarts', '3', '--min-ready', '1s']);
    const client = timedPoller(port, { intervalMs: 20, maxMs: 20_000 });
    await sleep(200);
    app.write(readFixture('chaos-listen-then-exit.cjs'));
    const mark = zd.mark();
    zd.signal('SIGHUP');
    const outcome = await firstOf(zd, ['ZD_RELOAD_ABORTED', 'ZD_RELOAD_DONE'], mark, 8000);
    await sleep(1500);
    const { failures, text } = await client.stop();
    assert.equal(outcome.code, 'ZD_RELOAD_ABORTED', `the rollout ended with ${outcome.code}: ${outcome.msg}`);
    // Cluster reports the closed channel before the exit: either names the min-ready period.
    assert.match(String(outcome.reason), /(exited with code 0|went away \(its IPC channel closed\)) within its 1000ms min-ready period/);
    assert.equal(zd.logs('ZD_WORKER_DRAINING').length, 0, 'no old worker was told to drain');
    assert.ok(zd.alive(), `zd exited: ${zd.logs('ZD_CRASH_LOOP').map((l) => l.msg).join('; ')}`);
    // The new worker served for its 50 ms (cluster routes to whatever listens) and then exited
    // with what it held: only a request on a connection it held then may fail (one zd had handed
    // it and it had not read is zd's to give to another worker, issue #13). Nothing else may.
    const dying: Death[] = [];
    for (const line of zd.lines) {
      const m = /^chaos-listen-then-exit (\d+): exiting 0 at (\d+) holding /.exec(line);
      if (m) dying.push({ pid: Number(m[1]), from: Number(m[2]), heldAt: Number(m[2]), ports: portsSaid(line) });
    }
    // The first replacement listened and exited by itself, and said what it held. The proof
    // overlaps the next boot (issue #22), so a second may have been forked beside its min-ready
    // period: if it exited by itself it said so too; if not, zd stopped it for the abort.
    const forked = zd.logs('ZD_WORKER_FORKED').filter((l) => l.generation === 2);
    assert.ok(forked.length >= 1 && forked.length <= 2, `${forked.length} new workers: one, and at most one beside its min-ready period`);
    const said = new Set(dying.map((d) => d.pid));
    assert.equal(dying.length, said.size);
    assert.ok(said.has(forked[0]!.pid as number), 'the first new worker said what it held when it exited');
    for (const { pid, workerId } of forked.slice(1)) {
      if (said.has(pid as number)) continue;
      const exit = zd.logs('ZD_WORKER_EXITED').find((l) => l.workerId === workerId);
      assert.ok(exit && (exit.outcome === 'exited' || exit.outcome === 'killed'), `new worker ${String(workerId)} neither said what it held nor was stopped by zd: ${exit?.msg ?? 'no exit logged'}`);
    }
    assert.ok(dying.every((d) => forked.some((l) => l.pid === d.pid)), 'only new workers say what they held');
    const bad = unexplained(failures, dying, [], 100);
    assert.deepEqual(bad, [], `failed requests not on a connection the dying deploy held:\n${describeTimed(bad, dying)}\n${text}`);
    assert.deepEqual(await distinctPids(port, 2, 3000), oldPids, 'the old workers serve');
  },
);

test('a deploy that crashes on its 3rd request: the rollout completes; each crash is replaced after its backoff; only requests in flight on a crashing worker (or while none is up) fail', async () => {
  // Without a min-ready period: the crashes come after the rollout counted the new workers
  // (with one, the first crash within it would abort the rollout instead).
  const { port, app, zd } = await serving(['--max-restarts', '50', '--min-ready', '0']);
  const client = timedPoller(port, { intervalMs: 25, maxMs: 20_000 });
  await sleep(200);

  app.write(readFixture('chaos-crash-third.cjs'));
  const mark = zd.mark();
  zd.signal('SIGHUP');
  const done = await zd.waitForLog('ZD_RELOAD_DONE', undefined, 8000, mark);
  assert.equal(done.generation, 2);
  assert.equal(zd.logs('ZD_RELOAD_ABORTED').length, 0, zd.transcript());
  // The bug shows under traffic: let each slot crash a few times.
  await zd.waitForLogs('ZD_WORKER_CRASHED', 4, undefined, 8000, mark);
  await sleep(300);
  const { report, failures, text } = await client.stop();
  const until = Date.now();

  assert.ok(report.successes.some((r) => r.version === 'crash-third'), 'the new code served');
  const crashes = zd.logs('ZD_WORKER_CRASHED').filter((l) => l.generation === 2);
  for (const crashed of crashes) {
    assert.equal(crashed.exitCode, 1);
    const failuresInRow = Number(crashed.failures);
    assert.equal(crashed.restartInMs, Math.min(10_000, 100 * 2 ** (failuresInRow - 1)), `backoff of slot ${crashed.slot} after ${failuresInRow} crash(es)`);
    const next = zd.logs('ZD_WORKER_FORKED').find((l) => l.slot === crashed.slot && timeOf(l) >= timeOf(crashed) && l.pid !== crashed.pid);
    if (!next) {
      // Only a crash too recent for its backoff to have run out may still wait for its replacement.
      assert.ok(timeOf(crashed) + Number(crashed.restartInMs) + 500 > until, `slot ${crashed.slot} never refilled after ${crashed.pid} crashed\n${zd.transcript()}`);
      continue;
    }
    const waited = timeOf(next) - timeOf(crashed);
    assert.ok(waited >= Number(crashed.restartInMs) - 20, `slot ${crashed.slot} refilled ${waited}ms after a crash with a ${crashed.restartInMs}ms backoff`);
  }
  const crashed: Death[] = [];
  for (const line of zd.lines) {
    const m = /^chaos-crash-third (\d+) crashing at (\d+) holding /.exec(line);
    if (m) crashed.push({ pid: Number(m[1]), from: Number(m[2]), heldAt: Number(m[2]), ports: portsSaid(line) });
  }
  assert.ok(crashed.length >= 4, `crash times on stderr: ${crashed.length}`);
  const outages = noneReadyWindows(zd, until);
  const bad = unexplained(failures, crashed, outages, 100);
  assert.deepEqual(bad, [], `failed requests neither on a connection a crashing worker held nor during an outage:\n${describeTimed(bad, crashed, outages)}\n${text}`);
  assert.equal(zd.logs('ZD_CRASH_LOOP').length, 0);
  assert.ok(zd.alive());

  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(8000)).code, 0, zd.transcript());
  await assertAllDead(zd.treePids(), 2000);
});
