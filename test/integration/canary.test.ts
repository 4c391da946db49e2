// Issue #14: canary rollouts under real load. The new code's first worker serves its share of
// real traffic beside the old ones for the window, then is compared with them: clearly worse
// code is aborted with the measured figures, good code completes (not before the window).
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { hammer, summary } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { cleanupCopies, copyFixture, readFixture } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { cleanup, runApp, timeOf, zdCli, zdCliAsync } from '../helpers/zd.ts';

afterEach(() => {
  cleanup();
  cleanupCopies();
});

const WINDOW_MS = 3000;


async function canaryRun(mode: 'good' | 'errors' | 'slow', name: string, via: 'signal' | 'cli' = 'signal', freshLoops = 6) {
  const port = await freePort();
  const app = copyFixture('canary-app.cjs');
  const zd = runApp(app.file, ['-w', '2', '--ready-timeout', '5s', '--drain-timeout', '3s', '--kill-timeout', '1s', '--min-ready', '0', '--canary', `${WINDOW_MS}ms`, '--canary-min-requests', '30', '--name', name], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  // New connections reach every worker, the canary included; keep-alive ones opened before the
  // window are closed once in it, so that their clients reconnect and some land on the canary.
  const load = hammer(port, { keepAliveConnections: 8, freshLoops, maxMs: 30_000 });
  await sleep(300);
  app.write(readFixture('canary-app.cjs').replace("const MODE = 'good';", `const MODE = '${mode}';`));
  const mark = zd.mark();
  let cli: ReturnType<typeof zdCliAsync> | null = null;
  if (via === 'signal') zd.signal('SIGHUP');
  else cli = zdCliAsync('reload', name, '--wait');
  const started = await zd.waitForLog('ZD_RELOAD_STARTED', undefined, 5000, mark);
  const outcome = await Promise.race([
    zd.waitForLog('ZD_RELOAD_DONE', undefined, 25_000, mark),
    zd.waitForLog('ZD_RELOAD_ABORTED', undefined, 25_000, mark),
  ]);
  await sleep(500);
  const report = await load.stop();
  return { zd, port, started, outcome, report, cli: cli && (await cli) };
}

test('new code answering 500 to a third of requests: aborted with both generations’ error rates; the old generation serves on; nothing failed because of zd', async () => {
  const { zd, outcome, report, cli } = await canaryRun('errors', 'canary-errors', 'cli');
  assert.equal(outcome.code, 'ZD_RELOAD_ABORTED', zd.transcript());
  assert.match(String(outcome.reason), /canary failed: the new generation fails \d+\.\d% of requests/);
  assert.match(String(outcome.reason), /old 0\.0% failed/);
  const verdict = zd.logs('ZD_CANARY_FAILED')[0]!;
  assert.ok((verdict.canary as { errorRate: number }).errorRate > 0.2, JSON.stringify(verdict.canary));
  // The canary's own 500s are the app's; no request failed at the transport.
  assert.equal(report.failures.length, 0, summary(report));
  assert.equal(zd.logs('ZD_WORKER_DRAINING').filter((l) => l.generation === 1).length, 0, 'no old worker drained');
  const status = JSON.parse(zdCli('status', 'canary-errors', '--json').stdout) as { ready: number; workers: Array<{ generation: number; ready: boolean }>; canaryVerdict: { outcome: string } };
  assert.equal(status.canaryVerdict.outcome, 'fail');
  assert.equal(status.workers.filter((w) => w.ready && w.generation === 1).length, 2, 'the old generation at full capacity');
  // zd reload --wait exits 1 with the verdict.
  assert.equal(cli!.code, 1, cli!.stderr);
  assert.match(cli!.stderr, /canary failed: the new generation fails/);
  assert.equal(cli!.stderr.trim().split('\n').length, 1, cli!.stderr);
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});

test('new code 150 ms slower: aborted on latency', async () => {
  const { zd, outcome, report } = await canaryRun('slow', 'canary-slow');
  assert.equal(outcome.code, 'ZD_RELOAD_ABORTED', zd.transcript());
  assert.match(String(outcome.reason), /p99 latency ≤ \d+ms is more than 2× the old one's/);
  assert.equal(report.failures.length, 0, summary(report));
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});

test('good code completes, not before the window; nothing failed', async () => {
  const { zd, started, outcome, report } = await canaryRun('good', 'canary-good');
  assert.equal(outcome.code, 'ZD_RELOAD_DONE', zd.transcript());
  assert.ok(timeOf(outcome) - timeOf(started) >= WINDOW_MS, `done ${timeOf(outcome) - timeOf(started)}ms after the start`);
  const passed = zd.logs('ZD_CANARY_PASSED')[0] ?? zd.logs('ZD_CANARY_INCONCLUSIVE')[0];
  assert.ok(passed, zd.transcript());
  assert.equal(report.failures.length, 0, summary(report));
  assert.equal(report.non2xx, 0, summary(report));
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});

test('keep-alive clients only: the canary still gets its share (the window closes older connections once), and is judged', async () => {
  const { zd, outcome, report } = await canaryRun('good', 'canary-keepalive', 'signal', 0);
  assert.equal(outcome.code, 'ZD_RELOAD_DONE', zd.transcript());
  const passed = zd.logs('ZD_CANARY_PASSED')[0];
  assert.ok(passed, `judged, not inconclusive:\n${zd.transcript()}`);
  assert.ok((passed.canary as { requests: number }).requests >= 30, JSON.stringify(passed.canary));
  assert.equal(report.failures.length, 0, summary(report));
  assert.equal(report.non2xx, 0, summary(report));
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});
