// Issue #5: `zd inspect` against real instances: the JSON stream and the plain lines through a
// rolling restart, the offline diagrams, and bad command lines. The web page: test/e2e/.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { MACHINES, mermaidIds, machineModel } from '../../src/diagram/index.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { cleanup, fastFlags, runApp, testRuntimeDir, zdCli } from '../helpers/zd.ts';
import { startInspect } from '../e2e/inspect-cli.ts';

afterEach(cleanup);


async function started(name: string) {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', '--name', name, ...fastFlags], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  return zd;
}

interface Transition {
  machine: string;
  id: number;
  from: string;
  to: string;
}

test('--json streams hello, snapshot and every step of a rolling restart; exits 1 with one line when zd stops', async () => {
  const zd = await started('ij');
  const inspect = startInspect(['--json', 'ij']);
  await inspect.waitForLine(/"type":"snapshot"/, 10_000, 'the snapshot');
  zd.signal('SIGHUP');
  await inspect.waitForLine(/"machine":"rollout"[^}]*"to":"done"/, 15_000, 'the rollout reaching done');

  const messages = inspect.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(messages[0]!.type, 'hello');
  assert.equal(messages[0]!.name, 'ij');
  assert.equal(messages[0]!.pid, zd.primaryPid());
  assert.equal(messages[1]!.type, 'snapshot');
  const steps = messages.slice(2);
  assert.ok(steps.length > 0 && steps.every((m) => m.type === 'step'), 'then only steps');
  const transitions = steps.flatMap((m) => m.transitions as Transition[]);
  const oldIds = zd.logs('ZD_WORKER_FORKED').filter((log) => log.generation === 1).map((log) => log.workerId);
  for (const id of oldIds) {
    assert.ok(
      transitions.some((t) => t.machine === 'worker' && t.id === id && t.to === 'draining'),
      `worker ${id} of generation 1 is seen entering draining`,
    );
  }
  assert.ok(transitions.some((t) => t.machine === 'worker' && t.to === 'booting.online'), 'a replacement is seen booting');
  assert.ok(transitions.some((t) => t.machine === 'rollout' && t.id === 2 && t.from === 'idle' && t.to === 'replacing'));
  assert.ok(transitions.some((t) => t.machine === 'rollout' && t.id === 2 && t.to === 'done'));
  assert.ok(steps.some((m) => (m.logs as Array<{ code: string }>).some((log) => log.code === 'ZD_RELOAD_DONE')));

  zd.signal('SIGTERM');
  const exit = await inspect.exited;
  assert.equal(exit.code, 1);
  assert.equal(inspect.stderr, "zd: 'ij' stopped: its control stream closed [ZD_E_NOT_RUNNING]\n");
  // Every line up to the end is one whole JSON object: nothing is cut or mixed in.
  for (const line of inspect.lines) JSON.parse(line);
  assert.ok(inspect.lines.some((line) => line.includes('"ZD_STOPPED"')), 'the steps of the stop are streamed too');
});

test('without a terminal it prints one plain line per step, the rollout included; Ctrl-C exits 0', async () => {
  const zd = await started('il');
  const inspect = startInspect(['il']);
  const snapshot = await inspect.waitForLine(/ snapshot /, 10_000, 'the snapshot line');
  assert.match(snapshot, /^\d\d:\d\d:\d\d\.\d{3} snapshot running, generation 1, 2\/2 ready; worker \d+: listening\.\w+, worker \d+: listening\.\w+; no rollout$/);
  zd.signal('SIGHUP');
  const start = await inspect.waitForLine(/ signal\.hup /, 10_000, 'the SIGHUP step');
  assert.match(start, /^\d\d:\d\d:\d\d\.\d{3} signal\.hup rollout 2: idle → replacing\b.*\[ZD_RELOAD_STARTED\b/);
  const done = await inspect.waitForLine(/rollout 2: replacing → done/, 15_000, 'the rollout done line');
  // The replacement counts once its min-ready period is over (a timer), or at its listening with none.
  assert.match(done, /^\d\d:\d\d:\d\d\.\d{3} (worker\.\w+|timer\.fired) .*worker \d+: (booting\.online|warming) → listening\.fresh.*\[.*ZD_RELOAD_DONE.*\]$/);
  await inspect.waitForLine(/worker \d+: draining → dead\.exited/, 5000, 'an old worker exiting after its drain');
  assert.ok(inspect.lines.every((line) => !line.includes('\x1b')), 'no escape sequences on a pipe');

  inspect.kill('SIGINT');
  const exit = await inspect.exited;
  assert.equal(exit.code, 0);
  assert.equal(inspect.stderr, '');
  assert.ok(zd.alive(), 'zd is not affected');
});

test('--machine prints a diagram offline: Mermaid with every state by default, or DOT, or SVG', () => {
  const worker = zdCli('inspect', '--machine', 'worker');
  assert.equal(worker.code, 0, worker.stderr);
  assert.match(worker.stdout, /^stateDiagram-v2\n/);
  const model = machineModel(MACHINES.worker);
  const ids = mermaidIds(model);
  for (const state of model.states) {
    assert.match(worker.stdout, new RegExp(`state "${state.key}" as ${ids.get(state.id)}\\b`), `declares ${state.id}`);
  }
  for (const key of ['forking', 'online', 'fresh', 'stable', 'draining', 'stopping', 'terminating', 'killing', 'exited', 'crashed']) {
    assert.match(worker.stdout, new RegExp(`"${key}"`));
  }

  const dot = zdCli('inspect', '--machine', 'rollout', '--format', 'dot');
  assert.equal(dot.code, 0, dot.stderr);
  assert.match(dot.stdout, /digraph "rollout" \{/);
  for (const state of ['idle', 'replacing', 'done', 'aborted']) assert.match(dot.stdout, new RegExp(`"rollout\\.${state}" \\[`));

  const svg = zdCli('inspect', '--machine', 'rollout', '--format', 'svg');
  assert.equal(svg.code, 0, svg.stderr);
  assert.match(svg.stdout, /<svg[\s\S]*<g id="rollout\.replacing" class="node state atomic">[\s\S]*<\/svg>\n$/);
});

test('bad command lines exit 2 with one line on stderr; no instance exits 1', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--bogus'], /Unknown option '--bogus'.*\[ZD_E_UNKNOWN_FLAG\]/],
    [['--machine', 'cluster'], /--machine 'cluster' is not a machine: use worker or rollout \[ZD_E_BAD_VALUE\]/],
    [['--machine', 'worker', '--format', 'png'], /--format 'png' is not one of mermaid, dot, svg \[ZD_E_BAD_VALUE\]/],
    [['--machine', 'worker', 'someapp'], /--machine prints a diagram offline: it takes no instance name \[ZD_E_USAGE\]/],
    [['--web', '--json'], /--web and --json cannot be combined.*\[ZD_E_USAGE\]/],
    [['--web', '--port', '65536'], /--port '65536' is not a port.*\[ZD_E_BAD_VALUE\]/],
    [['--web', '--port', 'http'], /--port 'http' is not a port.*\[ZD_E_BAD_VALUE\]/],
    [['--port', '8080'], /--port goes with --web \[ZD_E_USAGE\]/],
    [['--format', 'dot'], /--format goes with --machine \[ZD_E_USAGE\]/],
    [['one', 'two'], /zd inspect takes at most one instance name.*\[ZD_E_USAGE\]/],
  ];
  for (const [args, pattern] of cases) {
    const result = zdCli('inspect', ...args);
    assert.equal(result.code, 2, `zd inspect ${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stdout, '', `zd inspect ${args.join(' ')} prints nothing on stdout`);
    assert.equal(result.stderr.split('\n').length, 2, `one line: ${result.stderr}`);
    assert.match(result.stderr, new RegExp(`^zd: ${pattern.source}\\n$`));
  }
  const missing = zdCli('inspect', 'nosuch');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^zd: no zd instance named 'nosuch' is running .*\[ZD_E_NOT_RUNNING\]\n$/);
});
