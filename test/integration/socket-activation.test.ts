// Issue 13, part 3: systemd socket activation. test/fixtures/fake-systemd.cjs plays systemd: it
// binds the socket itself, never accepts on it, and runs zd with it as fd 3 (LISTEN_FDS=1,
// LISTEN_FDNAMES, LISTEN_PID), holding it across a stop and a start of zd as systemd does across
// `systemctl restart`. Whether zd bound anything of its own is read from the kernel
// (/proc/net/tcp*: the listening sockets on the port, by inode).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { distinctPids, getJson, poller } from '../helpers/http.ts';
import { hammer, summary } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { listeningInodes } from '../helpers/proc-net.ts';
import { zdProcess } from '../helpers/fake-systemd.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { assertAllDead, cleanup, runApp, startZd, zdBin, type Zd } from '../helpers/zd.ts';

afterEach(cleanup);

const FAKE_SYSTEMD = fixturePath('fake-systemd.cjs');
const flags = ['-w', '2', '--ready-timeout', '10s', '--drain-timeout', '5s', '--kill-timeout', '2s'];

interface Given {
  address: string;
  fd: number;
  inode: string;
}

/** zd run <app> under the fake systemd; `zd.pid` is the fake's (zd and its workers are in its group). */
function activated(app: string, env: Record<string, string>, zdFlags = flags): Zd {
  return startZd([zdBin, 'run', app, ...zdFlags], { bin: FAKE_SYSTEMD, env });
}

async function given(zd: Zd): Promise<Given> {
  const line = await waitUntil(() => zd.lines.find((l) => l.startsWith('fake-systemd socket ')), 10_000, () => `the fake systemd's socket\n${zd.transcript()}`);
  const [, address, fd, inode] = /^fake-systemd socket (\S+) fd (\d+) inode (\d+)$/.exec(line)!;
  return { address: address!, fd: Number(fd), inode: inode! };
}

/** The socket inodes a process holds open. */
function socketInodes(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.push(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

function environ(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
}


/** The log position after the first zd's last line (its ZD_STOPPED), once the fake saw it exit. */
function afterLastStop(zd: Zd, since: number): number {
  let at = since;
  zd.entries.forEach((log, i) => {
    if (i >= since && log.code === 'ZD_STOPPED') at = i + 1;
  });
  return at;
}

function roundExits(zd: Zd): string[] {
  return zd.lines.filter((l) => l.startsWith('fake-systemd round '));
}

for (const pidMode of ['exact', 'absent'] as const) {
  test(`LISTEN_PID ${pidMode === 'exact' ? "= zd's pid" : 'absent'}: the app's listen(PORT) is served through the inherited socket, zd binds nothing, SIGTERM exits 0`, async () => {
    const port = await freePort();
    const zd = activated(fixturePath('serve.cjs'), { FAKE_SD_PORT: String(port), FAKE_SD_PID: pidMode, PORT: String(port) });
    const socket = await given(zd);
    assert.equal(socket.address, `127.0.0.1:${port}`);
    await zd.waitForLog('ZD_READY', undefined, 15_000);
    const workers = await distinctPids(port, 2, 5000);
    const main = await zdProcess(zd);
    // One listening socket on the port in the whole machine: the one the fake systemd made, which
    // zd holds. A bind of zd's own would be a second inode (or an EADDRINUSE).
    assert.deepEqual(listeningInodes(port), [socket.inode]);
    assert.ok(socketInodes(main).includes(socket.inode), 'zd holds the socket it was given');
    for (const pid of workers) {
      assert.ok(zd.workerPids().includes(pid), `served by a zd worker (${pid})`);
      // Removed from zd's environment before the fork: a worker never takes them for its own.
      assert.deepEqual(environ(pid).filter((v) => v.startsWith('LISTEN_')), [], `worker ${pid}'s environment`);
    }
    const tree = zd.treePids();
    process.kill(main, 'SIGTERM');
    assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
    assert.deepEqual(roundExits(zd), ['fake-systemd round 1 exit 0 null']);
    await assertAllDead(tree, 2000);
  });
}

test("LISTEN_PID of another process: the sockets are not zd's; it binds the app's port itself and leaves the given one alone", async () => {
  const given_ = await freePort();
  const port = await freePort();
  const zd = activated(fixturePath('serve.cjs'), { FAKE_SD_PORT: String(given_), FAKE_SD_PID: 'wrong', PORT: String(port) });
  const socket = await given(zd);
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  await distinctPids(port, 2, 5000);
  const main = await zdProcess(zd);
  const own = listeningInodes(port);
  assert.equal(own.length, 1, `one socket listening on the app's port: ${own.join(', ')}`);
  assert.notEqual(own[0], socket.inode);
  const zdTree = [main, ...zd.treePids()];
  assert.ok(zdTree.some((pid) => socketInodes(pid).includes(own[0]!)), "the app's port is a socket zd bound");
  assert.deepEqual(listeningInodes(given_), [socket.inode], 'the given socket is still the only one on its port');
  // Nobody accepts on the given port: the kernel queues the connection, nothing answers.
  await assert.rejects(getJson(given_, '/', 1000), (error: Error & { code?: string }) => error.code === 'ETIMEOUT');
  for (const pid of zd.workerPids()) assert.deepEqual(environ(pid).filter((v) => v.startsWith('LISTEN_')), []);
  const tree = zd.treePids();
  process.kill(main, 'SIGTERM');
  assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
  await assertAllDead(tree, 2000);
});

test('a stop and a start of zd under load, the socket held across them (systemctl restart with a .socket unit): no connection refused', async () => {
  const port = await freePort();
  const zd = activated(fixturePath('serve.cjs'), { FAKE_SD_PORT: String(port), FAKE_SD_PID: 'exact', FAKE_SD_ROUNDS: '2', PORT: String(port) });
  await given(zd);
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  await distinctPids(port, 2, 5000);
  const first = await zdProcess(zd);
  const firstWorkers = zd.workerPids();

  const load = hammer(port, { keepAliveConnections: 8, freshLoops: 4, maxMs: 40_000, maxRequests: 200_000 });
  const fresh = poller(port, { intervalMs: 5, maxMs: 40_000, maxRequests: 20_000 });
  await sleep(1000);
  const mark = zd.mark();
  process.kill(first, 'SIGTERM');
  // The second zd: started by the fake systemd as soon as the first exited.
  await waitUntil(() => roundExits(zd).length === 1, 20_000, () => `the first zd's exit\n${zd.transcript()}`);
  const second = await zdProcess(zd, first);
  await zd.waitForLog('ZD_READY', undefined, 20_000, afterLastStop(zd, mark));
  const secondWorkers = zd.workerPids().filter((pid) => !firstWorkers.includes(pid));
  await fresh.until((r) => r.successes.some((s) => secondWorkers.includes(s.pid)), 10_000, 'an answer from the second zd');
  await sleep(1000);
  const report = await load.stop();
  const polled = await fresh.stop();

  assert.deepEqual(roundExits(zd), ['fake-systemd round 1 exit 0 null'], 'the first zd exited 0 on SIGTERM');
  const failures = [...report.failures.map((f) => f.error), ...polled.failures.map((f) => `${f.code}: ${f.message}`)];
  assert.deepEqual(failures.filter((f) => f.includes('ECONNREFUSED')), [], `no connection refused; ${summary(report)}`);
  assert.deepEqual(failures, [], `no request failed at all; ${summary(report)}`);
  assert.ok(report.ok > 500, `the load was real: ${summary(report)}`);
  assert.ok(polled.successes.some((s) => firstWorkers.includes(s.pid)), 'answered by the first zd');
  assert.ok(polled.successes.some((s) => secondWorkers.includes(s.pid)), 'and by the second');

  const tree = zd.treePids();
  process.kill(second, 'SIGTERM');
  assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
  assert.deepEqual(roundExits(zd), ['fake-systemd round 1 exit 0 null', 'fake-systemd round 2 exit 0 null']);
  await assertAllDead(tree, 2000);
});

for (const [what, env] of [
  ['LISTEN_FDS=abc (not a count)', { LISTEN_FDS: 'abc' }],
  ['LISTEN_FDS=-1', { LISTEN_FDS: '-1' }],
  ['LISTEN_FDS=1 with no socket on fd 3', { LISTEN_FDS: '1', LISTEN_FDNAMES: 'web' }],
] as const) {
  test(`${what}: one line with ZD_E_LISTEN_FDS, exit 2, nothing forked, nothing left`, async () => {
    const port = await freePort();
    const zd = runApp(fixturePath('serve.cjs'), flags, { env: { ...env, PORT: String(port) } });
    const exit = await zd.waitForExit(15_000);
    assert.deepEqual(exit, { code: 2, signal: null }, zd.transcript());
    const lines = zd.stderr.trim().split('\n');
    assert.equal(lines.length, 1, zd.stderr);
    assert.match(lines[0]!, /^zd: .*\[ZD_E_LISTEN_FDS\]$/);
    assert.deepEqual(zd.workerPids(), []);
    await assertAllDead(zd.treePids(), 2000);
  });
}

test("LISTEN_FDS=abc: the message names the value as given", async () => {
  const zd = runApp(fixturePath('serve.cjs'), flags, { env: { LISTEN_FDS: 'abc', PORT: String(await freePort()) } });
  await zd.waitForExit(15_000);
  // As the user (or a unit file) set it, not as a number would print it (NaN).
  assert.match(zd.stderr, /LISTEN_FDS=abc\b/, zd.stderr);
});

test("a Unix socket (FileDescriptorName = its path): the app's listen of that path is served through it, zd does not unlink it, and the next zd takes it", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zd-sd-'));
  const path = join(dir, 'web.sock');
  try {
    const zd = activated(fixturePath('listen-modes.cjs'), {
      FAKE_SD_SOCKET: `unix:${path}`,
      FAKE_SD_NAME: path,
      FAKE_SD_PID: 'exact',
      FAKE_SD_ROUNDS: '2',
      LISTEN_ON: JSON.stringify([{ path }]),
    });
    const socket = await given(zd);
    assert.equal(socket.address, path);
    await zd.waitForLog('ZD_READY', undefined, 15_000);
    const seen = new Set<number>();
    for (let i = 0; i < 20 && seen.size < 2; i++) seen.add((await overPath(path)).pid);
    assert.equal(seen.size, 2, 'both workers answer over the path');
    const first = await zdProcess(zd);
    assert.ok(socketInodes(first).includes(socket.inode), 'zd holds the socket it was given');
    const mark = zd.mark();
    process.kill(first, 'SIGTERM');
    await waitUntil(() => roundExits(zd).length === 1, 20_000, () => `the first zd's exit\n${zd.transcript()}`);
    // The path is systemd's: the first zd neither bound nor removed it.
    assert.ok(statSync(path).isSocket(), 'the path is still there after the first zd exited');
    const second = await zdProcess(zd, first);
    await zd.waitForLog('ZD_READY', undefined, 20_000, afterLastStop(zd, mark));
    assert.ok(socketInodes(second).includes(socket.inode), 'the second zd holds it too');
    const reply = await overPath(path);
    assert.ok(!seen.has(reply.pid), 'answered by the second zd');
    const tree = zd.treePids();
    process.kill(second, 'SIGTERM');
    assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
    assert.deepEqual(roundExits(zd), ['fake-systemd round 1 exit 0 null', 'fake-systemd round 2 exit 0 null']);
    await assertAllDead(tree, 2000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function overPath(socketPath: string): Promise<{ pid: number }> {
  return new Promise((resolve, reject) => {
    const req = get({ socketPath, path: '/', agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(JSON.parse(body)));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
