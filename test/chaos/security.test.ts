// Issue #7: who can reach zd. The control socket is 0600 in a 0700 directory owned by the user,
// and another user is refused by the kernel; the health and metrics servers listen on 127.0.0.1
// unless told otherwise; and no control request makes zd read a file or run code the client names.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { freePort, otherAddress, tcpOutcome } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { cleanup, fastFlags, runApp, testRuntimeDir } from '../helpers/zd.ts';
import { CONNECT_SCRIPT, errorCode, isRoot, rawRequest, runAsNobody, watchDescendants } from './harness.ts';

const dirs: string[] = [];
afterEach(cleanup);
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function started(name: string, flags: string[] = [], env: Record<string, string> = {}) {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '1', '--name', name, ...fastFlags, ...flags], { env: { PORT: String(port), ...env } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  return { zd, port };
}

const uid = process.getuid?.() ?? -1;

test("the control socket is 0600 and the user's, in a 0700 directory of the user's; a looser directory is tightened to 0700", async () => {
  const { zd } = await started('sec-perms');
  const socket = statSync(join(testRuntimeDir, 'sec-perms.sock'));
  assert.ok(socket.isSocket());
  assert.equal(socket.mode & 0o777, 0o600);
  assert.equal(socket.uid, uid);
  const dir = statSync(testRuntimeDir);
  assert.equal(dir.mode & 0o777, 0o700);
  assert.equal(dir.uid, uid);
  zd.signal('SIGTERM');
  await zd.waitForExit(8000);

  const loose = join(mkdtempSync(join(tmpdir(), 'zd-chaos-sec-')), 'rt');
  dirs.push(loose);
  mkdirSync(loose);
  chmodSync(loose, 0o777);
  const second = await started('sec-loose', [], { ZD_RUNTIME_DIR: loose });
  assert.equal(statSync(loose).mode & 0o777, 0o700, 'zd took the world-writable directory back to 0700');
  assert.equal(statSync(join(loose, 'sec-loose.sock')).mode & 0o777, 0o600);
  second.zd.signal('SIGTERM');
  await second.zd.waitForExit(8000);
});

test('another user cannot connect to the control socket: EACCES from the directory, and from the socket itself if the directory is opened', { skip: !isRoot && 'needs root to act as another user' }, async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'zd-chaos-sec-')), 'rt');
  dirs.push(dir);
  const { zd } = await started('sec-other', [], { ZD_RUNTIME_DIR: dir });
  const path = join(dir, 'sec-other.sock');
  chmodSync(join(dir, '..'), 0o755); // only the runtime directory stands in the way
  assert.equal((await runAsNobody(CONNECT_SCRIPT, [path])).stdout.trim(), 'EACCES', 'the 0700 directory stops uid 65534');
  // Defence in depth: with the directory opened to everyone, the 0600 socket still refuses.
  chmodSync(dir, 0o711);
  assert.equal((await runAsNobody(CONNECT_SCRIPT, [path])).stdout.trim(), 'EACCES', 'the 0600 socket stops uid 65534');
  // The control: it was the socket's mode that refused, nothing else.
  chmodSync(path, 0o666);
  assert.equal((await runAsNobody(CONNECT_SCRIPT, [path])).stdout.trim(), 'connected');
  chmodSync(path, 0o600);
  assert.ok(zd.alive());
  assert.equal(zd.logs('ZD_SHUTDOWN').length, 0);
});



function httpStatus(host: string, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test('health and metrics listen on 127.0.0.1 by default: refused on another local address; --health-host/--metrics-host 0.0.0.0 open them', async (t) => {
  const other = otherAddress();
  if (other === null) {
    t.skip('no non-loopback IPv4 address on this machine');
    return;
  }
  const health = await freePort();
  const metrics = await freePort();
  const first = await started('sec-ops', ['--health-port', String(health), '--metrics-port', String(metrics)]);
  assert.equal(await httpStatus('127.0.0.1', health, '/livez'), 200);
  assert.equal(await httpStatus('127.0.0.1', metrics, '/metrics'), 200);
  assert.equal(await tcpOutcome(other, health), 'ECONNREFUSED', `health on ${other}`);
  assert.equal(await tcpOutcome(other, metrics), 'ECONNREFUSED', `metrics on ${other}`);
  first.zd.signal('SIGTERM');
  await first.zd.waitForExit(8000);

  // The control: the refusal above is the bind address, not a firewall.
  const second = await started('sec-ops2', ['--health-port', String(health), '--metrics-port', String(metrics), '--health-host', '0.0.0.0', '--metrics-host', '0.0.0.0']);
  assert.equal(await httpStatus(other, health, '/livez'), 200);
  assert.equal(await httpStatus(other, metrics, '/metrics'), 200);
  second.zd.signal('SIGTERM');
  await second.zd.waitForExit(8000);
});

test('no control request reads a file or runs code the client names: each is refused, no process is started, nothing changes', async () => {
  const { zd } = await started('sec-cmds');
  const socket = join(testRuntimeDir, 'sec-cmds.sock');
  const watch = watchDescendants(zd);
  const before = new Set(watch.seen);
  const hostile: Array<[string, string]> = [
    ['{"cmd":"status","path":"/etc/passwd"}', 'ZD_E_BAD_REQUEST'],
    ['{"cmd":"status","file":"/etc/shadow"}', 'ZD_E_BAD_REQUEST'],
    ['{"cmd":"reload","app":"/tmp/evil.js"}', 'ZD_E_BAD_REQUEST'],
    ['{"cmd":"reload","wait":true,"args":["--inspect=0.0.0.0:9229"]}', 'ZD_E_BAD_REQUEST'],
    ['{"cmd":"stop","signal":"SIGKILL"}', 'ZD_E_BAD_REQUEST'],
    ['{"cmd":"exec","argv":["sh","-c","touch /tmp/zd-chaos-pwned"]}', 'ZD_E_UNKNOWN_COMMAND'],
    ['{"cmd":"eval","code":"process.exit(7)"}', 'ZD_E_UNKNOWN_COMMAND'],
    ['{"cmd":"require","module":"child_process"}', 'ZD_E_UNKNOWN_COMMAND'],
    ['{"cmd":"../../etc/passwd"}', 'ZD_E_UNKNOWN_COMMAND'],
    ['{"cmd":"status","__proto__":{"cmd":"stop"}}', 'ZD_E_BAD_REQUEST'],
  ];
  for (const [payload, code] of hostile) {
    const { replies } = await rawRequest(socket, `${payload}\n`, { replies: 1 });
    assert.equal(errorCode(replies[0]), code, `${payload} → ${JSON.stringify(replies[0])}`);
    assert.doesNotMatch(JSON.stringify(replies), /root:|pwned/, 'no file content in the reply');
  }
  await sleep(200);
  watch.stop();
  assert.deepEqual([...watch.seen].filter((pid) => !before.has(pid)), [], 'no process was started');
  assert.ok(zd.alive());
  for (const code of ['ZD_RELOAD_STARTED', 'ZD_RELOAD_QUEUED', 'ZD_SHUTDOWN']) assert.equal(zd.logs(code).length, 0, code);
  assert.throws(() => statSync('/tmp/zd-chaos-pwned'), { code: 'ENOENT' });
});
