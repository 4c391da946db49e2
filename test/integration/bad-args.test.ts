// Bad arguments exit 2 with one line on stderr that names the problem, and fork nothing.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { getJson } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath, fixturesDir } from '../helpers/tmp.ts';
import { assertAllDead, cleanup, startZd, watchDescendants } from '../helpers/zd.ts';

afterEach(cleanup);


const app = fixturePath('serve.cjs');

const cases: Array<{ name: string; args: string[]; mentions: RegExp }> = [
  { name: 'an unknown flag', args: ['run', app, '--bogus'], mentions: /--bogus/ },
  { name: 'a missing app file', args: ['run', '/nonexistent/zd-test/app.js'], mentions: /\/nonexistent\/zd-test\/app\.js/ },
  { name: 'a directory as the app', args: ['run', fixturesDir], mentions: /fixtures/ },
  { name: '-w 0', args: ['run', app, '-w', '0'], mentions: /-w|worker/i },
  { name: '-w that is not a number', args: ['run', app, '-w', 'many'], mentions: /many|-w|worker/i },
  { name: 'a malformed duration', args: ['run', app, '--drain-timeout', '5x'], mentions: /5x/ },
  { name: 'an unknown --ready mode', args: ['run', app, '--ready', 'sometimes'], mentions: /sometimes/ },
  { name: 'a flag without its value', args: ['run', app, '--kill-timeout'], mentions: /--kill-timeout/ },
  { name: 'run without an app', args: ['run'], mentions: /app|usage/i },
  { name: 'an unknown command', args: ['frobnicate'], mentions: /frobnicate/ },
  { name: '--sched none with --ready message', args: ['run', app, '--sched', 'none', '--ready', 'message'], mentions: /--sched none.*ready/ },
  { name: '--sched none with --canary', args: ['run', app, '--sched', 'none', '--canary', '5s'], mentions: /--sched none.*canary/ },
  { name: 'an unknown --canary-inconclusive', args: ['run', app, '--canary-inconclusive', 'maybe'], mentions: /maybe/ },
];

test('zd run --help prints the help and exits 0, once (the keeper hears it as a decision, not a crash)', async () => {
  const zd = startZd(['run', '--help']);
  const exit = await zd.waitForExit(10_000);
  assert.equal(exit.code, 0, zd.transcript());
  assert.match(zd.stdout, /--canary-inconclusive/);
  assert.equal(zd.stdout.split('zd run <app').length - 1, 1, 'the help printed once, not once per restart');
  assert.doesNotMatch(zd.transcript(), /ZD_PRIMARY_CRASH/);
});

for (const { name, args, mentions } of cases) {
  test(`${name} exits 2 with one line and forks nothing`, async () => {
    const port = await freePort();
    const zd = startZd(args, { env: { PORT: String(port), WORKER_COUNT: '1' } });
    // Everything zd ever started, judged race-free (see watchDescendants): tsx's compiler service,
    // which a cold cache starts when zd runs from source, is not a fork.
    const watch = watchDescendants(zd);
    const exit = await zd.waitForExit(5000).finally(() => watch.stop());
    assert.equal(exit.code, 2, zd.transcript());
    const lines = zd.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `exactly one line on stderr, got:\n${zd.stderr}`);
    assert.match(lines[0]!, mentions);
    assert.equal(zd.workerPids().length, 0, zd.transcript());
    assert.deepEqual(watch.forks(), [], 'no process was forked');
    await assert.rejects(getJson(port, '/', 300), 'nothing listens on PORT');
    await assertAllDead([zd.pid], 1000);
  });
}
