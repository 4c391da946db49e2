// Issue #7: the primary SIGKILLed. It can clean nothing up, so what it leaves must clean itself up:
// cluster workers exit when their IPC channel closes, the port is released with them, and the
// control socket left behind is recognised as stale by the next `zd run` with the same --name.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { distinctPids, getJson, poller, sample } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { assertAllDead, cleanup, fastFlags, runApp, testRuntimeDir } from '../helpers/zd.ts';

afterEach(cleanup);

test('SIGKILL of the primary under load: every worker exits within 2 s, the port is free, and a fresh zd with the same --name starts cleanly (ZD_STALE_SOCKET)', async () => {
  const port = await freePort();
  const name = 'chaos-primary';
  const flags = ['-w', '3', '--name', name, ...fastFlags];
  const first = runApp(fixturePath('serve.cjs'), flags, { env: { PORT: String(port) } });
  await first.waitForLog('ZD_READY', undefined, 10_000);
  const workers = [...(await distinctPids(port, 3, 5000))];
  const client = poller(port, { intervalMs: 5, maxMs: 20_000 });
  await client.until((r) => r.successes.length >= 20, 3000, 'the client to be served');

  process.kill(first.pid, 'SIGKILL');
  assert.deepEqual(await first.waitForExit(3000), { code: null, signal: 'SIGKILL' });
  // Checked by pid: no process of the first tree survives its primary for long.
  await assertAllDead(workers, 2000);
  await assertAllDead(first.treePids(), 500);
  assert.ok(existsSync(join(testRuntimeDir, `${name}.sock`)), 'a SIGKILLed primary leaves its socket behind');
  await assert.rejects(getJson(port, '/', 500), { code: 'ECONNREFUSED' }, 'nothing listens on the port any more');

  // Same port, same name: nothing left holds either.
  const second = runApp(fixturePath('serve.cjs'), flags, { env: { PORT: String(port) } });
  await second.waitForLog('ZD_READY', undefined, 10_000);
  assert.equal(second.logs('ZD_STALE_SOCKET').length, 1, second.transcript());
  assert.equal(second.logs('ZD_BOOT_FAILED').length, 0);
  const fresh = new Set(second.workerPids());
  for (const reply of await sample(port, 10)) assert.ok(fresh.has(reply.pid), `answered by ${reply.pid}, not by the new zd's workers`);
  const report = await client.stop();
  assert.ok(report.successes.some((r) => fresh.has(r.pid)), 'the client was served by the new zd');

  second.signal('SIGTERM');
  assert.deepEqual(await second.waitForExit(8000), { code: 0, signal: null }, second.transcript());
  await assertAllDead(second.treePids(), 2000);
  assert.equal(existsSync(join(testRuntimeDir, `${name}.sock`)), false, 'a stopped zd removes its socket');
});

test('SIGKILL of the primary during a rollout: the booting and the serving workers exit within 2 s', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...fastFlags], { env: { PORT: String(port), BOOT_DELAY_MS: '600' } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_WORKER_FORKED', (l) => l.generation === 2, 5000);
  await sleep(100); // the replacement is loading, not yet listening
  assert.equal(zd.logs('ZD_WORKER_READY').filter((l) => l.generation === 2).length, 0, 'killed mid-boot');
  process.kill(zd.pid, 'SIGKILL');
  await zd.waitForExit(3000);
  await assertAllDead(zd.workerPids(), 2000);
});

test(
  'SIGKILL of the primary while old workers drain: the draining workers are gone by --drain-timeout + --kill-timeout',
  
  async () => {
    const port = await freePort();
    const zd = runApp(fixturePath('slow-drain.cjs'), ['-w', '2', '--drain-timeout', '1s', '--kill-timeout', '500ms'], {
      env: { PORT: String(port), SLOW_DRAIN_MS: '15000' },
    });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    const old = zd.workerPids();
    zd.signal('SIGHUP');
    await zd.waitForLogs('ZD_WORKER_DRAINING', 2, undefined, 5000);
    await zd.waitForLog('ZD_RELOAD_DONE', undefined, 5000);
    process.kill(zd.pid, 'SIGKILL');
    await zd.waitForExit(3000);
    const newer = zd.workerPids().filter((pid) => !old.includes(pid));
    await assertAllDead(newer, 2000);
    // Draining began at most ~0.2 s ago: 1 s + 0.5 s of deadlines, and a second to spare.
    await assertAllDead(old, 2500);
  },
);
