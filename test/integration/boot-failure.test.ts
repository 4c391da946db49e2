// If the first generation cannot get a single worker ready, zd exits 1 with ZD_BOOT_FAILED and
// leaves no process behind.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { afterEach, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { assertAllDead, cleanup, runApp } from '../helpers/zd.ts';

afterEach(cleanup);

const flags = ['-w', '2', '--ready-timeout', '1s', '--drain-timeout', '500ms', '--kill-timeout', '500ms'];

test('an app that never listens hits the ready timeout: exit 1, ZD_BOOT_FAILED, nothing left', async () => {
  const port = await freePort();
  const started = Date.now();
  const zd = runApp(fixturePath('never-listen.cjs'), flags, { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_WORKER_FORKED', undefined, 5000);
  const tree = zd.treePids();

  const exit = await zd.waitForExit(8000);
  const elapsed = Date.now() - started;
  assert.equal(exit.code, 1, zd.transcript());
  assert.ok(elapsed >= 900, `gave up after ${elapsed}ms, before the 1s ready timeout`);
  const failed = await zd.waitForLog('ZD_BOOT_FAILED', undefined, 100);
  assert.match(String(failed.reason), /time|ready/i);
  assert.equal(zd.logs('ZD_READY').length, 0);
  await assertAllDead([...tree, ...zd.workerPids()], 3000);
});

test("an app that throws on load: exit 1 with the app's error on stderr, nothing left", async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('crash-on-boot.cjs'), flags, { env: { PORT: String(port) } });
  const exit = await zd.waitForExit(8000);
  assert.equal(exit.code, 1, zd.transcript());
  assert.match(zd.stderr, /Error: boom at boot/, "the app's stderr is forwarded");
  const failed = await zd.waitForLog('ZD_BOOT_FAILED', undefined, 100);
  assert.match(String(failed.stderr), /boom at boot/);
  assert.equal(zd.logs('ZD_READY').length, 0);
  assert.ok(zd.workerPids().length >= 1, zd.transcript());
  await assertAllDead([zd.pid, ...zd.workerPids()], 3000);
});

test('a port already in use: exit 1, ZD_BOOT_FAILED, nothing left', async () => {
  const port = await freePort();
  const squatter: Server = createServer();
  await new Promise<void>((resolve) => squatter.listen(port, resolve));
  try {
    const zd = runApp(fixturePath('serve.cjs'), flags, { env: { PORT: String(port) } });
    const exit = await zd.waitForExit(8000);
    assert.equal(exit.code, 1, zd.transcript());
    assert.match(zd.stderr, /EADDRINUSE/);
    await zd.waitForLog('ZD_BOOT_FAILED', undefined, 100);
    await assertAllDead([zd.pid, ...zd.workerPids()], 3000);
  } finally {
    squatter.close();
  }
});

test('with --ready message, an app that listens but never says ready fails to boot', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('ready-message.cjs'), [...flags, '--ready', 'message'], {
    env: { PORT: String(port), READY_DELAY_MS: '-1' },
  });
  const exit = await zd.waitForExit(8000);
  assert.equal(exit.code, 1, zd.transcript());
  await zd.waitForLog('ZD_BOOT_FAILED', undefined, 100);
  assert.equal(zd.logs('ZD_WORKER_READY').length, 0);
  await assertAllDead([zd.pid, ...zd.workerPids()], 3000);
});
