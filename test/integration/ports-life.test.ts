// Issue 20, items 2 and 3, with real zd processes, signals and sockets on 127.0.0.1: the ports'
// life. During a stop a new connection is refused at once (never accepted, then hung or reset)
// while what is in flight is answered; an app that closes its server and listens again is served
// as under node:cluster, with no port leaked; a burst far above the backlog is served or refused,
// never left hanging; and a socket held by its owner across a stop and a start of zd loses no
// connection.
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { get } from 'node:http';
import { afterEach, test } from 'node:test';
import { distinctPids, getJson, poller, describeFailures, type AppReply } from '../helpers/http.ts';
import { hammer, summary } from '../helpers/load.ts';
import { freePort, tcpOutcome } from '../helpers/ports.ts';
import { listeningInodes } from '../helpers/proc-net.ts';
import { zdProcess } from '../helpers/fake-systemd.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import { assertAllDead, cleanup, runApp, SOCKET_MODES, startZd, zdBin, type Zd } from '../helpers/zd.ts';

afterEach(cleanup);

interface Attempt {
  /** ms since the attempt began */
  ms: number;
  /** 'ok' (a 200 answer), or the error's code: ECONNREFUSED, ECONNRESET, 'hung', … */
  outcome: string;
  /** When it began, ms after SIGTERM. */
  at: number;
}

/** One GET on a new connection; 'hung' if nothing (answer or error) within `hangMs`. */
function attempt(port: number, path: string, hangMs: number): Promise<{ outcome: string; ms: number; status?: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (outcome: string, status?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ outcome, ms: Date.now() - started, status });
    };
    const req = get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode === 200 ? 'ok' : `status ${res.statusCode}`, res.statusCode));
      res.on('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
    });
    req.on('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
    const timer = setTimeout(() => {
      done('hung');
      req.destroy();
    }, hangMs);
  });
}

for (const mode of SOCKET_MODES) {
  test(`SIGTERM with a slow request in flight (--sched ${mode.sched}): new connections are refused at once (never accepted and left hanging, never reset), the slow request gets its 200, zd exits 0`, { skip: mode.skip }, async () => {
    const port = await freePort();
    const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...mode.flags, '--ready-timeout', '5s', '--drain-timeout', '10s', '--kill-timeout', '1s'], { env: { PORT: String(port) }, ...mode.options });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    await distinctPids(port, 2, 5000);
    const tree = zd.treePids();
    const slow = attempt(port, '/?delay=3000', 8000);
    await sleep(200);
    const signalledAt = Date.now();
    zd.signal('SIGTERM');
    // New connections, one after another, for as long as the slow request keeps zd in its stop.
    const attempts: Attempt[] = [];
    while (zd.alive() && Date.now() - signalledAt < 2500) {
      const at = Date.now() - signalledAt;
      const { outcome, ms } = await attempt(port, '/', 2000);
      attempts.push({ at, outcome, ms });
      await sleep(25);
    }
    const slowReply = await slow;
    const exit = await zd.waitForExit(15_000);
    const shown = attempts.map((a) => `+${a.at}ms ${a.outcome} in ${a.ms}ms`).join(', ');

    assert.equal(slowReply.outcome, 'ok', `the slow request in flight: ${slowReply.outcome}`);
    assert.ok(slowReply.ms >= 2900, `answered after its 3 s (${slowReply.ms}ms)`);
    assert.deepEqual(exit, { code: 0, signal: null }, zd.transcript());
    // Served (accepted before the ports closed, by a worker still serving) or refused: nothing else.
    assert.deepEqual(attempts.filter((a) => a.outcome !== 'ok' && a.outcome !== 'ECONNREFUSED'), [], `every attempt served or refused: ${shown}`);
    assert.deepEqual(attempts.filter((a) => a.outcome === 'ECONNREFUSED' && a.ms > 300), [], `refused within 300 ms: ${shown}`);
    assert.deepEqual(attempts.filter((a) => a.outcome === 'ok' && a.ms > 1000), [], `served promptly: ${shown}`);
    // Once refused, refused from then on: no process of zd accepts on the port again.
    const firstRefused = attempts.findIndex((a) => a.outcome === 'ECONNREFUSED');
    assert.ok(firstRefused >= 0, `refused during the stop: ${shown}`);
    assert.deepEqual(attempts.slice(firstRefused).filter((a) => a.outcome !== 'ECONNREFUSED'), [], `refused from the first refusal on: ${shown}`);
    assert.ok(attempts.length - firstRefused >= 10, `refused for the rest of the drain (${attempts.length - firstRefused} attempts): ${shown}`);
    assert.ok(attempts[firstRefused]!.at < 1000, `refused within 1 s of SIGTERM: ${shown}`);
    await assertAllDead(tree, 2000);
  });
}

/** `relisten-app <pid> listening <port> <n>` lines zd forwarded from its workers' stdout. */
function listens(zd: Zd): Array<{ pid: number; port: number; n: number }> {
  return [...zd.stdout.matchAll(/^relisten-app (\d+) listening (\d+) (\d+)$/gm)].map((m) => ({ pid: Number(m[1]), port: Number(m[2]), n: Number(m[3]) }));
}

interface Relisten extends AppReply {
  port: number;
  listens: number;
}

test('an app that closes its server and listens again on its fixed port is served again, with no EADDRINUSE and no failed request (2 workers)', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('relisten-app.cjs'), ['-w', '2', '--ready-timeout', '5s', '--drain-timeout', '2s', '--kill-timeout', '1s'], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  await distinctPids(port, 2, 5000);
  const client = poller(port, { intervalMs: 5, maxMs: 20_000 });
  await sleep(200);
  const { json: first } = await getJson<Relisten>(port, '/relisten', 3000);
  assert.equal(first.listens, 1);
  await waitUntil(() => listens(zd).some((l) => l.pid === first.pid && l.n === 2), 5000, () => `worker ${first.pid} listening again\n${zd.stdout}\n${zd.transcript()}`);
  // The worker that re-listened serves again, on the same port.
  const again = await waitUntil(
    async () => {
      const { json } = await getJson<Relisten>(port, '/', 2000);
      return json.pid === first.pid ? json : undefined;
    },
    5000,
    () => `an answer from worker ${first.pid} after it listened again`,
  );
  assert.equal(again.listens, 2);
  assert.equal(again.port, port);
  // And the other one re-listens too.
  let second: Relisten | undefined;
  for (let i = 0; i < 20 && !second; i++) {
    const { json } = await getJson<Relisten>(port, '/relisten', 3000);
    if (json.pid !== first.pid) second = json;
  }
  assert.ok(second, 'the other worker got a /relisten');
  await waitUntil(() => listens(zd).some((l) => l.pid === second!.pid && l.n === 2), 5000, () => `worker ${second!.pid} listening again`);
  const pids = await distinctPids(port, 2, 5000);
  assert.deepEqual([...pids].sort(), [first.pid, second.pid].sort());
  await sleep(500);
  const report = await client.stop();
  assert.equal(report.failures.length, 0, `failed requests: ${describeFailures(report.failures)}`);
  assert.ok(report.successes.length > 50, `the poller ran: ${report.successes.length}`);
  assert.doesNotMatch(zd.stderr + zd.stdout, /EADDRINUSE/);
  assert.doesNotMatch(zd.stderr, /relisten-app \d+ error/);
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(10_000)).code, 0, zd.transcript());
});

test('one worker: close() then listen() on the same fixed port is served after the re-listen', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('relisten-app.cjs'), ['-w', '1', '--ready-timeout', '5s', '--drain-timeout', '2s', '--kill-timeout', '1s'], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const { json: first } = await getJson<Relisten>(port, '/relisten', 3000);
  await waitUntil(() => listens(zd).some((l) => l.n === 2), 5000, () => `the worker listening again\n${zd.stdout}\n${zd.transcript()}`);
  for (let i = 0; i < 20; i++) {
    const { status, json } = await getJson<Relisten>(port, '/', 2000);
    assert.equal(status, 200);
    assert.equal(json.pid, first.pid);
    assert.equal(json.listens, 2);
    assert.equal(json.port, port);
  }
  assert.doesNotMatch(zd.stderr + zd.stdout, /EADDRINUSE/);
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(10_000)).code, 0, zd.transcript());
});

for (const mode of SOCKET_MODES) {
  test(`close() then listen(0) (--sched ${mode.sched}): the new port is served and the old one is let go by every zd process (no port leaked)`, { skip: mode.skip }, async () => {
    const zd = runApp(fixturePath('relisten-app.cjs'), ['-w', '1', ...mode.flags, '--ready-timeout', '5s', '--drain-timeout', '2s', '--kill-timeout', '1s'], { env: { PORT: '0' }, ...mode.options });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    const before = await waitUntil(() => listens(zd).find((l) => l.n === 1), 5000, () => `the worker's first port\n${zd.stdout}`);
    const { json } = await getJson<Relisten>(before.port, '/', 3000);
    assert.equal(json.port, before.port);
    await getJson<Relisten>(before.port, '/relisten', 3000);
    const after = await waitUntil(() => listens(zd).find((l) => l.n === 2), 5000, () => `the worker listening again\n${zd.stdout}\n${zd.transcript()}`);
    for (let i = 0; i < 10; i++) {
      const { status, json: reply } = await getJson<Relisten>(after.port, '/', 2000);
      assert.equal(status, 200);
      assert.equal(reply.listens, 2);
      assert.equal(reply.port, after.port);
    }
    if (after.port !== before.port) {
      // Nobody listens on the first port any more: not the primary, not the keeper.
      await waitUntil(() => listeningInodes(before.port).length === 0, 3000, () => `port ${before.port} still listening: ${listeningInodes(before.port).join(', ')} (held by ${holders(zd, listeningInodes(before.port)).join(', ')})`);
      assert.equal(await tcpOutcome('127.0.0.1', before.port), 'ECONNREFUSED');
    }
    // Twice more: each close()+listen(0) lets its port go; zd ends up holding one port for the app.
    for (const n of [3, 4]) {
      const current = listens(zd).find((l) => l.n === n - 1)!;
      await getJson<Relisten>(current.port, '/relisten', 3000);
      const next = await waitUntil(() => listens(zd).find((l) => l.n === n), 5000, () => `listen ${n}`);
      assert.equal((await getJson<Relisten>(next.port, '/', 2000)).json.listens, n);
    }
    const ports = [...new Set(listens(zd).map((l) => l.port))];
    const last = listens(zd).find((l) => l.n === 4)!.port;
    await waitUntil(() => ports.filter((p) => p !== last).every((p) => listeningInodes(p).length === 0), 3000, () => `ports still listening: ${ports.filter((p) => p !== last && listeningInodes(p).length > 0).join(', ')}`);
    assert.equal(listeningInodes(last).length, 1);
    assert.doesNotMatch(zd.stderr + zd.stdout, /EADDRINUSE/);
    zd.signal('SIGTERM');
    assert.equal((await zd.waitForExit(10_000)).code, 0, zd.transcript());
  });
}

/** Which of zd's processes hold any of these socket inodes (for a failure message). */
function holders(zd: Zd, inodes: string[]): string[] {
  const out: string[] = [];
  for (const pid of zd.treePids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.includes(m[1]!)) out.push(`${pid} fd ${fd}`);
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}

test('a burst of 3000 connections at once (far above the backlog) on 2 workers: each is served, refused or reset, none hangs; both workers serve afterwards', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', '--ready-timeout', '5s', '--drain-timeout', '2s', '--kill-timeout', '1s'], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  await distinctPids(port, 2, 5000);
  const N = 3000;
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: N }, () => attempt(port, '/?delay=50', 10_000)));
  const took = Date.now() - started;
  const counts: Record<string, number> = {};
  for (const r of results) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
  const detail = `${JSON.stringify(counts)} in ${took}ms; slowest ${Math.max(...results.map((r) => r.ms))}ms`;
  assert.equal(counts.hung ?? 0, 0, `none hangs beyond 10 s: ${detail}`);
  const allowed = new Set(['ok', 'ECONNREFUSED', 'ECONNRESET']);
  assert.deepEqual(Object.keys(counts).filter((k) => !allowed.has(k)), [], `served, refused or reset: ${detail}`);
  assert.ok((counts.ok ?? 0) >= N / 3, `most are served: ${detail}`);
  // Every worker serves again, and zd is still whole.
  await distinctPids(port, 2, 5000);
  assert.ok(zd.alive(), zd.transcript());
  assert.deepEqual(zd.logs('ZD_WORKER_EXITED'), [], 'no worker died');
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(10_000)).code, 0, zd.transcript());
});


test('a held socket across three stops and starts of zd under new-connection load: not one request fails', async () => {
  const port = await freePort();
  const fake = startZd([zdBin, 'run', fixturePath('serve.cjs'), '-w', '2', '--ready-timeout', '10s', '--drain-timeout', '5s', '--kill-timeout', '2s'], {
    bin: fixturePath('fake-systemd.cjs'),
    env: { FAKE_SD_PORT: String(port), FAKE_SD_PID: 'exact', FAKE_SD_ROUNDS: '4', PORT: String(port) },
  });
  await fake.waitForLog('ZD_READY', undefined, 15_000);
  await distinctPids(port, 2, 5000);
  const load = hammer(port, { keepAliveConnections: 0, freshLoops: 16, maxMs: 45_000, maxRequests: 300_000 });
  const rounds = () => fake.lines.filter((l) => l.startsWith('fake-systemd round '));
  let previous: number | undefined;
  for (const round of [1, 2, 3]) {
    await sleep(800);
    const current = await zdProcess(fake, previous);
    const readies = fake.logs('ZD_READY').length;
    process.kill(current, 'SIGTERM');
    await waitUntil(() => rounds().length === round, 20_000, () => `zd ${round}'s exit\n${fake.transcript()}`);
    await waitUntil(() => fake.logs('ZD_READY').length > readies, 20_000, () => `zd ${round + 1} ready\n${fake.transcript()}`);
    previous = current;
  }
  await sleep(800);
  const report = await load.stop();
  assert.deepEqual(rounds(), [1, 2, 3].map((r) => `fake-systemd round ${r} exit 0 null`));
  assert.deepEqual(report.failures.slice(0, 10), [], `no request failed: ${summary(report)}`);
  assert.equal(report.non2xx, 0, summary(report));
  assert.ok(report.ok > 1000, `the load was real: ${summary(report)}`);
  const tree = fake.treePids();
  process.kill(await zdProcess(fake, previous), 'SIGTERM');
  assert.deepEqual(await fake.waitForExit(15_000), { code: 0, signal: null }, fake.transcript());
  await assertAllDead(tree, 2000);
});
