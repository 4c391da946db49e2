// Issue 20: a worker at its descriptor limit under a connection storm. Node cannot pass it a
// connection (it answers NODE_HANDLE_NACK); zd must hand that connection to another worker rather
// than leave it "in flight" for good (which, one descriptor at a time per worker, also starved the
// worker of every later connection), serve every request, let the worker serve again once it has
// descriptors, and keep none of the connections' descriptors itself.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { get } from 'node:http';
import { afterEach, test } from 'node:test';
import { getJson, getJsonEventually } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { cleanup, fastFlags, runApp } from '../helpers/zd.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';

afterEach(cleanup);

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

test('a worker at its fd limit under a connection storm: every request served elsewhere, the worker serves again after, no fd kept', { timeout: 60_000 }, async () => {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const zd = runApp(fixturePath('fd-hog.cjs'), ['-w', '2', ...fastFlags, '--metrics-port', String(metricsPort)], {
    env: { PORT: String(port), HOG_AFTER_MS: '2000', HOG_MS: '3000' },
  });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  const hog = zd.logs('ZD_WORKER_FORKED').find((l) => l.slot === 0)!.pid as number;
  const primary = zd.logs('ZD_CONFIG')[0]!.primaryPid as number;
  // A low limit, so that filling it is quick (the limit a busy worker would hit at 20,000 as at 128).
  execFileSync('prlimit', ['--pid', String(hog), '--nofile=128:128']);
  await getJsonEventually(port);
  await sleep(200);
  const baseline = fdCount(primary);

  await waitUntil(() => zd.stdout.includes(`fd-hog ${hog} holding`), 10_000, 'the worker is at its fd limit');
  // The storm: new connections, 16 at a time, while the worker cannot take a descriptor.
  const failures: string[] = [];
  const servedBy = new Map<string, number>();
  const until = Date.now() + 1500;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (Date.now() < until) {
        try {
          const reply = await getJson(port, '/', 3000);
          servedBy.set(String(reply.json.pid), (servedBy.get(String(reply.json.pid)) ?? 0) + 1);
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    }),
  );
  assert.deepEqual(failures, [], 'every request of the storm served');
  assert.ok([...servedBy.values()].reduce((a, b) => a + b, 0) > 50, `a storm: ${JSON.stringify([...servedBy])}`);
  const metrics = await scrape(metricsPort);
  const refused = Number(/^zd_connections_refused_by_worker_total (\d+)/m.exec(metrics)?.[1] ?? 'NaN');
  assert.ok(refused > 0, `the worker at its limit refused connections, and zd counted them:\n${metrics.split('\n').filter((l) => l.startsWith('zd_conn')).join('\n')}`);

  // Once it has descriptors again, it is handed connections again: nothing stayed "in flight".
  await waitUntil(() => zd.stdout.includes(`fd-hog ${hog} released`), 10_000, 'the worker released its descriptors');
  await waitUntil(async () => (await getJson(port, '/', 3000)).json.pid === hog, 5000, 'the worker serves again');

  // The primary kept no descriptor of any connection it handed over, refused or not.
  await sleep(300);
  assert.ok(fdCount(primary) <= baseline + 1, `the primary's descriptors: ${baseline} before the storm, ${fdCount(primary)} after`);
  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0);
});
