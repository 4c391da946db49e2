// An aborted reload's slots go back to the serving generation, and a restore that fails is tried
// again: the slot is not left on the aborted code, which gets no connection, until the next reload.
// Real workers follow a boot plan (test/fixtures/boot-plan.cjs): which boots listen, which hang.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { describeFailures, poller, sample } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { cleanupCopies, copyFixture, readFixture } from '../helpers/tmp.ts';
import { cleanup, runApp } from '../helpers/zd.ts';

const dirs: string[] = [];
afterEach(() => {
  cleanup();
  cleanupCopies();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * 2 workers boot (1, 2). A reload: slot 0's replacement listens (3), slot 1's hangs (4), so the
 * reload aborts with slot 0 on generation 2. `restores` says how the boots after that go.
 */
async function abortedWithSlot0Ahead(restores: string[], flags: string[]) {
  const port = await freePort();
  const app = copyFixture('boot-plan.cjs');
  writeFileSync(join(app.dir, 'serve.cjs'), readFixture('serve.cjs')); // what a boot that listens runs
  const bootDir = mkdtempSync(join(tmpdir(), 'zd-boots-'));
  dirs.push(bootDir);
  const plan = ['ok', 'ok', 'ok', 'hang', ...restores];
  const zd = runApp(app.file, ['-w', '2', '--min-ready', '0', '--ready-timeout', '1s', '--drain-timeout', '1s', '--kill-timeout', '500ms', ...flags], {
    env: { PORT: String(port), BOOT_DIR: bootDir, BOOT_PLAN: plan.join(',') },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const client = poller(port, { intervalMs: 10, maxMs: 30_000 });
  const mark = zd.mark();
  zd.signal('SIGHUP');
  const aborted = await zd.waitForLog('ZD_RELOAD_ABORTED', undefined, 8000, mark);
  assert.equal(Number(aborted.generation), 2);
  return { zd, port, client, mark };
}

test('a restore that misses its ready deadline is tried again after its back-off, and the serving generation is back on every slot', async () => {
  const { zd, port, client, mark } = await abortedWithSlot0Ahead(['hang', 'ok'], []);
  const retry = await zd.waitForLog('ZD_RESTORE_RETRY', undefined, 5000, mark);
  assert.equal(Number(retry.slot), 0);
  assert.equal(Number(retry.generation), 2, 'the slot still runs the aborted generation');
  await zd.waitForLog('ZD_REPLACE_DONE', undefined, 8000, mark);
  for (const reply of await sample(port, 20)) assert.equal(reply.generation, '1', 'every worker runs the serving generation');
  const report = await client.stop();
  assert.equal(report.failures.length, 0, `failed requests: ${describeFailures(report.failures)}`);
  assert.equal(zd.logs('ZD_RESTORE_FAILED').length, 0);
  assert.ok(zd.alive());
});

test('a restore that keeps failing gives up after --max-restarts, says so, and the next reload replaces the slot', async () => {
  const { zd, port, client, mark } = await abortedWithSlot0Ahead(['hang', 'hang'], ['--max-restarts', '1']);
  const failed = await zd.waitForLog('ZD_RESTORE_FAILED', undefined, 10_000, mark);
  assert.equal(Number(failed.slot), 0);
  assert.equal(zd.logs('ZD_RESTORE_RETRY').length, 1, 'one retry (--max-restarts 1), then it gives up');
  // The aborted code serves only if no other worker can: the serving generation's worker answers.
  for (const reply of await sample(port, 20)) assert.equal(reply.generation, '1');
  const next = zd.mark();
  zd.signal('SIGHUP'); // boots beyond the plan listen
  const done = await zd.waitForLog('ZD_RELOAD_DONE', undefined, 10_000, next);
  for (const reply of await sample(port, 20)) assert.equal(reply.generation, String(done.generation));
  const report = await client.stop();
  assert.equal(report.failures.length, 0, `failed requests: ${describeFailures(report.failures)}`);
});
