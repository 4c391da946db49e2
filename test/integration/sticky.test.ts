// Issue #6: --sticky PORT. The primary owns the app's port and hands each connection to the worker
// its client IP hashes to; the app is unmodified. Real clients from several loopback addresses.
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { afterEach, test } from 'node:test';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { cleanup, runApp } from '../helpers/zd.ts';

afterEach(cleanup);

/** One request from a given local address (127.0.0.0/8 is all ours), new connection each time. */
function from(localAddress: string, port: number): Promise<{ pid: number; generation: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/', localAddress, agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

const clients = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 10}`);

async function pidsByClient(port: number, rounds: number) {
  const seen = new Map<string, Set<number>>();
  for (let round = 0; round < rounds; round++) {
    for (const client of clients) {
      const { pid } = await from(client, port);
      seen.set(client, (seen.get(client) ?? new Set()).add(pid));
    }
  }
  return seen;
}

test('each client IP is served by one worker, and the clients spread over the workers', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '3', '--sticky', String(port)], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const seen = await pidsByClient(port, 5);
  for (const [client, pids] of seen) assert.equal(pids.size, 1, `${client} was served by ${[...pids].join(', ')}`);
  const workers = new Set([...seen.values()].map((pids) => [...pids][0]));
  assert.ok(workers.size >= 2, `8 clients all landed on ${[...workers].join(', ')}`);
  for (const pid of workers) assert.ok(zd.workerPids().includes(pid!), 'served by zd workers');
});

test('a rolling restart under sticky load loses no request, and clients stick again afterwards', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '3', '--sticky', String(port), '--drain-timeout', '3s'], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const failures: string[] = [];
  let ok = 0;
  let stop = false;
  const loops = clients.map(async (client) => {
    const until = Date.now() + 20_000;
    while (!stop && Date.now() < until) {
      try {
        await from(client, port);
        ok++;
      } catch (error) {
        failures.push(`${client}: ${(error as Error).message}`);
      }
      await sleep(5);
    }
  });
  await sleep(300);
  const mark = zd.mark();
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 15_000, mark);
  await sleep(500);
  stop = true;
  await Promise.all(loops);
  assert.deepEqual(failures, []);
  assert.ok(ok > 100, `the load was real (${ok} answers)`);
  const seen = await pidsByClient(port, 3);
  for (const [client, pids] of seen) assert.equal(pids.size, 1, `${client} after the reload: ${[...pids].join(', ')}`);
  for (const client of clients) assert.equal((await from(client, port)).generation, '2', `${client} moved to generation 2`);
});

test('--sticky on a port already taken: one line, exit 1, nothing forked', async () => {
  const port = await freePort();
  const blocker = (await import('node:net')).createServer().listen(port);
  await new Promise((resolve) => blocker.once('listening', resolve));
  try {
    const zd = runApp(fixturePath('serve.cjs'), ['-w', '1', '--sticky', String(port)], { env: { PORT: String(port) } });
    const exit = await zd.waitForExit(10_000);
    assert.equal(exit.code, 1);
    assert.match(zd.stderr, /cannot listen on port \d+ for --sticky: EADDRINUSE.*ZD_E_PORT/);
    assert.equal(zd.workerPids().length, 0);
  } finally {
    blocker.close();
  }
});
