// Issue #6 with real processes: heartbeats against a truly blocked event loop, the memory limit
// against a leaking app, the config file, and a rollout shaped by --max-surge/--max-unavailable.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { describeFailures, getJson, poller } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { cleanup, runApp, startZd } from '../helpers/zd.ts';

const dirs: string[] = [];
afterEach(() => {
  cleanup();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

test('a worker whose event loop blocks is reported and replaced, its replacement ready before it is killed', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('block-loop.cjs'), ['-w', '2', '--heartbeat-timeout', '500ms', '--heartbeat-interval', '200ms', '--drain-timeout', '1s', '--kill-timeout', '500ms'], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  // Block one worker: the request lands on whichever worker the primary picks.
  await getJson(port, '/block', 2000).catch(() => undefined);
  const unresponsive = await zd.waitForLog('ZD_WORKER_UNRESPONSIVE', undefined, 5000);
  const hung = unresponsive.pid as number;
  const replaced = await zd.waitForLog('ZD_REPLACE_DONE', undefined, 10_000);
  const exited = await zd.waitForLog('ZD_WORKER_EXITED', (l) => l.pid === hung, 5000);
  const ready = zd.logs('ZD_WORKER_READY').at(-1)!;
  assert.ok(Date.parse(String(ready.time)) <= Date.parse(String(exited.time)), 'replacement ready before the hung worker went');
  assert.equal(exited.outcome, 'killed', 'a blocked loop cannot drain: killed at the deadline');
  assert.ok(replaced);
  // Service continued on the others throughout.
  assert.ok((await getJson(port, '/', 2000)).json.pid !== hung);
});

test('a worker over --max-memory is replaced, one at a time, without a failed request', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('leak.cjs'), ['-w', '2', '--max-memory', '120M', '--drain-timeout', '2s'], {
    env: { PORT: String(port), LEAK_MB_PER_TICK: '4' },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const over = await zd.waitForLog('ZD_WORKER_OVER_MEMORY', undefined, 15_000);
  assert.ok((over.rssBytes as number) > 120 * 1024 * 1024);
  await zd.waitForLog('ZD_REPLACE_STARTED', undefined, 5000);
  const draining = await zd.waitForLog('ZD_WORKER_DRAINING', (l) => l.pid === over.pid, 10_000);
  assert.ok(draining, 'the leaking worker drains once its replacement is ready');
  const concurrent = zd.logs('ZD_REPLACE_STARTED').length - zd.logs('ZD_REPLACE_DONE').length - zd.logs('ZD_REPLACE_ABORTED').length;
  assert.ok(concurrent <= 1, 'never more than one replacement at a time');
});

test('zd.config.json supplies the app and settings; the command line overrides them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zd-config-'));
  dirs.push(dir);
  const port = await freePort();
  writeFileSync(join(dir, 'zd.config.json'), JSON.stringify({ app: fixturePath('serve.cjs'), workers: 3, drainTimeout: '2s', name: 'from-config', args: ['--from', 'file'] }));
  const zd = startZd(['run', '-w', '2'], { cwd: dir, env: { PORT: String(port) } });
  const config = await zd.waitForLog('ZD_CONFIG', undefined, 10_000);
  assert.equal(config.workers, 2, 'the command line wins');
  assert.equal(config.drainTimeoutMs, 2000, 'the file supplies the rest');
  assert.equal(config.instance, 'from-config');
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  assert.deepEqual((await getJson(port)).json.argv, ['--from', 'file']);
});

test('a bad config file: one line per problem, exit 2, nothing started', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zd-config-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'zd.config.json'), JSON.stringify({ app: fixturePath('serve.cjs'), wrokers: 2, drainTimeout: '5 parsecs', workers: '4', maxSurge: -1 }));
  const zd = startZd(['run'], { cwd: dir });
  const exit = await zd.waitForExit(10_000);
  assert.equal(exit.code, 2);
  const lines = zd.stderr.trim().split('\n');
  assert.equal(lines.length, 4, zd.stderr);
  assert.match(zd.stderr, /unknown key "wrokers"/);
  assert.match(zd.stderr, /"drainTimeout" '5 parsecs' is not a duration/);
  assert.match(zd.stderr, /"workers" must be a whole number, not "4"/);
  assert.match(zd.stderr, /"maxSurge" must be a whole number from 0/);
  assert.equal(zd.workerPids().length, 0);
});

test('--max-surge 2 --max-unavailable 1 replaces 4 workers in fewer, wider steps, never below 3 ready', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '4', '--max-surge', '2', '--max-unavailable', '1', '--drain-timeout', '2s'], {
    env: { PORT: String(port), BOOT_DELAY_MS: '300' },
  });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  const mark = zd.mark();
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 15_000, mark);
  // Replay the log: ready workers never fell below N − maxUnavailable = 3.
  let ready = 4;
  let lowest = 4;
  for (const entry of zd.entries.slice(mark)) {
    if (entry.code === 'ZD_WORKER_READY') ready++;
    if (entry.code === 'ZD_WORKER_DRAINING') ready--;
    lowest = Math.min(lowest, ready);
  }
  assert.ok(lowest >= 3, `ready fell to ${lowest}`);
  const forkTimes = zd.entries.slice(mark).filter((e) => e.code === 'ZD_WORKER_FORKED').map((e) => Date.parse(String(e.time)));
  assert.equal(forkTimes.length, 4);
  assert.ok(forkTimes[2]! - forkTimes[0]! < 250, 'three replacements (surge 2 + unavailable 1) started together');
});

test('--sched none (the OS balances connections): serves from every worker and reloads without a failed request', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', '--sched', 'none', '--drain-timeout', '3s'], { env: { PORT: String(port) } });
  const config = await zd.waitForLog('ZD_CONFIG', undefined, 10_000);
  assert.equal(config.sched, 'none');
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const client = poller(port, { intervalMs: 5, maxMs: 15_000 });
  const mark = zd.mark();
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 10_000, mark);
  // Both old workers: the second is told to drain only as the rollout finishes.
  const old = await zd.waitForLogs('ZD_WORKER_EXITED', 2, (l) => l.generation === 1, 5000, mark);
  const report = await client.stop();
  assert.equal(report.failures.length, 0, describeFailures(report.failures));
  assert.ok(report.generations.has('1') && report.generations.has('2'), 'served across the reload');
  // A draining worker stops accepting on the shared socket and leaves on its own, not at the deadline.
  assert.deepEqual(old.map((l) => l.outcome), ['exited', 'exited'], zd.transcript());
});
