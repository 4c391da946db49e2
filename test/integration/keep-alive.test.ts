// A client that keeps one connection alive across rolling restarts (issue #4). Without zd's worker
// bootstrap both failed: the old worker's server.close(), run by cluster's disconnect, cut the
// keep-alive sockets idle at that instant (ECONNRESET for a request being written on one), and a
// socket busy at that instant was never closed, so the client stayed on the old generation until
// the drain deadline's SIGTERM reset it.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { describeFailures, poller } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { cleanup, fastFlags, runApp } from '../helpers/zd.ts';
import { sleep } from '../helpers/wait.ts';

afterEach(cleanup);

async function startWithKeepAliveClient() {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...fastFlags], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  const client = poller(port, { intervalMs: 5, maxMs: 20_000, keepAlive: true });
  await client.until((r) => r.successes.length >= 5, 3000, 'the keep-alive client to be answered');
  return { zd, client };
}

test(
  'a keep-alive client sees no failed request across rolling restarts',
  async () => {
    const { zd, client } = await startWithKeepAliveClient();
    for (const generation of [2, 3, 4]) {
      const mark = zd.mark();
      zd.signal('SIGHUP');
      await zd.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === generation, 10_000, mark);
    }
    // Past the 2s drain deadline, so a reset by SIGTERM would be counted too.
    await sleep(2500);
    const report = await client.stop();
    assert.equal(report.failures.length, 0, `failed requests: ${describeFailures(report.failures)}`);
  },
);

test(
  'a keep-alive client is served by the new generation soon after ZD_RELOAD_DONE',
  async () => {
    const { zd, client } = await startWithKeepAliveClient();
    for (const generation of [2, 3, 4, 5, 6, 7]) {
      const mark = zd.mark();
      zd.signal('SIGHUP');
      await zd.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === generation, 10_000, mark);
      // Well inside the 2s drain deadline: only a prompt hand-over passes.
      await sleep(500);
      const from = client.report.successes.length;
      await client.until((r) => r.successes.length >= from + 10, 3000, '10 more answers');
      const stale = client.report.successes.slice(from).filter((reply) => reply.generation !== String(generation));
      assert.deepEqual(stale, [], `answered by an older generation 500ms after ZD_RELOAD_DONE ${generation}`);
    }
    await client.stop();
  },
);
