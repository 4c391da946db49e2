// Issue #5: the control socket and `zd status | reload | stop | list`, against real instances.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { getJson } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { cleanupCopies, copyFixture, fixturePath, readFixture } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { assertAllDead, cleanup, fastFlags, runApp, testRuntimeDir, zdCli } from '../helpers/zd.ts';

afterEach(() => {
  cleanup();
  cleanupCopies();
});


async function started(name: string, extra: string[] = [], app = fixturePath('serve.cjs')) {
  const port = await freePort();
  const zd = runApp(app, ['-w', '2', '--name', name, ...fastFlags, ...extra], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  return { zd, port, socket: join(testRuntimeDir, `${name}.sock`) };
}

/** Sends raw bytes to a control socket and collects reply lines until it closes or 2 s pass. */
function raw(socketPath: string, payload: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let data = '';
    const timer = setTimeout(() => socket.destroy(), 2000);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: string) => {
      data += chunk;
      if (!payload.includes('"inspect"') && data.endsWith('\n')) socket.end();
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data.split('\n').filter(Boolean));
    });
    socket.on('error', reject);
  });
}

test('status shows every worker, its machine state, pid, memory; the socket is 0600 in a 0700 directory', async () => {
  const { zd, socket } = await started('st');
  assert.equal(statSync(socket).mode & 0o777, 0o600);
  assert.equal(statSync(testRuntimeDir).mode & 0o777, 0o700);
  const json = zdCli('status', 'st', '--json');
  assert.equal(json.code, 0, json.stderr);
  const status = JSON.parse(json.stdout);
  assert.equal(status.phase, 'running');
  assert.equal(status.primary.pid, zd.primaryPid());
  assert.equal(status.keeper.pid, zd.pid, 'the keeper: the pid the world knows');
  assert.deepEqual(status.workers.map((w: { pid: number }) => w.pid).sort(), zd.workerPids().sort());
  for (const worker of status.workers) {
    assert.match(worker.state, /^listening\./);
    assert.ok(worker.rssBytes > 1_000_000, `rss ${worker.rssBytes}`);
    assert.equal(typeof worker.cpuPercent, 'number');
  }
  const table = zdCli('status');
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /ID\s+PID\s+GEN\s+SLOT\s+STATE/);
  assert.match(table.stdout, /listening\.fresh/);
  const list = zdCli('list');
  assert.match(list.stdout, /^st\s+\d+\s+running\s+2\/2/m);
});

test('reload --wait returns 0 once the new generation serves; SIGHUP through --pidfile works too', async () => {
  const pidfile = join(testRuntimeDir, 'zd-test.pid');
  const { zd, port } = await started('rl', ['--pidfile', pidfile]);
  assert.equal(readFileSync(pidfile, 'utf8').trim(), String(zd.pid));
  const reload = zdCli('reload', 'rl', '--wait');
  assert.equal(reload.code, 0, reload.stderr);
  assert.match(reload.stdout, /generation 2/);
  assert.equal((await getJson(port)).json.generation, '2');
  const mark = zd.mark();
  process.kill(Number(readFileSync(pidfile, 'utf8')), 'SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', (l) => l.generation === 3, 10_000, mark);
  zd.signal('SIGTERM');
  await zd.waitForExit(10_000);
  assert.equal(existsSync(pidfile), false, 'the pidfile is removed at exit');
});

test('reload --wait of a deploy that crashes on boot exits 1 with the abort reason', async () => {
  const app = copyFixture('serve.cjs');
  const { port } = await started('ab', [], app.file);
  app.write(readFixture('crash-on-boot.cjs'));
  const reload = zdCli('reload', 'ab', '--wait');
  assert.equal(reload.code, 1);
  const lines = reload.stderr.trim().split('\n');
  assert.equal(lines.length, 1, reload.stderr);
  assert.match(lines[0]!, /aborted: exited with code 1.*ZD_E_RELOAD_ABORTED/);
  assert.equal((await getJson(port)).json.generation, '1', 'the old generation keeps serving');
});

test('stop drains and exits 0, and removes the socket', async () => {
  const { zd, socket } = await started('sp');
  const stop = zdCli('stop', 'sp');
  assert.equal(stop.code, 0, stop.stderr);
  assert.deepEqual(await zd.waitForExit(10_000), { code: 0, signal: null });
  assert.equal(existsSync(socket), false);
  await assertAllDead(zd.workerPids(), 3000);
});

test('no instance: one clear line and exit 1; list says none', () => {
  const status = zdCli('status', 'nope');
  assert.equal(status.code, 1);
  assert.equal(status.stderr.trim().split('\n').length, 1);
  assert.match(status.stderr, /no zd instance named 'nope' is running.*ZD_E_NOT_RUNNING/);
  assert.match(zdCli('list').stdout, /no zd instance is running/);
});

test('a stale socket from a killed primary is cleaned up, by a client and by the next zd run', async () => {
  const first = await started('stale');
  process.kill(first.zd.pid, 'SIGKILL');
  await first.zd.waitForExit(5000);
  await assertAllDead(first.zd.workerPids(), 5000); // workers leave when their primary's channel closes
  assert.ok(existsSync(first.socket), 'SIGKILL leaves the socket behind');
  const status = zdCli('status', 'stale');
  assert.equal(status.code, 1);
  assert.match(status.stderr, /removed a stale control socket/);
  assert.equal(existsSync(first.socket), false);

  const second = await started('stale');
  process.kill(second.zd.pid, 'SIGKILL');
  await second.zd.waitForExit(5000);
  await assertAllDead(second.zd.workerPids(), 5000);
  const third = await started('stale');
  assert.ok(third.zd.logs('ZD_STALE_SOCKET').length === 1, third.zd.transcript());
});

test('a name already running is refused before anything is forked', async () => {
  await started('dup');
  const port = await freePort();
  const second = runApp(fixturePath('serve.cjs'), ['-w', '1', '--name', 'dup'], { env: { PORT: String(port) } });
  const exit = await second.waitForExit(10_000);
  assert.equal(exit.code, 1);
  assert.match(second.stderr, /already running with this name.*ZD_E_NAME_TAKEN/);
  assert.equal(second.workerPids().length, 0);
});

test('malformed, unknown and oversized requests get an error reply; the primary keeps running', async () => {
  const { zd, socket } = await started('proto');
  const replies = async (payload: string) => (await raw(socket, payload)).map((line) => JSON.parse(line));
  assert.equal((await replies('this is not json\n'))[0].error.code, 'ZD_E_BAD_JSON');
  assert.equal((await replies('[1,2]\n'))[0].error.code, 'ZD_E_BAD_REQUEST');
  assert.equal((await replies('{"cmd":"rm -rf /"}\n'))[0].error.code, 'ZD_E_UNKNOWN_COMMAND');
  assert.equal((await replies('{"cmd":"reload","wait":"yes"}\n'))[0].error.code, 'ZD_E_BAD_REQUEST');
  assert.equal((await replies('{"cmd":"status","path":"/etc/passwd"}\n'))[0].error.code, 'ZD_E_BAD_REQUEST');
  const huge = await replies(`{"cmd":"status","x":"${'a'.repeat(100_000)}`);
  assert.equal(huge[0].error.code, 'ZD_E_TOO_LARGE');
  const ok = await replies('{"cmd":"status"}\n');
  assert.equal(ok[0].ok, true);
  await sleep(100);
  assert.ok(zd.alive());
  assert.equal(zd.logs('ZD_RELOAD_STARTED').length, 0, 'no malformed request started anything');
});

test('inspect streams a snapshot, then every step with its machine transitions', async () => {
  const { zd, socket } = await started('insp');
  const lines: Array<Record<string, unknown>> = [];
  const client = connect(socket);
  client.setEncoding('utf8');
  let buffer = '';
  client.on('data', (chunk: string) => {
    buffer += chunk;
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    for (const part of parts) lines.push(JSON.parse(part));
  });
  client.write('{"cmd":"inspect"}\n');
  await waitUntil(() => lines.some((l) => l.type === 'snapshot'), 3000, 'a snapshot');
  zd.signal('SIGHUP');
  const transitions = () => lines.flatMap((l) => (l.type === 'step' ? (l.transitions as Array<{ machine: string; to: string }>) : []));
  // The rollout is done once its last replacement is ready and its predecessor told to drain; that
  // worker exits after it, when its connections are done: wait for both.
  await waitUntil(
    () => transitions().some((t) => t.machine === 'rollout' && t.to === 'done') && transitions().some((t) => t.machine === 'worker' && t.to === 'dead.exited'),
    10_000,
    'the rollout reaching done, and a worker exiting, in the stream',
  );
  client.destroy();
  assert.equal(lines[0]!.type, 'hello');
  const workerStates = transitions()
    .filter((t) => t.machine === 'worker')
    .map((t) => t.to);
  for (const state of ['booting.online', 'listening.fresh', 'draining', 'dead.exited']) {
    assert.ok(workerStates.includes(state), `the stream shows a worker entering ${state}`);
  }
});
