// Issue #10, item 5: HTTP/2 drains like HTTP/1.1. A node:http2 client keeps one session and sends
// every request on it, so a draining worker must say GOAWAY: the streams it took finish, and the
// client opens its next session on a new worker. The client here retries only what HTTP/2 says
// was never processed (a stream refused with REFUSED_STREAM, or one asked of a session already
// going away), as HTTP/2 clients do; any other failure counts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { connect, constants, type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { assertAllDead, cleanup, runApp, timeOf, type Zd } from '../helpers/zd.ts';

const sessions = new Set<ClientHttp2Session>();
afterEach(() => {
  for (const session of sessions) session.destroy();
  sessions.clear();
  cleanup();
});

interface Reply {
  pid: number;
  generation: string;
}
type H2Error = Error & { retry?: boolean; code?: string };

/** A self-signed pair for 127.0.0.1, made by openssl now; else the test-only pair of the compat suite. */
function tlsPair(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'zd-h2-tls-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const made = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    { stdio: 'ignore', timeout: 10_000 },
  );
  if (made.status === 0 && existsSync(cert)) return { key, cert };
  return { key: fixturePath('compat/tls/key.pem'), cert: fixturePath('compat/tls/cert.pem') };
}

function open(authority: string, options: SecureClientSessionOptions): ClientHttp2Session {
  const session = connect(authority, options);
  session.on('error', () => {}); // each stream reports its own failure
  sessions.add(session);
  session.once('close', () => sessions.delete(session));
  return session;
}

/** One GET on `session`: the reply, or an error marked `retry` when the server never took the stream. */
function get(session: ClientHttp2Session, path: string, timeoutMs = 8000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let stream: ReturnType<ClientHttp2Session['request']>;
    try {
      stream = session.request({ ':path': path });
    } catch (error) {
      const code = (error as H2Error).code;
      reject(Object.assign(error as Error, { retry: code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION' }));
      return;
    }
    let status = 0;
    let body = '';
    let settled = false;
    const fail = (error: H2Error) => {
      if (settled) return;
      settled = true;
      reject(Object.assign(error, { retry: stream.rstCode === constants.NGHTTP2_REFUSED_STREAM }));
    };
    stream.setTimeout(timeoutMs, () => {
      fail(Object.assign(new Error(`no answer within ${timeoutMs}ms`), { code: 'ETIMEOUT' }));
      stream.close(constants.NGHTTP2_CANCEL);
    });
    stream.setEncoding('utf8');
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => {
      if (settled) return;
      settled = true;
      if (status === 200) resolve(JSON.parse(body) as Reply);
      else reject(new Error(`HTTP ${status} (rstCode ${stream.rstCode}): ${body.slice(0, 120)}`));
    });
    stream.on('error', fail);
    stream.on('close', () => fail(Object.assign(new Error(`stream closed without an answer (rstCode ${stream.rstCode})`), { code: 'ESTREAMCLOSED' })));
  });
}

/**
 * One client holding one session (a new one once it goes away), sending `parallel` requests at a
 * time on it without pause. Every answer is kept with the time its request was first sent.
 */
function holdingClient(authority: string, options: SecureClientSessionOptions, parallel = 2) {
  let session: ClientHttp2Session | null = null;
  let stopped = false;
  const current = () => {
    if (!session || session.closed || session.destroyed) session = open(authority, options);
    return session;
  };
  const answers: Array<Reply & { sentAt: number }> = [];
  const failures: string[] = [];
  let retries = 0;
  let sessionsOpened = 0;
  const ask = async (path: string): Promise<Reply | undefined> => {
    const sentAt = Date.now();
    for (let attempt = 1; ; attempt++) {
      const before = session;
      const used = current();
      if (used !== before) sessionsOpened++;
      try {
        const reply = await get(used, path);
        answers.push({ ...reply, sentAt });
        return reply;
      } catch (error) {
        if ((error as H2Error).retry && attempt < 3) {
          retries++;
          continue;
        }
        failures.push(`${(error as H2Error).code ?? ''} ${(error as Error).message}`);
        return undefined;
      }
    }
  };
  const loops = Array.from({ length: parallel }, async () => {
    while (!stopped) await ask('/');
  });
  return {
    answers,
    failures,
    ask,
    stats: () => ({ answers: answers.length, retries, sessionsOpened }),
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

async function exitedLog(zd: Zd, pid: number, since: number) {
  return zd.waitForLog('ZD_WORKER_EXITED', (log) => log.pid === pid, 12_000, since);
}

for (const mode of ['h2c', 'TLS'] as const) {
  test(`HTTP/2 (${mode}): one session through a reload — its stream in flight finishes, GOAWAY moves it to the new generation within seconds, no stream fails, old workers exit by themselves; SIGTERM exits 0`, async (t) => {
    const port = await freePort();
    const pair = mode === 'TLS' ? tlsPair() : undefined;
    const options: SecureClientSessionOptions = pair ? { ca: readFileSync(pair.cert) } : {};
    const authority = `${pair ? 'https' : 'http'}://127.0.0.1:${port}`;
    // A drain deadline far beyond what the test waits: only GOAWAY can let the old workers go in time.
    const zd = runApp(fixturePath('h2-app.cjs'), ['-w', '2', '--ready-timeout', '5s', '--drain-timeout', '15s', '--kill-timeout', '1s'], {
      env: { PORT: String(port), ...(pair ? { TLS_KEY: pair.key, TLS_CERT: pair.cert } : {}) },
    });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    const old = zd.workerPids();

    const client = holdingClient(authority, options);
    await sleep(300);
    const slow = client.ask('/?delay=1500');
    await sleep(100);
    const mark = zd.mark();
    zd.signal('SIGHUP');
    const done = await zd.waitForLog('ZD_RELOAD_DONE', undefined, 15_000, mark);
    for (const pid of old) {
      const exited = await exitedLog(zd, pid, mark);
      assert.equal(exited.outcome, 'exited', `old worker ${pid} drained by itself, not at the deadline: ${JSON.stringify(exited)}`);
    }
    const lastOldExit = Math.max(...zd.logs('ZD_WORKER_EXITED').filter((l) => old.includes(l.pid as number)).map(timeOf));
    // Keep asking for a while after the reload, to see who answers then.
    await sleep(Math.max(0, timeOf(done) + 3500 - Date.now()));
    await client.stop();

    const slowReply = await slow;
    t.diagnostic(`${mode}: ${JSON.stringify(client.stats())}; old workers gone ${lastOldExit - timeOf(done)}ms after ZD_RELOAD_DONE`);
    assert.deepEqual(client.failures, [], 'no stream failed');
    assert.ok(slowReply, 'the slow stream was answered');
    assert.equal(slowReply.generation, '1', 'by the worker that took it');
    assert.ok(lastOldExit - timeOf(done) < 5000, `old workers gone ${lastOldExit - timeOf(done)}ms after the rollout (drain deadline 15 s)`);
    const late = client.answers.filter((a) => a.sentAt >= timeOf(done) + 2000);
    assert.ok(late.length >= 10, `requests sent from 2 s after ZD_RELOAD_DONE on: ${late.length}`);
    const stale = late.filter((a) => a.generation !== '2');
    assert.deepEqual(stale, [], 'from 2 s after the rollout on, only the new generation answers');

    const tree = zd.treePids();
    zd.signal('SIGTERM');
    assert.deepEqual(await zd.waitForExit(10_000), { code: 0, signal: null }, zd.transcript());
    await assertAllDead(tree, 1000);
    assert.deepEqual(zd.logs('ZD_IO_ERROR'), []);
  });
}

test('HTTP/2: an idle session on a draining worker gets GOAWAY at once, so the worker exits long before its deadline; the same on SIGTERM', async () => {
  const port = await freePort();
  const authority = `http://127.0.0.1:${port}`;
  const zd = runApp(fixturePath('h2-app.cjs'), ['-w', '1', '--ready-timeout', '5s', '--drain-timeout', '15s', '--kill-timeout', '1s'], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const [oldPid] = zd.workerPids();

  const idle = open(authority, {});
  const goaway = new Promise<number>((resolve) => idle.once('goaway', (code) => resolve(code)));
  const closed = new Promise<void>((resolve) => idle.once('close', resolve));
  const first = await get(idle, '/');
  assert.equal(first.pid, oldPid);

  const mark = zd.mark();
  zd.signal('SIGHUP');
  const draining = await zd.waitForLog('ZD_WORKER_DRAINING', (log) => log.pid === oldPid, 15_000, mark);
  const exited = await exitedLog(zd, oldPid!, mark);
  assert.equal(exited.outcome, 'exited', JSON.stringify(exited));
  assert.ok(timeOf(exited) - timeOf(draining) < 3000, `the idle session let the worker go ${timeOf(exited) - timeOf(draining)}ms into its drain (deadline 15 s)`);
  assert.equal(await goaway, constants.NGHTTP2_NO_ERROR, 'a graceful GOAWAY');
  await closed;

  // A new session reaches the new generation; held idle through SIGTERM, it does not hold zd up.
  const next = open(authority, {});
  const reply = await get(next, '/');
  assert.equal(reply.generation, '2');
  const tree = zd.treePids();
  const stopAt = Date.now();
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(10_000), { code: 0, signal: null }, zd.transcript());
  assert.ok(Date.now() - stopAt < 5000, `stopped in ${Date.now() - stopAt}ms with an idle session open (deadline 15 s)`);
  const last = zd.logs('ZD_WORKER_EXITED').find((l) => l.pid === reply.pid)!;
  assert.equal(last.outcome, 'exited');
  await assertAllDead(tree, 1000);
});
