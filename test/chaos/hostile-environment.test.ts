// Issue #7: a hostile host. Another process holds the app's port or zd's socket path, the runtime
// directory is unusable or someone else's. zd refuses with one clear line and a documented exit
// code, touches nothing that is not its own, and leaves no process behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { getJson } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { assertAllDead, cleanup, runApp, SOCKET_MODES, trackPid } from '../helpers/zd.ts';
import { ERROR_LINE, isRoot, NOBODY, watchDescendants } from './harness.ts';

const dirs: string[] = [];
afterEach(cleanup);
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'zd-chaos-'));
  dirs.push(dir);
  return dir;
}

/** A runtime directory of our own (0700), so a test may put things in it. */
function runtimeDir(): string {
  const dir = join(scratch(), 'rt');
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

/**
 * `zd run serve.cjs` expected to refuse before forking: exit `code`, exactly one stderr line of
 * the form `zd: … [ZD_E_…]` matching `mentions`, no worker, nothing on the app port, nothing left.
 */
async function refuses(flags: string[], env: Record<string, string>, code: number, mentions: RegExp) {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '1', ...flags], { env: { PORT: String(port), ...env } });
  const watch = watchDescendants(zd);
  const exit = await zd.waitForExit(8000).finally(() => watch.stop());
  assert.deepEqual(exit, { code, signal: null }, zd.transcript());
  const lines = zd.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${zd.stderr}`);
  assert.match(lines[0]!, ERROR_LINE);
  assert.match(lines[0]!, mentions);
  assert.deepEqual(watch.forks(), [], 'nothing was forked');
  await assertAllDead(watch.seen, 1000);
  await assert.rejects(getJson(port, '/', 300), 'nothing listens on the app port');
  return zd;
}

/** A process of someone else's (not zd): runs `script` and prints `up` once ready. */
async function stranger(script: string, ...args: string[]) {
  const child = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  trackPid(child.pid);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => String(d).includes('up') && resolve());
    child.on('exit', (c) => reject(new Error(`stranger exited ${c}`)));
  });
  return child;
}

for (const mode of SOCKET_MODES) {
  test(`the app's port held by another process (--sched ${mode.sched}): exit 1, ZD_BOOT_FAILED with EADDRINUSE, nothing left, the other process untouched`, { skip: mode.skip }, async () => {
    const port = await freePort();
    const squatter = await stranger(
      "require('node:net').createServer((s) => s.end('squatter\\n')).listen(Number(process.argv[1]), () => console.log('up'))",
      String(port),
    );
    try {
      const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...mode.flags, '--ready-timeout', '2s'], { env: { PORT: String(port) }, ...mode.options });
      const watch = watchDescendants(zd);
      const exit = await zd.waitForExit(8000).finally(() => watch.stop());
      assert.equal(exit.code, 1, zd.transcript());
      const failed = await zd.waitForLog('ZD_BOOT_FAILED', undefined, 100);
      assert.match(String(failed.stderr), /EADDRINUSE/);
      assert.match(zd.stderr, /EADDRINUSE/, "the worker's error reaches stderr");
      assert.equal(zd.logs('ZD_WORKER_READY').length, 0);
      await assertAllDead([zd.pid, ...zd.workerPids(), ...watch.seen], 2000);
      // The squatter still owns its port and still answers.
      const greeting = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1');
        let data = '';
        socket.on('data', (d) => (data += d));
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      assert.equal(greeting, 'squatter\n');
      assert.equal(squatter.exitCode, null);
    } finally {
      squatter.kill('SIGKILL');
    }
  });
}

test('the control socket path taken by a regular file: exit 1, one line (ZD_E_CONTROL_SOCKET), the file is not deleted', async () => {
  const dir = runtimeDir();
  const path = join(dir, 'taken.sock');
  writeFileSync(path, 'not yours\n');
  await refuses(['--name', 'taken'], { ZD_RUNTIME_DIR: dir }, 1, /taken\.sock exists and is not a socket.*ZD_E_CONTROL_SOCKET/);
  assert.equal(readFileSync(path, 'utf8'), 'not yours\n');
});

test('the control socket path is a symlink to a file elsewhere: refused, neither the link nor its target touched', async () => {
  const dir = runtimeDir();
  const target = join(scratch(), 'precious');
  writeFileSync(target, 'precious\n');
  const path = join(dir, 'linked.sock');
  symlinkSync(target, path);
  await refuses(['--name', 'linked'], { ZD_RUNTIME_DIR: dir }, 1, /ZD_E_CONTROL_SOCKET/);
  assert.equal(readlinkSync(path), target);
  assert.equal(readFileSync(target, 'utf8'), 'precious\n');
});

test('the control socket path held by a live socket of another program: exit 1 (ZD_E_NAME_TAKEN), its socket left alone', async () => {
  const dir = runtimeDir();
  const path = join(dir, 'busy.sock');
  const other = await stranger("require('node:net').createServer((s) => s.end()).listen(process.argv[1], () => console.log('up'))", path);
  try {
    await refuses(['--name', 'busy'], { ZD_RUNTIME_DIR: dir }, 1, /already running with this name.*ZD_E_NAME_TAKEN/);
    assert.ok(lstatSync(path).isSocket());
    assert.equal(other.exitCode, null);
  } finally {
    other.kill('SIGKILL');
  }
});

test('a stale socket left by a SIGKILLed process is removed (ZD_STALE_SOCKET) and zd starts', async () => {
  const dir = runtimeDir();
  const path = join(dir, 'stale.sock');
  const dead = await stranger("require('node:net').createServer().listen(process.argv[1], () => console.log('up'))", path);
  dead.kill('SIGKILL');
  await new Promise((resolve) => dead.once('exit', resolve));
  assert.ok(lstatSync(path).isSocket(), 'SIGKILL left the socket file');
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '1', '--name', 'stale'], { env: { PORT: String(port), ZD_RUNTIME_DIR: dir } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const stale = await zd.waitForLog('ZD_STALE_SOCKET', undefined, 100);
  assert.equal(stale.path, path);
  await new Promise<void>((resolve, reject) => connect(path).on('connect', resolve).on('error', reject));
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(8000)).code, 0);
  assert.equal(existsSync(path), false);
});

test('ZD_RUNTIME_DIR under a regular file (mkdir fails, as on a read-only path): exit 1, one line (ZD_E_RUNTIME_DIR)', async () => {
  const file = join(scratch(), 'a-file');
  writeFileSync(file, '');
  await refuses([], { ZD_RUNTIME_DIR: join(file, 'zd') }, 1, /cannot create the runtime directory .*ENOTDIR.*ZD_E_RUNTIME_DIR/);
});

test('ZD_RUNTIME_DIR owned by another user: exit 1, one line (ZD_E_RUNTIME_DIR), nothing created in it', { skip: !isRoot && 'needs root to chown' }, async () => {
  const dir = join(scratch(), 'theirs');
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, NOBODY, NOBODY);
  await refuses([], { ZD_RUNTIME_DIR: dir }, 1, /belongs to another user.*ZD_E_RUNTIME_DIR/);
  assert.deepEqual(readdirNames(dir), []);
  assert.equal(lstatSync(dir).uid, NOBODY);
});

test('ZD_RUNTIME_DIR is a symlink (to a directory of ours): refused with one line, not followed', async () => {
  const real = runtimeDir();
  const link = join(scratch(), 'link');
  symlinkSync(real, link);
  await refuses([], { ZD_RUNTIME_DIR: link }, 1, /is not a directory.*ZD_E_RUNTIME_DIR/);
  assert.deepEqual(readdirNames(real), []);
});

test('a runtime directory path too long for a unix socket: exit 1, one line saying so', async () => {
  const dir = join(scratch(), 'd'.repeat(100));
  await refuses([], { ZD_RUNTIME_DIR: dir }, 1, /control socket path too long.*ZD_E_RUNTIME_DIR/);
});

test('--health-port already taken: exit 1, one line (ZD_E_PORT), nothing forked, no socket left behind', async () => {
  const dir = runtimeDir();
  const taken = createServer();
  const port = await new Promise<number>((resolve) => taken.listen(0, '127.0.0.1', () => resolve((taken.address() as { port: number }).port)));
  try {
    await refuses(['--name', 'hp', '--health-port', String(port)], { ZD_RUNTIME_DIR: dir }, 1, new RegExp(`cannot serve health on 127\\.0\\.0\\.1:${port}: EADDRINUSE.*ZD_E_PORT`));
    assert.deepEqual(readdirNames(dir), [], 'the control socket was removed');
  } finally {
    taken.close();
  }
});

test('--metrics-port equal to --health-port: exit 1, one line (ZD_E_PORT)', async () => {
  const port = await freePort();
  await refuses(['--health-port', String(port), '--metrics-port', String(port)], {}, 1, /cannot serve metrics .*EADDRINUSE.*ZD_E_PORT/);
});

test('--health-host an address this machine does not have: exit 1, one line (ZD_E_PORT)', async () => {
  const port = await freePort();
  await refuses(['--health-port', String(port), '--health-host', '198.51.100.7'], {}, 1, /cannot serve health on 198\.51\.100\.7.*EADDRNOTAVAIL.*ZD_E_PORT/);
});

test(
  '--pidfile in a directory that does not exist: exit 1 with one line and a ZD_E_ code, no control socket left behind',
  
  async () => {
    const dir = runtimeDir();
    await refuses(['--name', 'pf', '--pidfile', join(scratch(), 'no', 'such', 'dir', 'zd.pid')], { ZD_RUNTIME_DIR: dir }, 1, /zd\.pid/);
    assert.deepEqual(readdirNames(dir), [], 'no control socket left behind');
  },
);

function readdirNames(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
