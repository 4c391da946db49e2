// Issue #7: workers SIGKILLed at random under load. Each one is replaced in its slot after the
// crash backoff zd announced; the only requests that fail were on a connection the killed worker
// held (read from the kernel while it was stopped, just before the kill: issue #21); and capacity
// comes back to N ready workers. A connection handed to a worker just before its kill goes to
// another worker or is reset, and never hangs, under both schedulings.
// Replay a run with the seed it prints: ZD_CHAOS_SEED=<seed> node test/run.js chaos/kill-workers
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import { distinctPids } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { assertAllDead, cleanup, fastFlags, runApp, timeOf } from '../helpers/zd.ts';
import { chaosSeed, describeTimed, killHolding, load, random, readyPids, unexplained, type Death } from './harness.ts';

afterEach(cleanup);

const WORKERS = 3;
const KILLS = 8;

test(`SIGKILL of ${KILLS} random workers under load (-w ${WORKERS}): each replaced after its backoff, only in-flight requests fail, ${WORKERS} ready again`, async (t) => {
  t.diagnostic(`seed ${chaosSeed} (replay: ZD_CHAOS_SEED=${chaosSeed} node test/run.js chaos/kill-workers)`);
  const rand = random(chaosSeed);
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', String(WORKERS), '--max-restarts', '50', ...fastFlags], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const traffic = load(port, { keepAliveConnections: 12, freshLoops: 4, maxMs: 40_000, maxRequests: 300_000 });
  await sleep(300);

  const kills: Death[] = [];
  const pending: Array<Promise<void>> = [];
  for (let i = 0; i < KILLS; i++) {
    // zd logs a replacement's READY in its own step; let the line arrive before reading who serves.
    await sleep(30);
    // Never the last serving worker: killing it would measure an outage the test made.
    const ready = await waitUntil(() => (readyPids(zd).length >= 2 ? readyPids(zd) : false), 8000, 'two ready workers to pick from');
    const pid = ready[Math.floor(rand() * ready.length)]!;
    const mark = zd.mark();
    kills.push(killHolding(pid, port));
    const replaced = (async () => {
      const crashed = await zd.waitForLog('ZD_WORKER_CRASHED', (l) => l.pid === pid, 5000, mark);
      assert.equal(crashed.signal, 'SIGKILL');
      const failures = Number(crashed.failures);
      assert.equal(crashed.restartInMs, Math.min(10_000, 100 * 2 ** (failures - 1)), `backoff for failure ${failures} of slot ${crashed.slot}`);
      const forked = await zd.waitForLog('ZD_WORKER_FORKED', (l) => l.slot === crashed.slot && l.pid !== pid, 15_000, mark);
      const waited = timeOf(forked) - timeOf(crashed);
      assert.ok(waited >= Number(crashed.restartInMs) - 20, `slot ${crashed.slot} refilled ${waited}ms after the crash, before its ${crashed.restartInMs}ms backoff`);
      await zd.waitForLog('ZD_WORKER_READY', (l) => l.pid === forked.pid, 5000, mark);
    })();
    replaced.catch(() => undefined); // judged below, with the others
    pending.push(replaced);
    // Sometimes wait for the replacement, sometimes kill again while a slot is still empty.
    if (rand() < 0.6) await replaced;
    await sleep(Math.floor(rand() * 250));
  }
  await Promise.all(pending);

  // Capacity recovers: N ready, and N distinct live pids answer.
  await waitUntil(() => readyPids(zd).length === WORKERS, 5000, `${WORKERS} ready workers`);
  const answering = await distinctPids(port, WORKERS, 5000);
  assert.deepEqual([...answering].sort(), [...readyPids(zd)].sort(), 'the workers answering are the ready ones');
  await sleep(300);
  const { report, failures, text } = await traffic.stop();

  const bad = unexplained(failures, kills);
  assert.deepEqual(bad, [], `failed requests not on a connection a killed worker held (seed ${chaosSeed}):\n${describeTimed(bad, kills)}\n${text}`);
  assert.ok(report.ok > 1000, `the load was real: ${text}`);
  assert.equal(report.non2xx, 0, text);
  assert.equal(zd.logs('ZD_WORKER_CRASHED').length, KILLS, 'one crash per kill, no other');
  assert.equal(zd.logs('ZD_CRASH_LOOP').length, 0);
  await assertAllDead(kills.map((k) => k.pid), 1000);
  assert.ok(zd.alive());

  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(8000), { code: 0, signal: null }, zd.transcript());
  await assertAllDead(zd.treePids(), 2000);
});

/** Fresh-connection load while `kills` workers are SIGKILLed 250 ms apart; what hung, and the primary's open fds. */
async function killUnderFreshLoad(sched: 'rr' | 'none', kills: number) {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', String(WORKERS), '--sched', sched, '--max-restarts', '50', ...fastFlags], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  // The primary's: it accepts every connection (zd.pid, the keeper, only holds the listening socket).
  const primary = zd.primaryPid()!;
  const fds = () => readdirSync(`/proc/${primary}/fd`).length;
  const before = fds();
  const traffic = load(port, { keepAliveConnections: 1, freshLoops: 8, maxMs: 30_000 });
  await sleep(200);
  for (let i = 0; i < kills; i++) {
    const ready = await waitUntil(() => (readyPids(zd).length >= 2 ? readyPids(zd) : false), 8000, 'two ready workers');
    process.kill(ready[i % ready.length]!, 'SIGKILL');
    await sleep(250);
  }
  await waitUntil(() => readyPids(zd).length === WORKERS, 8000, `${WORKERS} ready workers`);
  // stop() waits for every request still out: a hung one ends at the client's 5 s timeout.
  const { failures, text } = await traffic.stop();
  await sleep(300);
  return { zd, hung: failures.filter((f) => /timeout/i.test(f.what)), fdsBefore: before, fdsAfter: fds(), text };
}

// node:cluster's own round robin leaves such a connection with no answer, no reset and a leaked fd in
// the primary (measured before zd owned its sockets: 4-5 hung requests and +5 fds per 10 kills).
test(
  'a request handed to a worker that is then SIGKILLed goes to another worker or fails at once (reset); none hangs, and the primary keeps no connection of it open',
  async () => {
    const { hung, fdsBefore, fdsAfter, text } = await killUnderFreshLoad('rr', 8);
    assert.equal(hung.length, 0, `${hung.length} request(s) hung until the client's 5 s timeout, and the primary went from ${fdsBefore} to ${fdsAfter} fds; ${text}`);
    assert.ok(fdsAfter <= fdsBefore, `the primary holds ${fdsAfter - fdsBefore} more fds than before the kills`);
  },
);

test('with --sched none (the OS distributes connections) no request hangs when workers are SIGKILLed, and the primary leaks no fd', async () => {
  const { hung, fdsBefore, fdsAfter, text } = await killUnderFreshLoad('none', 8);
  assert.equal(hung.length, 0, `${hung.length} request(s) hung until the client's 5 s timeout, and the primary went from ${fdsBefore} to ${fdsAfter} fds; ${text}`);
  assert.ok(fdsAfter <= fdsBefore, `the primary holds ${fdsAfter - fdsBefore} more fds than before the kills`);
});
