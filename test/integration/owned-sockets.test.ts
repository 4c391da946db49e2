// Issue 13, part 1: zd's primary owns the listening sockets. The listens besides a plain
// listen(PORT) (test/fixtures/listen-modes.cjs runs whichever the test asks for): port 0, a Unix
// socket path, two servers on two ports, a TLS server; and the two zd leaves to node:cluster and
// the worker, `exclusive: true` and listen({ fd }). Who holds a listening socket is read from the
// kernel (/proc/net/tcp*, /proc/<pid>/fd), not from zd's logs.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { freePort } from '../helpers/ports.ts';
import { listeningInodes } from '../helpers/proc-net.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';
import { assertAllDead, cleanup, runApp, trackPid, type Zd } from '../helpers/zd.ts';

afterEach(cleanup);

const APP = fixturePath('listen-modes.cjs');
const TLS_KEY = fixturePath('tls/key.pem');
const TLS_CERT = fixturePath('tls/cert.pem');
const flags = ['--ready-timeout', '10s', '--drain-timeout', '3s', '--kill-timeout', '1s'];

interface Reply {
  pid: number;
  generation: string | null;
  server: number;
  address: { port: number; address: string } | string;
  encrypted: boolean;
}

function run(listenOn: object[], workers: number, env: Record<string, string> = {}, extra: string[] = []): Zd {
  return runApp(APP, ['-w', String(workers), ...flags, ...extra], { env: { LISTEN_ON: JSON.stringify(listenOn), ...env } });
}

/** One request, a fresh connection: over TCP to 127.0.0.1:port, or over a Unix socket path. */
function ask(where: number | string, tls = false): Promise<Reply> {
  const options: RequestOptions & { rejectUnauthorized?: boolean; ca?: Buffer } = {
    ...(typeof where === 'number' ? { host: '127.0.0.1', port: where } : { socketPath: where }),
    path: '/',
    agent: false,
    timeout: 3000,
    ...(tls ? { ca: readFileSync(TLS_CERT), servername: 'localhost' } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (tls ? httpsRequest : get)(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const reply = JSON.parse(body) as Reply;
        trackPid(reply.pid);
        resolve(reply);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (tls) req.end();
  });
}

/** Asks until `count` workers have answered (bounded); returns every reply. */
async function fromWorkers(where: number | string, count: number, tls = false): Promise<Reply[]> {
  const replies: Reply[] = [];
  const pids = new Set<number>();
  for (let i = 0; i < 40 && pids.size < count; i++) {
    const reply = await ask(where, tls);
    replies.push(reply);
    pids.add(reply.pid);
  }
  assert.equal(pids.size, count, `answered by ${[...pids].join(', ')}`);
  return replies;
}

/** The ports each worker's server `index` said it listens on (its stdout line), by pid. */
function listening(zd: Zd, index = 0): Map<number, unknown> {
  const out = new Map<number, unknown>();
  for (const m of zd.stdout.matchAll(/^listen-modes (\d+) (\d+) listening (.*)$/gm)) {
    if (Number(m[2]) === index) out.set(Number(m[1]), JSON.parse(m[3]!));
  }
  return out;
}

function listenErrors(zd: Zd): string[] {
  return zd.lines.filter((line) => /^listen-modes \d+ \d+ error /.test(line));
}

/** Which of these processes hold a socket with this inode. */
function holders(pids: number[], inode: string): number[] {
  return pids.filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

async function stop(zd: Zd): Promise<void> {
  const tree = zd.treePids();
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(15_000), { code: 0, signal: null }, zd.transcript());
  await assertAllDead(tree, 2000);
}

test("port 0: every worker's first listen(0) shares one port, and the next generation gets the same port after SIGHUP", async () => {
  const zd = run([{ port: 0, host: '127.0.0.1' }], 2);
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  const before = await waitUntil(() => listening(zd).size === 2 && listening(zd), 5000, () => `two listening lines\n${zd.stdout}`);
  const ports = new Set([...before.values()].map((a) => (a as { port: number }).port));
  assert.equal(ports.size, 1, `one port for both workers: ${[...ports].join(', ')}`);
  const [port] = ports as Set<number>;
  assert.ok(port! > 0);
  const replies = await fromWorkers(port!, 2);
  assert.ok(replies.every((r) => typeof r.address === 'object' && r.address.port === port), "the app's address() is the shared port");
  assert.equal(listeningInodes(port!).length, 1, 'one socket on it');

  const mark = zd.mark();
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 20_000, mark);
  const after = await waitUntil(() => listening(zd).size === 4 && listening(zd), 5000, () => `four listening lines\n${zd.stdout}`);
  for (const [pid, address] of after) assert.equal((address as { port: number }).port, port, `worker ${pid} of either generation`);
  const replies2 = await fromWorkers(port!, 2);
  assert.ok(replies2.every((r) => r.generation === '2'), 'generation 2 answers on the same port');
  await stop(zd);
});

test('two servers on two ports: each port is served by every worker, by the right server', async () => {
  const [a, b] = [await freePort(), await freePort()];
  const zd = run([{ port: a }, { port: b }], 2);
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  const onA = await fromWorkers(a, 2);
  const onB = await fromWorkers(b, 2);
  assert.ok(onA.every((r) => r.server === 0) && onB.every((r) => r.server === 1));
  const zdOwn = zd.treePids().filter((pid) => !zd.workerPids().includes(pid));
  for (const port of [a, b]) {
    const inodes = listeningInodes(port);
    assert.equal(inodes.length, 1, `one socket on ${port}`);
    assert.deepEqual(holders(zd.workerPids(), inodes[0]!), [], `no worker holds ${port}'s listening socket: zd hands connections over`);
    assert.ok(holders(zdOwn, inodes[0]!).length >= 1, 'zd holds it');
  }
  await stop(zd);
});

test('a Unix socket path: the workers share it, requests over it work across a reload; the path zd created is gone after it stops', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zd-owned-'));
  const path = join(dir, 'app.sock');
  try {
    const zd = run([{ path }], 2);
    await zd.waitForLog('ZD_READY', undefined, 15_000);
    assert.ok(statSync(path).isSocket());
    const replies = await fromWorkers(path, 2);
    assert.ok(replies.every((r) => r.address === path), "the app's address() is its path");
    const mark = zd.mark();
    zd.signal('SIGHUP');
    await zd.waitForLog('ZD_RELOAD_DONE', undefined, 20_000, mark);
    assert.ok((await fromWorkers(path, 2)).every((r) => r.generation === '2'), 'the same path, the next generation');
    await stop(zd);
    // Observed: zd's primary bound it, and closing it removes it (libuv unlinks a path it bound).
    assert.equal(existsSync(path), false, 'the socket file zd created is removed when zd stops');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Unix socket path where a file already is: zd removes nothing it did not create; the listen fails EADDRINUSE in the app', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zd-owned-'));
  const path = join(dir, 'app.sock');
  writeFileSync(path, 'not a socket\n');
  try {
    const zd = run([{ path }], 1, {}, ['--ready-timeout', '2s']);
    await waitUntil(() => listenErrors(zd).length > 0, 15_000, () => `the app's listen error\n${zd.transcript()}`);
    assert.match(listenErrors(zd)[0]!, / error EADDRINUSE$/);
    assert.equal(readFileSync(path, 'utf8'), 'not a socket\n', 'the file is untouched');
    const tree = zd.treePids();
    zd.signal('SIGTERM');
    await zd.waitForExit(15_000);
    await assertAllDead(tree, 2000);
    assert.equal(readFileSync(path, 'utf8'), 'not a socket\n', 'and still there after zd stopped');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("TLS: an https server works through zd's sockets, on every worker, and a session from one worker resumes on another (shared ticket keys)", async () => {
  const port = await freePort();
  const zd = run([{ port }], 2, { TLS_KEY, TLS_CERT });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  const replies = await fromWorkers(port, 2, true);
  assert.ok(replies.every((r) => r.encrypted));

  // A TLS session ticket is encrypted with the server's ticket keys: it resumes on another worker
  // only if every worker has the same keys (node:cluster shares the first worker's; so does zd).
  const first = await handshake(port);
  assert.ok(first.session, 'a session ticket');
  const resumed = new Set<number>();
  for (let i = 0; i < 20 && resumed.size < 2; i++) {
    const again = await handshake(port, first.session);
    assert.equal(again.reused, true, `connection ${i} resumed the session`);
    resumed.add(again.pid);
  }
  assert.equal(resumed.size, 2, `resumed on both workers: ${[...resumed].join(', ')}`);
  await stop(zd);
});

/** A TLS connection (resuming `session` if given) with one HTTP/1.1 request: who answered, and whether it resumed. */
function handshake(port: number, session?: Buffer): Promise<{ pid: number; reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    let reused = false;
    const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(TLS_CERT), session, maxVersion: 'TLSv1.2' }, () => {
      reused = socket.isSessionReused();
      socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    socket.on('session', (s: Buffer) => (ticket = s));
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.setTimeout(3000, () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
    socket.on('close', () => {
      try {
        // The body is chunked: its one chunk is the JSON object.
        const reply = JSON.parse(/\{.*\}/s.exec(data)?.[0] ?? '') as Reply;
        trackPid(reply.pid);
        resolve({ pid: reply.pid, reused, session: ticket });
      } catch {
        reject(new Error(`no JSON answer: ${data.slice(0, 200)}`));
      }
    });
  });
}

test('exclusive: true is left to the worker: it binds the port itself (zd holds no socket for it, nor sees it listen); a second worker gets EADDRINUSE', async () => {
  const port = await freePort();
  // net binds an exclusive listen in the worker and tells no primary (node:cluster's 'listening'
  // never comes either): readiness has to be the app's own message.
  const zd = run([{ port, host: '127.0.0.1', exclusive: true }], 1, { SEND_READY: '1' }, ['--ready', 'message']);
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  const [worker] = zd.workerPids();
  assert.equal((await ask(port)).pid, worker);
  const inodes = listeningInodes(port);
  assert.equal(inodes.length, 1);
  assert.deepEqual(holders(zd.treePids(), inodes[0]!), [worker], "the worker's own socket, held by it alone");
  await stop(zd);

  const two = run([{ port, host: '127.0.0.1', exclusive: true }], 2, { SEND_READY: '1' }, ['--ready', 'message', '--ready-timeout', '3s']);
  await waitUntil(() => listenErrors(two).length > 0, 15_000, () => `a listen error\n${two.transcript()}`);
  assert.match(listenErrors(two)[0]!, / error EADDRINUSE$/);
  const tree = two.treePids();
  two.signal('SIGTERM');
  await two.waitForExit(15_000);
  await assertAllDead(tree, 2000);
});

test("listen({ fd }) is left to node:cluster: the number names a descriptor of zd's primary, not the worker's (as Node documents for cluster)", async () => {
  // 99 is open in no process here: cluster's primary tries it and the app gets the error.
  const zd = run([{ fd: 99 }], 1, {}, ['--ready-timeout', '3s']);
  await waitUntil(() => listenErrors(zd).length > 0, 15_000, () => `a listen error\n${zd.transcript()}`);
  assert.match(listenErrors(zd)[0]!, / error (EBADF|EINVAL|ENOTSOCK)$/);
  const tree = zd.treePids();
  zd.signal('SIGTERM');
  await zd.waitForExit(15_000);
  await assertAllDead(tree, 2000);
});
