// Issue #10, item 4: signals sent to zd's whole process tree (Ctrl-C in a terminal, `timeout`,
// `kill -- -PGID`, systemd's KillMode=control-group) are handled once, by zd. zd.pid is the keeper,
// leader of the group the test helper starts it in (as a shell does a foreground job); the primary
// and its workers are a group of their own. Each signal below goes to both groups at the same
// moment: every process of the instance gets it, and zd must still act on it once.
import assert from 'node:assert/strict';
import cluster from 'node:cluster';
import { readdirSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import type { WorkerId } from '../../src/core/events.ts';
import { createClusterEnv } from '../../src/shell/cluster-env.ts';
import { distinctPids, getJson } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { assertAllDead, cleanup, isAlive, runApp, trackPid, type Zd } from '../helpers/zd.ts';

afterEach(cleanup);

const flags = ['--ready-timeout', '5s', '--drain-timeout', '5s', '--kill-timeout', '1s'];

/** Sends `signal` to every process of the instance: the keeper's group and the primary's. */
function signalGroup(zd: Zd, signal: NodeJS.Signals): void {
  process.kill(-zd.pid, signal);
  process.kill(-zd.primaryPid()!, signal);
}

function handlerLines(zd: Zd, signal: string): string[] {
  return zd.lines.filter((line) => line.startsWith('group-signals ') && line.endsWith(`: ${signal} handler ran`));
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`${signal} to the process group: workers drain (in-flight request answered), no app handler runs early, no ZD_IO_ERROR, exit 0, nothing left`, async () => {
    const port = await freePort();
    const zd = runApp(fixturePath('group-signals.cjs'), ['-w', '3', ...flags], { env: { PORT: String(port) } });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    await distinctPids(port, 3, 5000);
    const tree = zd.treePids();
    const workers = zd.workerPids();

    const inFlight = getJson(port, '/?delay=1500', 8000);
    await sleep(200);
    const sentAt = Date.now();
    signalGroup(zd, signal);

    const exit = await zd.waitForExit(10_000);
    assert.deepEqual(exit, { code: 0, signal: null }, zd.transcript());
    const reply = await inFlight;
    assert.equal(reply.status, 200, 'the request in flight was answered');
    assert.ok(Date.now() - sentAt >= 1000, 'zd waited for it');
    await assertAllDead(tree, 1000);

    assert.equal(zd.logs('ZD_SHUTDOWN').length, 1, 'one shutdown');
    assert.equal(zd.logs('ZD_SHUTDOWN')[0]!.signal, signal);
    assert.deepEqual(zd.logs('ZD_IO_ERROR'), [], 'no I/O error');
    for (const pid of workers) {
      const exited = zd.logs('ZD_WORKER_EXITED').find((log) => log.pid === pid);
      assert.ok(exited, `worker ${pid} exit logged\n${zd.transcript()}`);
      assert.equal(exited.outcome, 'exited', `worker ${pid} drained, not killed: ${JSON.stringify(exited)}`);
      assert.equal(exited.exitCode, 0);
    }
    // The group's signal is zd's; the app's own handler would have cut the drain short.
    assert.deepEqual(handlerLines(zd, signal), [], zd.transcript());
  });
}

test('SIGHUP to the process group: one rolling restart, the old workers drain (not killed by SIGHUP), the app’s own SIGHUP handler runs; SIGTERM to the group then exits 0', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('group-signals.cjs'), ['-w', '2', ...flags], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  await distinctPids(port, 2, 5000);
  const old = zd.workerPids();

  const inFlight = getJson(port, '/?delay=1500', 8000);
  await sleep(200);
  const mark = zd.mark();
  signalGroup(zd, 'SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 15_000, mark);
  const reply = await inFlight;
  assert.equal(reply.status, 200, 'the request in flight was answered');
  assert.equal(reply.json.generation, '1');

  for (const pid of old) {
    const exited = await zd.waitForLog('ZD_WORKER_EXITED', (log) => log.pid === pid, 8000, mark);
    assert.equal(exited.outcome, 'exited', `old worker ${pid} drained: ${JSON.stringify(exited)}`);
    assert.equal(exited.exitCode, 0);
  }
  const after = zd.logs().slice(mark);
  assert.equal(after.filter((l) => l.code === 'ZD_RELOAD_STARTED').length, 1, 'one rollout');
  assert.equal(after.filter((l) => l.code === 'ZD_RELOAD_QUEUED').length, 0);
  assert.equal(after.filter((l) => l.code === 'ZD_WORKER_CRASHED').length, 0, zd.transcript());
  assert.deepEqual(zd.logs('ZD_IO_ERROR'), []);
  // SIGHUP does not end a worker, and an app that handles it still hears it (a log reopen).
  assert.equal(handlerLines(zd, 'SIGHUP').length, 2, zd.transcript());
  const serving = await distinctPids(port, 2, 5000);
  for (const pid of old) assert.ok(!serving.has(pid));
  const { json } = await getJson(port, '/', 3000);
  assert.equal(json.generation, '2');

  const tree = zd.treePids();
  signalGroup(zd, 'SIGTERM');
  assert.deepEqual(await zd.waitForExit(10_000), { code: 0, signal: null }, zd.transcript());
  await assertAllDead(tree, 1000);
  assert.deepEqual(handlerLines(zd, 'SIGTERM'), []);
  assert.deepEqual(zd.logs('ZD_IO_ERROR'), []);
});

test("SIGTERM to the process group with a worker ignoring SIGTERM: the group's SIGTERM never reaches its handler, zd's at the drain deadline does; SIGKILL ends it, exit 0", async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('ignore-sigterm.cjs'), ['-w', '1', '--drain-timeout', '1s', '--kill-timeout', '1s'], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const [pid] = zd.workerPids();
  const tree = zd.treePids();

  const sentAt = Date.now();
  signalGroup(zd, 'SIGTERM');
  await sleep(600);
  const ignored = () => zd.lines.filter((line) => line === `ignore-sigterm ${pid}: SIGTERM ignored`).length;
  assert.equal(ignored(), 0, "the group's SIGTERM is zd's, not the app's");
  assert.ok(isAlive(pid!), 'the worker drains');

  assert.deepEqual(await zd.waitForExit(10_000), { code: 0, signal: null }, zd.transcript());
  assert.ok(Date.now() - sentAt >= 1800, 'drain deadline, then kill deadline');
  assert.equal(ignored(), 1, `zd's SIGTERM at the drain deadline reached the app's handler once\n${zd.transcript()}`);
  const exited = zd.logs('ZD_WORKER_EXITED').find((log) => log.pid === pid)!;
  assert.equal(exited.outcome, 'killed');
  assert.equal(exited.signal, 'SIGKILL');
  await assertAllDead(tree, 1000);
  assert.deepEqual(zd.logs('ZD_IO_ERROR'), []);
});

test('a write to a worker that is already gone (EPIPE) is not reported as an I/O error', async () => {
  // The test process is the primary here: it holds the worker's pid, so it can make sure the
  // worker is dead before zd's side of the channel has noticed, and write to it then.
  const reported: string[] = [];
  const app = fixturePath('serve.cjs');
  const env = createClusterEnv({
    source: { app, cwd: process.cwd(), args: [] },
    execArgv: [],
    workerEnv: { PORT: String(await freePort()) },
    // The workers' output is read and dropped: this test is about the IPC channel.
    output: { attach: ({ stdout, stderr }) => void [stdout, stderr].forEach((pipe) => pipe?.resume()) },
    sockets: { sched: 'rr', stickyPort: null, onError: () => {} },
    onReleaseGone: () => reported.push('release gone'),
    onIoError: (_id, what, error) => reported.push(`${what}: ${(error as NodeJS.ErrnoException).code ?? error.message}`),
  });
  const seen: string[] = [];
  const events: string[] = [];
  let pid = 0;
  env.fork({ workerId: 1 as WorkerId, slot: 0, generation: 1, release: { app, cwd: process.cwd(), args: [] } }, (event) => {
    events.push(event.type);
    if (event.type === 'worker.forked') pid = event.pid;
  });
  trackPid(pid);
  const worker = Object.values(cluster.workers ?? {})[0]!;
  worker.on('error', (error: NodeJS.ErrnoException) => seen.push(`channel ${error.code ?? error.message}`));
  // The same failure also reaches the send's callback: watched too, to know this test saw it.
  const send = worker.send.bind(worker) as (...args: unknown[]) => boolean;
  worker.send = ((message: unknown, handle: unknown, callback?: (error: Error | null) => void) =>
    send(message, handle, (error: NodeJS.ErrnoException | null) => {
      if (error) seen.push(`send ${error.code ?? error.message}`);
      callback?.(error);
    })) as typeof worker.send;
  const deadline = Date.now() + 10_000;
  while (!events.includes('worker.listening') && Date.now() < deadline) await sleep(20);
  assert.ok(events.includes('worker.listening'), events.join(', '));

  process.kill(pid, 'SIGKILL');
  // Synchronously, so this process's event loop cannot see the channel close in between. A
  // multi-threaded process's main thread turns zombie before its other threads are gone, and
  // its file descriptors (the channel's end) close with the last of them.
  const gone = () => {
    try {
      return readdirSync(`/proc/${pid}/task`).length <= 1 && !isAlive(pid);
    } catch {
      return true;
    }
  };
  const until = Date.now() + 2000;
  while (!gone() && Date.now() < until) {
    // wait for the kernel to end it
  }
  assert.ok(gone());
  assert.equal(env.send(1 as WorkerId, { type: 'zd:shutdown' }), true, 'the channel still looked open');
  env.disconnect(1 as WorkerId);
  while (!events.includes('worker.exit') && Date.now() < deadline) await sleep(20);
  assert.ok(events.includes('worker.exit'));
  assert.ok(seen.some((s) => s.startsWith('send ')) && seen.some((s) => s.startsWith('channel ')), `the writes failed (the case this test is about): ${seen.join(', ')}`);
  assert.deepEqual(reported, [], `reported: ${reported.join(', ')} (cluster said: ${seen.join(', ')})`);
});
