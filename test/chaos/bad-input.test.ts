// Issue #7: bad input from every side: the command line, the config file and the control socket.
// Each is refused with one clear line on stderr (`zd: … [ZD_E_…]`, one per problem in a config
// file) and a documented exit code, and no process is left running; a bad control request gets an
// error reply with a ZD_E_ code and changes nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getJson } from '../helpers/http.ts';
import { freePort } from '../helpers/ports.ts';
import { fixturePath, fixturesDir } from '../helpers/tmp.ts';
import { sleep } from '../helpers/wait.ts';
import { assertAllDead, cleanup, fastFlags, runApp, startZd, testRuntimeDir, trackPid, zdBin, type Zd } from '../helpers/zd.ts';
import { ERROR_LINE, errorCode, isRoot, NOBODY, rawRequest, watchDescendants } from './harness.ts';

const dirs: string[] = [];
after(() => {
  cleanup();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'zd-chaos-input-'));
  dirs.push(dir);
  return dir;
}

const app = fixturePath('serve.cjs');

interface Case {
  name: string;
  args: string[];
  /** A zd.config.json (object: JSON-encoded; string: written as is) in the working directory. */
  config?: unknown;
  packageJson?: unknown;
  env?: Record<string, string>;
  code?: number;
  /** Every line must match ERROR_LINE; the whole of stderr must match this. */
  mentions: RegExp;
  lines?: number;
}

/** Runs zd to its exit; asserts the exit code, the stderr lines, and that nothing was forked or left. */
async function refused(c: Case): Promise<void> {
  const port = await freePort();
  let cwd: string | undefined;
  if (c.config !== undefined || c.packageJson !== undefined) {
    cwd = scratch();
    if (c.config !== undefined) writeFileSync(join(cwd, 'zd.config.json'), typeof c.config === 'string' ? c.config : JSON.stringify(c.config));
    if (c.packageJson !== undefined) writeFileSync(join(cwd, 'package.json'), JSON.stringify(c.packageJson));
  }
  const zd = startZd(c.args, { env: { PORT: String(port), WORKER_COUNT: '1', ...c.env }, ...(cwd ? { cwd } : {}) });
  const watch = watchDescendants(zd);
  const exit = await zd.waitForExit(8000).finally(() => watch.stop());
  assert.deepEqual(exit, { code: c.code ?? 2, signal: null }, zd.transcript());
  const lines = zd.stderr.trimEnd().split('\n');
  assert.equal(lines.length, c.lines ?? 1, `stderr:\n${zd.stderr}`);
  for (const line of lines) assert.match(line, ERROR_LINE);
  assert.match(zd.stderr, c.mentions);
  assert.deepEqual(watch.forks(), [], 'nothing was forked');
  await assertAllDead([zd.pid, ...watch.seen], 1000);
  if (c.args[0] === 'run') await assert.rejects(getJson(port, '/', 300), 'nothing listens on PORT');
}

const run = (...args: string[]) => ['run', app, ...args];

const commandLine: Case[] = [
  { name: 'an unknown long flag', args: run('--bogus'), mentions: /'--bogus'.*\[ZD_E_UNKNOWN_FLAG\]/ },
  { name: 'an unknown short flag', args: run('-x'), mentions: /'-x'.*\[ZD_E_UNKNOWN_FLAG\]/ },
  { name: 'a stray second positional', args: run('extra'), mentions: /unexpected argument 'extra' .*after --.*\[ZD_E_USAGE\]/ },
  { name: 'a negative worker count', args: run('-w', '-3'), mentions: /-w.*'-3'.*\[ZD_E_BAD_WORKERS\]/ },
  { name: 'a huge worker count (1025)', args: run('-w', '1025'), mentions: /from 1 to 1024, not '1025'.*\[ZD_E_BAD_WORKERS\]/ },
  { name: 'a worker count past 2^53', args: run('-w', '99999999999999999999'), mentions: /'99999999999999999999'.*\[ZD_E_BAD_WORKERS\]/ },
  { name: 'a fractional worker count', args: run('-w', '2.5'), mentions: /'2\.5'.*\[ZD_E_BAD_WORKERS\]/ },
  { name: 'a hexadecimal worker count', args: run('-w', '0x10'), mentions: /'0x10'.*\[ZD_E_BAD_WORKERS\]/ },
  { name: 'an exponent worker count', args: run('-w', '1e3'), mentions: /'1e3'.*\[ZD_E_BAD_WORKERS\]/ },
  { name: 'an empty worker count', args: run('-w', ''), mentions: /not ''.*\[ZD_E_BAD_WORKERS\]/ },
  { name: 'WORKER_COUNT that is not a number', args: run(), env: { WORKER_COUNT: 'lots' }, mentions: /WORKER_COUNT.*'lots'.*\[ZD_E_BAD_WORKERS\]/ },
  { name: 'a negative duration', args: run('--drain-timeout', '-5s'), mentions: /--drain-timeout '-5s' is not a duration.*\[ZD_E_BAD_DURATION\]/ },
  { name: 'a duration with a space', args: run('--drain-timeout', '5 s'), mentions: /'5 s' is not a duration.*\[ZD_E_BAD_DURATION\]/ },
  { name: 'a duration in days (no such unit)', args: run('--kill-timeout', '2d'), mentions: /--kill-timeout '2d'.*\[ZD_E_BAD_DURATION\]/ },
  { name: "a duration past setTimeout's ceiling", args: run('--drain-timeout', '1000h'), mentions: /'1000h'.*\[ZD_E_BAD_DURATION\]/ },
  { name: 'a zero ready timeout', args: run('--ready-timeout', '0'), mentions: /--ready-timeout must be at least 1ms.*\[ZD_E_BAD_DURATION\]/ },
  { name: 'a heartbeat interval under 100ms', args: run('--heartbeat-interval', '10ms'), mentions: /--heartbeat-interval must be at least 100ms.*\[ZD_E_BAD_DURATION\]/ },
  { name: 'a memory limit below what node needs', args: run('--max-memory', '1K'), mentions: /--max-memory .*16M at least.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'a size in an unknown unit', args: run('--max-memory', '10Q'), mentions: /'10Q' is not a size.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'a port over 65535', args: run('--health-port', '70000'), mentions: /--health-port must be a whole number from 1 to 65535, not '70000'.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'port 0', args: run('--metrics-port', '0'), mentions: /--metrics-port .*not '0'.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'a port that is a word', args: run('--metrics-port', 'http'), mentions: /'http'.*\[ZD_E_BAD_VALUE\]/ },
  { name: '--max-surge 0 with --max-unavailable 0', args: run('--max-surge', '0', '--max-unavailable', '0'), mentions: /cannot both be 0.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'an unknown --log-format', args: run('--log-format', 'xml'), mentions: /one of json, pretty, not 'xml'.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'an unknown --sched', args: run('--sched', 'fifo'), mentions: /one of rr, none, reuseport, not 'fifo'.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'an empty --name', args: run('--name', ''), mentions: /--name needs a value.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'a 65-character --name', args: run('--name', 'n'.repeat(65)), mentions: /--name .* must be 1-64 letters.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'an empty --health-host', args: run('--health-host', ' '), mentions: /--health-host needs a value.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'a missing app file', args: ['run', '/nonexistent/zd-chaos/app.js'], mentions: /app file not found: \/nonexistent\/zd-chaos\/app\.js.*\[ZD_E_APP_MISSING\]/ },
  { name: 'a directory as the app', args: ['run', fixturesDir], mentions: /app must be a file.*fixtures.*\[ZD_E_APP_NOT_FILE\]/ },
  { name: 'a --config file that does not exist', args: run('--config', '/nonexistent/zd.json'), mentions: /config file not found: \/nonexistent\/zd\.json.*\[ZD_E_CONFIG\]/ },
  { name: 'a directory as --config', args: run('--config', fixturesDir), mentions: /not valid JSON \(EISDIR.*\[ZD_E_CONFIG\]/ },
  { name: 'zd status with two names', args: ['status', 'a', 'b'], mentions: /at most one instance name.*\[ZD_E_USAGE\]/ },
  { name: 'zd status with an unknown flag', args: ['status', '--bogus'], mentions: /'--bogus'.*\[ZD_E_UNKNOWN_FLAG\]/ },
  { name: 'zd reload --wait with a malformed --timeout', args: ['reload', '--wait', '--timeout', '5x'], mentions: /--timeout '5x' is not a duration.*\[ZD_E_BAD_DURATION\]/ },
  { name: 'zd reload --timeout without --wait', args: ['reload', '--timeout', '5s'], mentions: /--timeout goes with --wait.*\[ZD_E_USAGE\]/ },
  // Issues #10, #14, #15.
  { name: 'a malformed --min-ready', args: run('--min-ready', '5 parsecs'), mentions: /--min-ready '5 parsecs' is not a duration.*\[ZD_E_BAD_DURATION\]/ },
  { name: 'a malformed --canary', args: run('--canary', 'soon'), mentions: /--canary 'soon' is not a duration.*\[ZD_E_BAD_DURATION\]/ },
  { name: 'a negative --canary-max-errors', args: run('--canary-max-errors', '-1'), mentions: /--canary-max-errors must be a number from 0 to 100, not '-1'.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'a --canary-max-latency below 1', args: run('--canary-max-latency', '0.5'), mentions: /--canary-max-latency must be a number from 1 to 1000, not '0.5'.*\[ZD_E_BAD_VALUE\]/ },
  { name: 'zd scale without a count', args: ['scale'], mentions: /give a worker count.*\[ZD_E_USAGE\]/ },
  { name: 'zd scale with a word', args: ['scale', 'many'], mentions: /'many' is not a worker count.*\[ZD_E_BAD_WORKERS\]/ },
  { name: 'zd scale with a flag', args: ['scale', '--now', '3'], mentions: /takes no option '--now'.*\[ZD_E_UNKNOWN_FLAG\]/ },
  { name: 'zd rollback with an unknown flag', args: ['rollback', '--fast'], mentions: /'--fast'.*\[ZD_E_UNKNOWN_FLAG\]/ },
];

const configFile: Case[] = [
  // (On the command line, node itself checks that an --env-file exists, wherever the flag stands,
  // and fails with its own line and exit 9 before zd runs: see docs/cli.md.)
  { name: 'an envFile that does not exist', args: ['run', app], config: { envFile: '/nonexistent/.env' }, mentions: /\/nonexistent\/\.env: cannot read the env file \(ENOENT\).*\[ZD_E_CONFIG\]/ },
  { name: 'an env file with a bad line', args: ['run', app], config: { envFile: fixturePath('bad.env') }, mentions: /bad\.env:2: expected KEY=VALUE.*\[ZD_E_CONFIG\]/ },
  { name: 'malformed JSON', args: ['run'], config: '{ "workers": 2,', mentions: /zd\.config\.json: not valid JSON.*\[ZD_E_CONFIG\]/ },
  { name: 'an empty file', args: ['run'], config: '', mentions: /zd\.config\.json: not valid JSON.*\[ZD_E_CONFIG\]/ },
  { name: 'an array', args: ['run'], config: [1, 2], mentions: /zd\.config\.json: must be a JSON object of settings.*\[ZD_E_CONFIG\]/ },
  { name: 'null', args: ['run'], config: 'null', mentions: /must be a JSON object of settings.*\[ZD_E_CONFIG\]/ },
  { name: 'a number as a string', args: ['run'], config: { app, workers: '4' }, mentions: /"workers" must be a whole number, not "4".*\[ZD_E_CONFIG\]/ },
  { name: 'a boolean duration', args: ['run'], config: { app, drainTimeout: true }, mentions: /"drainTimeout" must be a duration.*not true.*\[ZD_E_CONFIG\]/ },
  { name: 'args as a string', args: ['run'], config: { app, args: '--port 1' }, mentions: /"args" must be an array of strings.*\[ZD_E_CONFIG\]/ },
  { name: 'app as a number', args: ['run'], config: { app: 42 }, mentions: /"app" must be a path to the app file.*\[ZD_E_CONFIG\]/ },
  { name: 'an unknown key', args: ['run'], config: { app, wrokers: 2 }, mentions: /unknown key "wrokers" \(known: app, args, workers,.*\[ZD_E_CONFIG\]/ },
  { name: 'a "__proto__" key (no prototype pollution)', args: ['run'], config: '{"app":' + JSON.stringify(app) + ',"__proto__":{"workers":1000}}', mentions: /unknown key "__proto__".*\[ZD_E_CONFIG\]/ },
  { name: '0 workers', args: ['run'], config: { app, workers: 0 }, mentions: /"workers" must be a whole number from 1 to 1024, not '0'.*\[ZD_E_CONFIG\]/ },
  { name: 'a fractional worker count', args: ['run'], config: { app, workers: 1.5 }, mentions: /"workers" .*not '1\.5'.*\[ZD_E_CONFIG\]/ },
  { name: 'negative maxRestarts', args: ['run'], config: { app, maxRestarts: -1 }, mentions: /"maxRestarts" .*not '-1'.*\[ZD_E_CONFIG\]/ },
  { name: 'a port out of range', args: ['run'], config: { app, healthPort: 70000 }, mentions: /"healthPort" .*not '70000'.*\[ZD_E_CONFIG\]/ },
  { name: 'a duration past the ceiling', args: ['run'], config: { app, drainTimeout: 1e10 }, mentions: /"drainTimeout" '10000000000' is not a duration.*\[ZD_E_CONFIG\]/ },
  { name: 'a name with a path in it', args: ['run'], config: { app, name: '../../tmp/evil' }, mentions: /--name '\.\.\/\.\.\/tmp\/evil' must be 1-64 letters.*\[ZD_E_CONFIG\]/ },
  { name: 'a "zd" key in package.json that is not an object', args: ['run', app], packageJson: { name: 'x', zd: 'fast' }, mentions: /package\.json "zd": must be a JSON object.*\[ZD_E_CONFIG\]/ },
  {
    name: 'three problems at once: one line each',
    args: ['run'],
    config: { app, wrokers: 2, killTimeout: 'soon', sched: 'fifo' },
    lines: 3,
    mentions: /unknown key "wrokers"[\s\S]*"killTimeout" 'soon' is not a duration[\s\S]*"sched" must be one of rr, none/,
  },
];

describe('bad command lines: exit 2, one line on stderr, nothing forked', { concurrency: 3 }, () => {
  const shown = (args: string[]) => args.filter((a) => a !== app).map((a) => (a.length > 40 ? `${a.slice(0, 3)}…` : a.replace(fixturesDir, 'test/fixtures/'))).join(' ');
  for (const c of commandLine) test(`${c.name} (zd ${shown(c.args)})`, () => refused(c));
});

describe('bad config files: exit 2, one line per problem, nothing forked', { concurrency: 3 }, () => {
  for (const c of configFile) test(c.name, () => refused(c));
});

test('zd with no arguments: exit 2 and one line on stderr, as for every bad command line', async () => {
  await refused({ name: 'no arguments', args: [], mentions: /\[ZD_E_USAGE\]/ });
});

test('an app file that is not JavaScript: node throws a SyntaxError on load, zd exits 1 with ZD_BOOT_FAILED quoting it, nothing left', async () => {
  const file = join(scratch(), 'notes.js');
  writeFileSync(file, 'These are my notes, not a program.\n');
  const port = await freePort();
  const zd = runApp(file, ['-w', '2', ...fastFlags], { env: { PORT: String(port) } });
  const watch = watchDescendants(zd);
  const exit = await zd.waitForExit(8000).finally(() => watch.stop());
  assert.equal(exit.code, 1, zd.transcript());
  const failed = await zd.waitForLog('ZD_BOOT_FAILED', undefined, 100);
  assert.equal(failed.reason, 'exited with code 1');
  assert.match(String(failed.stderr), /SyntaxError/);
  assert.equal(zd.logs('ZD_WORKER_READY').length, 0);
  await assertAllDead([zd.pid, ...zd.workerPids(), ...watch.seen], 2000);
});

test('an app file its user cannot read (zd run as uid 65534 on a 0600 root file): exit 2, one line (ZD_E_APP_UNREADABLE)', { skip: !isRoot && 'needs root to run as another user' }, async () => {
  // As root, chmod 000 is still readable: run zd itself as another user.
  const dir = scratch();
  chmodSync(dir, 0o755);
  const file = join(dir, 'secret.cjs');
  writeFileSync(file, "require('node:http').createServer().listen(0);\n", { mode: 0o600 });
  const runtime = join(dir, 'rt');
  mkdirSync(runtime, { mode: 0o700 });
  const child = spawn(process.execPath, [zdBin, 'run', file, '-w', '1'], {
    uid: NOBODY,
    gid: NOBODY,
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, ZD_RUNTIME_DIR: runtime, HOME: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackPid(child.pid);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 2, stderr);
  assert.equal(stderr.trimEnd().split('\n').length, 1, stderr);
  assert.match(stderr.trimEnd(), ERROR_LINE);
  assert.match(stderr, /app file is not readable: .*secret\.cjs \[ZD_E_APP_UNREADABLE\]/);
});

describe('bad control-socket requests: an error reply with a ZD_E_ code; the primary carries on unchanged', () => {
  let zd: Zd;
  let socket: string;
  let workers: number[];

  before(async () => {
    const port = await freePort();
    zd = runApp(app, ['-w', '2', '--name', 'chaos-proto', ...fastFlags], { env: { PORT: String(port) } });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    socket = join(testRuntimeDir, 'chaos-proto.sock');
    workers = zd.workerPids();
  });

  const replies: Array<[string, string, string]> = [
    ['text that is not JSON', 'hello zd\n', 'ZD_E_BAD_JSON'],
    ['bytes that are not UTF-8', '\u00ff\u00fe{\n', 'ZD_E_BAD_JSON'],
    ['a JSON array', '["status"]\n', 'ZD_E_BAD_REQUEST'],
    ['JSON null', 'null\n', 'ZD_E_BAD_REQUEST'],
    ['a JSON string', '"status"\n', 'ZD_E_BAD_REQUEST'],
    ['an object without "cmd"', '{"command":"status"}\n', 'ZD_E_BAD_REQUEST'],
    ['a "cmd" that is not a string', '{"cmd":["status"]}\n', 'ZD_E_BAD_REQUEST'],
    ['an unknown command', '{"cmd":"exec","argv":["sh","-c","id"]}\n', 'ZD_E_UNKNOWN_COMMAND'],
    ['"__proto__" as the command', '{"cmd":"__proto__"}\n', 'ZD_E_UNKNOWN_COMMAND'],
    ['"constructor" as the command', '{"cmd":"constructor"}\n', 'ZD_E_UNKNOWN_COMMAND'],
    ['a reload with "wait": "yes"', '{"cmd":"reload","wait":"yes"}\n', 'ZD_E_BAD_REQUEST'],
    ['a stop with an extra field', '{"cmd":"stop","force":true}\n', 'ZD_E_BAD_REQUEST'],
  ];
  for (const [name, payload, code] of replies) {
    test(`${name} → ${code}`, async () => {
      const { replies: got } = await rawRequest(socket, Buffer.from(payload, name.includes('UTF-8') ? 'latin1' : 'utf8'), { replies: 1 });
      assert.equal(got.length, 1, JSON.stringify(got));
      assert.equal(got[0]!.ok, false);
      assert.equal(errorCode(got[0]), code, JSON.stringify(got[0]));
      assert.equal(typeof (got[0]!.error as { message?: unknown }).message, 'string');
    });
  }

  test('a 100 KB request with no newline → ZD_E_TOO_LARGE, and the server closes the connection', async () => {
    const got = await rawRequest(socket, `{"cmd":"status","x":"${'a'.repeat(100_000)}`);
    assert.equal(errorCode(got.replies[0]), 'ZD_E_TOO_LARGE');
    assert.ok(got.closedByServer, 'closed by the server');
  });

  test(
    'a 70 KB request line ending in a newline → ZD_E_TOO_LARGE, and the server closes the connection',
    
    async () => {
      const got = await rawRequest(socket, `{"cmd":"status"${' '.repeat(70_000)}}\n`);
      assert.equal(errorCode(got.replies[0]), 'ZD_E_TOO_LARGE', JSON.stringify(got.replies[0]).slice(0, 200));
      assert.ok(got.closedByServer, 'closed by the server');
    },
  );

  test('after all of that: zd runs, the same workers serve, nothing was reloaded or stopped', async () => {
    await sleep(100);
    assert.ok(zd.alive());
    assert.deepEqual(zd.workerPids(), workers);
    for (const code of ['ZD_RELOAD_STARTED', 'ZD_RELOAD_QUEUED', 'ZD_SHUTDOWN', 'ZD_WORKER_EXITED']) assert.equal(zd.logs(code).length, 0, code);
    const { replies: ok } = await rawRequest(socket, '{"cmd":"status"}\n', { replies: 1 });
    assert.equal(ok[0]!.ok, true);
  });
});
