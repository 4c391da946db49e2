// Issue #16, with real processes: a recorded run replays to exactly the decisions the live run
// logged. Compared line for line: every zd log line on the live stderr but the shell's own
// (SHELL_LOG_CODES), with every field but the time, against `zd replay --log-format json`.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { SHELL_LOG_CODES } from '../../src/record/replay.ts';
import { freePort } from '../helpers/ports.ts';
import { cleanupCopies, copyFixture, fixturePath } from '../helpers/tmp.ts';
import { cleanup, fastFlags, isAlive, repoRoot, runApp, testRuntimeDir, zdCli, type Zd, type ZdLog } from '../helpers/zd.ts';
import { waitUntil } from '../helpers/wait.ts';

afterEach(() => {
  cleanup();
  cleanupCopies();
});

/** A log line as both runs print it: without its time. */
const comparable = ({ time: _time, ...rest }: ZdLog | Record<string, unknown>) => rest;

/** What the live run decided: its zd lines but the shell's own. */
function liveDecisions(zd: Zd): Array<Record<string, unknown>> {
  return zd.entries.filter((log) => !SHELL_LOG_CODES.has(log.code)).map(comparable);
}

function replay(file: string, ...flags: string[]): { code: number | null; lines: Array<Record<string, unknown>>; stderr: string } {
  const run = zdCli('replay', file, '--log-format', 'json', ...flags);
  const lines = run.stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>);
  return { code: run.code, lines: lines.map(comparable), stderr: run.stderr };
}

const codes = (lines: Array<Record<string, unknown>>) => lines.map((l) => `${String(l.code)} ${String(l.msg)}`);

test('a run with a reload, a SIGKILLed worker, an aborted rollout and SIGTERM replays to the same decisions; cut mid-line, up to the cut', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const app = copyFixture('serve.cjs');
  const journal = join(app.dir, 'zd.journal');
  const zd = runApp(app.file, ['-w', '2', ...fastFlags, '--min-ready', '200ms', '--name', 'recorded', '--record', journal], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 15_000);

  let mark = zd.mark();
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 15_000, mark);

  const [victim] = zd.logs('ZD_WORKER_FORKED').filter((log) => Number(log.generation) === 2).map((log) => log.pid as number);
  mark = zd.mark();
  process.kill(victim!, 'SIGKILL');
  await zd.waitForLog('ZD_WORKER_CRASHED', (log) => log.pid === victim, 10_000, mark);
  await zd.waitForLog('ZD_WORKER_READY', undefined, 10_000, mark);

  app.writeFixture('crash-on-boot.cjs');
  mark = zd.mark();
  zd.signal('SIGHUP');
  const aborted = await zd.waitForLog('ZD_RELOAD_ABORTED', undefined, 15_000, mark);
  assert.match(String(aborted.stderr), /boom at boot/);

  zd.signal('SIGTERM');
  assert.equal((await zd.waitForExit(15_000)).code, 0, zd.transcript());

  const live = liveDecisions(zd);
  const replayed = replay(journal);
  assert.equal(replayed.code, 0, replayed.stderr);
  assert.equal(replayed.stderr, '');
  assert.deepEqual(codes(replayed.lines), codes(live), 'the same {code, msg}, in the same order');
  assert.deepEqual(replayed.lines, live, 'every field of every line but the time');
  for (const code of ['ZD_RELOAD_DONE', 'ZD_WORKER_CRASHED', 'ZD_RELOAD_ABORTED', 'ZD_SHUTDOWN', 'ZD_STOPPED']) {
    assert.ok(replayed.lines.some((l) => l.code === code), `${code} replayed`);
  }
  // The abort's stderr tail, which the reducer never sees, comes from the journal.
  assert.match(String(replayed.lines.find((l) => l.code === 'ZD_RELOAD_ABORTED')?.stderr), /boom at boot/);

  // --until: stops at a moment (ms since start): here, just after the second SIGHUP.
  const text = readFileSync(journal, 'utf8');
  const rows = text.trimEnd().split('\n');
  const hups = rows.filter((row) => row.includes('"type":"signal.hup"')).map((row) => JSON.parse(row) as { t: number });
  const until = replay(journal, '--until', String(hups[1]!.t));
  assert.equal(until.code, 0, until.stderr);
  assert.deepEqual(until.lines, replayed.lines.slice(0, until.lines.length), 'a prefix of the whole replay');
  assert.ok(until.lines.filter((l) => l.code === 'ZD_RELOAD_STARTED').length === 2 && !until.lines.some((l) => l.code === 'ZD_RELOAD_ABORTED'), codes(until.lines).join('\n'));

  // The primary SIGKILLed while writing a line: the journal ends mid-line and replays up to it.
  const half = Math.floor(rows.length / 2);
  const cutFile = join(app.dir, 'cut.journal');
  writeFileSync(cutFile, `${rows.slice(0, half).join('\n')}\n${rows[half]!.slice(0, Math.floor(rows[half]!.length / 2))}`);
  const cut = replay(cutFile);
  assert.equal(cut.code, 0, cut.stderr);
  assert.match(cut.stderr, new RegExp(`^zd: ${cutFile} is cut in the middle of line ${half + 1} \\(the primary was killed while writing it\\): replayed up to step ${half - 1} \\[ZD_JOURNAL_CUT\\]\\n$`));
  assert.ok(cut.lines.length > 0 && cut.lines.length < replayed.lines.length);
  assert.deepEqual(cut.lines, replayed.lines.slice(0, cut.lines.length));

  // Another zd's journal is refused with one line, and nothing replayed.
  const foreign = join(app.dir, 'foreign.journal');
  writeFileSync(foreign, text.replace(/"version":"[^"]+"/, '"version":"0.0.0-other"'));
  const refused = zdCli('replay', foreign);
  assert.equal(refused.code, 2);
  assert.equal(refused.stdout, '');
  assert.match(refused.stderr, /^zd: .*written by zd 0\.0\.0-other, and this is zd .* \[ZD_E_JOURNAL_VERSION\]\n$/);

  // zd inspect --replay, piped: the stream a live `zd inspect --json` would have sent.
  const inspected = zdCli('inspect', '--replay', journal, '--json');
  assert.equal(inspected.code, 0, inspected.stderr);
  const messages = inspected.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as { type: string; logs?: Array<{ code: string }> });
  assert.equal(messages[0]!.type, 'hello');
  assert.equal(messages.length, rows.length + 1, 'hello, then init and a step per event');
  assert.deepEqual(messages.flatMap((m) => (m.logs ?? []).map((l) => l.code)), replayed.lines.map((l) => l.code));

  // --json: each step and its state, the last one the exit.
  const json = zdCli('replay', journal, '--json');
  const steps = json.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as { n: number; state: { phase: string } });
  assert.equal(steps.length, rows.length, 'init and one step per event line');
  assert.equal(steps[steps.length - 1]!.state.phase, 'exited');
});

test('the primary SIGKILLed: every decision it logged is already in the journal', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const app = copyFixture('serve.cjs');
  const journal = join(app.dir, 'zd.journal');
  const zd = runApp(app.file, ['-w', '2', ...fastFlags, '--min-ready', '0', '--name', 'killed', '--record', journal], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  const mark = zd.mark();
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 15_000, mark);
  process.kill(zd.pid, 'SIGKILL');
  await zd.waitForExit(10_000);
  const replayed = replay(journal);
  assert.equal(replayed.code, 0, replayed.stderr);
  // A line may follow the last live one (an event taken as the kill landed), never precede it.
  assert.deepEqual(replayed.lines.slice(0, liveDecisions(zd).length), liveDecisions(zd));
});

test('zd dump from a running instance writes a journal that replays to its decisions so far', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...fastFlags, '--min-ready', '0', '--name', 'dumped'], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 15_000);
  const mark = zd.mark();
  zd.signal('SIGHUP');
  await zd.waitForLog('ZD_RELOAD_DONE', undefined, 15_000, mark);
  await waitUntil(() => zd.logs('ZD_WORKER_EXITED').length >= 2 || undefined, 10_000, 'the old workers to exit');
  const file = join(testRuntimeDir, 'dumped-by-cli.journal');
  const dump = zdCli('dump', 'dumped', file);
  assert.equal(dump.code, 0, dump.stderr);
  assert.match(dump.stdout, /^zd: wrote the last \d+ events of 'dumped' to .*, from its start: zd replay /);
  const header = JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!) as Record<string, unknown>;
  assert.equal(header.from, 'init');
  assert.equal(header.reason, 'zd dump');
  const replayed = replay(file);
  assert.equal(replayed.code, 0, replayed.stderr);
  assert.deepEqual(replayed.lines, liveDecisions(zd));
  assert.ok(zd.alive(), 'the instance carries on');
  const usage = zdCli('dump');
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^zd: zd dump \[name\] FILE: .*\[ZD_E_USAGE\]\n$/);
});

test('exit 1 (no worker ever ready) writes the last events next to the control socket, and says where', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('crash-on-boot.cjs'), ['-w', '1', '--ready-timeout', '1s', '--drain-timeout', '500ms', '--kill-timeout', '500ms', '--name', 'doomed'], {
    env: { PORT: String(port) },
    cwd: repoRoot,
  });
  assert.equal((await zd.waitForExit(15_000)).code, 1, zd.transcript());
  const written = zd.logs('ZD_JOURNAL_WRITTEN');
  assert.equal(written.length, 1, zd.transcript());
  const file = join(testRuntimeDir, 'doomed.journal');
  assert.equal(written[0]!.file, file);
  assert.match(written[0]!.msg, /zd replay .*doomed\.journal/);
  assert.ok(!readdirSync(testRuntimeDir).some((name) => name.endsWith('.tmp')), 'no temporary file left');
  const replayed = replay(file);
  assert.equal(replayed.code, 0, replayed.stderr);
  assert.deepEqual(replayed.lines, liveDecisions(zd));
  assert.ok(replayed.lines.some((l) => l.code === 'ZD_BOOT_FAILED' && /boom at boot/.test(String(l.stderr))));
  assert.ok(!isAlive(zd.pid));
});
