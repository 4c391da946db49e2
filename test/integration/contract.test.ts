// Issue #6: what examples/docker, examples/kubernetes and examples/systemd rely on zd for, checked
// with real processes. There is no Docker engine or kubelet here, so the Docker example is run the
// way a container runs it: its own ENTRYPOINT, CMD and HEALTHCHECK, on the layout its COPY lines
// build, as PID 1 of a new PID namespace (`unshare --pid`; skipped where that is not allowed).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, test } from 'node:test';
import { parseRunArgs } from '../../src/cli/run-options.ts';
import { describeFailures, distinctPids, getJson, poller } from '../helpers/http.ts';
import { trackGroup } from '../helpers/pids.ts';
import { freePort, otherAddress } from '../helpers/ports.ts';
import { fixturePath } from '../helpers/tmp.ts';
import { sleep, waitUntil } from '../helpers/wait.ts';
import {
  assertAllDead,
  cleanup,
  descendants,
  fastFlags,
  repoRoot,
  runApp,
  testRuntimeDir,
  timeOf,
  trackPid,
  zdBin,
  type Exit,
  type ZdLog,
} from '../helpers/zd.ts';

const examples = join(repoRoot, 'examples');
const scratch: string[] = [];
const stops: Array<() => void> = [];

afterEach(() => {
  for (const stop of stops.splice(0)) stop();
  cleanup();
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'zd-contract-'));
  scratch.push(dir);
  return dir;
}

// -- small tools ---------------------------------------------------------------------------------

interface Reply {
  status: number;
  body: string;
}

/** One GET on a fresh connection, any body (the health server answers text). */
function probe(port: number, path: string, host = '127.0.0.1', timeoutMs = 1000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = get({ host, port, path, agent: false, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(Object.assign(new Error(`no answer within ${timeoutMs}ms`), { code: 'ETIMEOUT' })));
    request.on('error', reject);
  });
}

/** Asks `path` every `intervalMs` until stopped; every status (or error code) with its time. */
function statusPoller(port: number, path: string, intervalMs: number) {
  const seen: Array<{ at: number; status: number | string }> = [];
  let stopping = false;
  const started = Date.now();
  const loop = (async () => {
    while (!stopping) {
      try {
        seen.push({ at: Date.now() - started, status: (await probe(port, path)).status });
      } catch (error) {
        seen.push({ at: Date.now() - started, status: (error as NodeJS.ErrnoException).code ?? 'ERROR' });
      }
      await sleep(intervalMs);
    }
  })();
  const stop = () => (stopping = true);
  stops.push(stop);
  return {
    seen,
    async stop() {
      stop();
      await loop;
      return seen;
    },
  };
}

function procStat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: state!, ppid: Number(ppid) };
  } catch {
    return undefined;
  }
}

/** Children of `parent` that have exited and that nobody has waited for. */
function zombieChildren(parent: number): number[] {
  return descendants(parent).filter((pid) => {
    const stat = procStat(pid);
    return stat?.state === 'Z' && stat.ppid === parent;
  });
}

/**
 * A process that is not spawned by the harness's `runApp` (a shell, `unshare`) but whose stderr
 * carries zd's log lines. Pids in those lines are tracked for cleanup only when they are host pids:
 * inside a PID namespace they are not, and killing "pid 3" on the host would be a disaster.
 */
class Logged {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly lines: string[] = [];
  readonly entries: ZdLog[] = [];
  exitStatus: Exit | undefined;
  readonly exited: Promise<Exit>;
  private partial = '';

  constructor(command: string, args: string[], options: { cwd?: string; env?: Record<string, string>; hostPids: boolean }) {
    const env: Record<string, string | undefined> = { ...process.env, ZD_RUNTIME_DIR: testRuntimeDir, ...options.env };
    delete env.NODE_TEST_CONTEXT;
    this.child = spawn(command, args, { cwd: options.cwd ?? repoRoot, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    if (this.child.pid === undefined) throw new Error(`could not spawn ${command}`);
    this.pid = this.child.pid;
    trackPid(this.pid);
    trackGroup(this.pid);
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop()!;
      for (const line of parts) this.onLine(line, options.hostPids);
    });
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      }),
    );
  }

  private onLine(line: string, hostPids: boolean): void {
    this.lines.push(line);
    if (!line.startsWith('{')) return;
    try {
      const log = JSON.parse(line) as ZdLog;
      if (log.name !== 'zd') return;
      if (hostPids && typeof log.pid === 'number') trackPid(log.pid);
      this.entries.push(log);
    } catch {
      // A worker's own line that only looks like JSON.
    }
  }

  logs(code: string, since = 0): ZdLog[] {
    return this.entries.slice(since).filter((log) => log.code === code);
  }

  waitForLog(code: string, predicate: (log: ZdLog) => boolean = () => true, timeoutMs = 10_000, since = 0): Promise<ZdLog> {
    return waitUntil(
      () => {
        const found = this.logs(code, since).find(predicate);
        if (found) return found;
        if (this.exitStatus) throw new Error(`exited (${JSON.stringify(this.exitStatus)}) before ${code}`);
        return undefined;
      },
      timeoutMs,
      () => `${code}\n${this.transcript()}`,
    );
  }

  waitForExit(timeoutMs: number): Promise<Exit> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs}ms\n${this.transcript()}`)), timeoutMs);
      void this.exited.then((exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
  }

  transcript(): string {
    return ['--- stderr:', ...this.lines.slice(-40), '---'].join('\n');
  }
}

// -- what the examples say -----------------------------------------------------------------------

interface Stage {
  name: string | null;
  workdir: string;
  env: Record<string, string>;
  copies: Array<{ from: string | null; sources: string[]; dest: string }>;
  /** The last ENTRYPOINT, CMD, HEALTHCHECK, STOPSIGNAL… of the stage, as written. */
  last: Map<string, string>;
}

/** Just enough of a Dockerfile reader for this example: stages, WORKDIR, ENV, COPY and the rest. */
function readDockerfile(): { text: string; stages: Stage[] } {
  const text = readFileSync(join(examples, 'docker', 'Dockerfile'), 'utf8');
  const stages: Stage[] = [];
  for (const raw of text.replace(/\\\r?\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [, keyword, rest] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    if (keyword === undefined || rest === undefined) continue;
    const op = keyword.toUpperCase();
    if (op === 'FROM') {
      stages.push({ name: /\sAS\s+(\S+)/i.exec(rest)?.[1] ?? null, workdir: '/', env: {}, copies: [], last: new Map() });
      continue;
    }
    const stage = stages.at(-1)!;
    if (op === 'WORKDIR') stage.workdir = rest;
    else if (op === 'ENV') for (const pair of rest.split(/\s+/)) stage.env[pair.split('=')[0]!] = pair.slice(pair.indexOf('=') + 1);
    else if (op === 'COPY') {
      const words = rest.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length) ?? null;
      const paths = words.filter((w) => !w.startsWith('--'));
      stage.copies.push({ from, sources: paths.slice(0, -1), dest: paths.at(-1)! });
    } else stage.last.set(op, rest);
  }
  return { text, stages };
}

/** The exec form (`["a", "b"]`) of ENTRYPOINT or CMD, or of HEALTHCHECK's CMD; null for a shell form. */
function execForm(rest: string | undefined): string[] | null {
  const json = /^(?:(?:--\S+\s+)*CMD\s+)?(\[.*\])\s*$/.exec(rest?.trim() ?? '')?.[1];
  return json === undefined ? null : (JSON.parse(json) as string[]);
}

/** `zd run` argv (after `run`) as zd parses it, with the app path swapped for a fixture that exists. */
function parseZdRun(argv: string[]) {
  const [, ...flags] = argv;
  return parseRunArgs([fixturePath('serve.cjs'), ...flags], {}, scratchDir());
}

function zdRunArgv(command: string[]): string[] {
  const run = command.indexOf('run');
  assert.ok(run > 0 && command[run - 1]!.endsWith('bin/zd.js'), `not a zd run command: ${command.join(' ')}`);
  return command.slice(run + 1);
}

function seconds(value: string): number {
  const match = /^(\d+)(s|min)?$/.exec(value.trim());
  assert.ok(match, `not a whole number of seconds: ${value}`);
  return Number(match[1]) * (match[2] === 'min' ? 60 : 1);
}

function stopBudgetMs(config: { shutdownDelayMs: number; drainTimeoutMs: number; killTimeoutMs: number }): number {
  return config.shutdownDelayMs + config.drainTimeoutMs + config.killTimeoutMs;
}

/** The `unshare` command that makes a PID namespace here (as root, or in a user namespace), or null. */
function unsharePrefix(): string[] | null {
  for (const prefix of [['unshare', '--pid', '--fork', '--kill-child'], ['unshare', '--user', '--map-root-user', '--pid', '--fork', '--kill-child']]) {
    if (spawnSync(prefix[0]!, [...prefix.slice(1), 'true'], { timeout: 5000 }).status === 0) return prefix;
  }
  return null;
}
const pidNamespace = process.platform === 'linux' ? unsharePrefix() : null;
const noNamespace = pidNamespace === null ? 'cannot create a PID namespace here (unshare --pid)' : false;

/** The host pid of the namespace's PID 1: `unshare`'s only child. */
async function namespaceInit(outer: Logged): Promise<number> {
  const init = await waitUntil(() => descendants(outer.pid)[0], 5000, 'the PID namespace to have its PID 1');
  trackPid(init);
  assert.equal(namespacePid(init), 1, `pid ${init} is PID 1 in its namespace`);
  return init;
}

/** A host pid's pid in the innermost PID namespace it belongs to. */
function namespacePid(hostPid: number): number | undefined {
  try {
    const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${hostPid}/status`, 'utf8'))?.[1]?.trim().split(/\s+/);
    return nspid === undefined ? undefined : Number(nspid.at(-1));
  } catch {
    return undefined;
  }
}

/** Host pids of the workers zd (PID 1 at host pid `init`) logged, by their namespace pids. */
function hostWorkerPids(container: Logged, init: number): number[] {
  const logged = new Set(container.logs('ZD_WORKER_FORKED').map((log) => log.pid as number));
  const found = descendants(init).filter((pid) => logged.has(namespacePid(pid) ?? -1));
  for (const pid of found) trackPid(pid);
  return found;
}

// -- the examples' numbers -----------------------------------------------------------------------

test('Dockerfile: exec-form ENTRYPOINT into zd run, STOPSIGNAL SIGTERM, HEALTHCHECK on /readyz, stop timeout covers the drain', () => {
  const { text, stages } = readDockerfile();
  const image = stages.at(-1)!;
  const entrypoint = execForm(image.last.get('ENTRYPOINT'));
  const cmd = execForm(image.last.get('CMD'));
  assert.ok(entrypoint && cmd, 'ENTRYPOINT and CMD are JSON arrays: no /bin/sh -c between Docker and zd');
  assert.equal(entrypoint[0], 'node', 'node itself is PID 1');
  assert.equal(image.last.get('STOPSIGNAL'), 'SIGTERM');

  const options = parseZdRun(zdRunArgv([...entrypoint, ...cmd]));
  assert.equal(options.shell.logFormat, 'json', 'a TTY (docker run -it) must not make zd load pino-pretty, absent from the image');
  assert.ok(options.shell.healthPort !== null, 'the image serves /readyz');
  const healthcheck = execForm(image.last.get('HEALTHCHECK'));
  assert.ok(healthcheck, 'HEALTHCHECK CMD in exec form');
  assert.match(healthcheck.join(' '), new RegExp(`127\\.0\\.0\\.1:${options.shell.healthPort}/readyz`));

  const sent = readFileSync(join(examples, 'docker', 'Dockerfile.dockerignore'), 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('!'))
    .map((line) => line.slice(1).trim());
  for (const copy of stages.flatMap((stage) => stage.copies).filter((c) => c.from === null)) {
    for (const source of copy.sources) assert.ok(sent.includes(source), `COPY ${source}: not in the build context (Dockerfile.dockerignore)`);
  }

  // `docker stop` waits 10 s by default: the `docker run --stop-timeout` shown must cover zd's longest stop.
  const stopTimeout = Number(/--stop-timeout (\d+)/.exec(text)?.[1]);
  assert.ok(stopTimeout * 1000 >= stopBudgetMs(options.config) + 1000, `--stop-timeout ${stopTimeout}s < ${stopBudgetMs(options.config)}ms + 1s`);
});

test('Kubernetes: args parse on top of the image, health on 0.0.0.0, probes on its port, grace period covers the stop', () => {
  const { stages } = readDockerfile();
  const entrypoint = execForm(stages.at(-1)!.last.get('ENTRYPOINT'))!;
  const yaml = readFileSync(join(examples, 'kubernetes', 'deployment.yaml'), 'utf8');
  const args = JSON.parse(/^\s*args:\s*(\[.*\])\s*$/m.exec(yaml)![1]!) as string[];
  const options = parseZdRun(zdRunArgv([...entrypoint, ...args]));
  assert.equal(options.shell.healthHost, '0.0.0.0', 'the kubelet probes through the pod IP');
  assert.ok(options.config.shutdownDelayMs > 0, 'a shutdown delay instead of a preStop sleep');

  const healthPort = Number(/name: health, containerPort: (\d+)/.exec(yaml)?.[1]);
  assert.equal(healthPort, options.shell.healthPort);
  assert.match(yaml, /readinessProbe:\s*\n\s*httpGet: \{ path: \/readyz, port: health \}/);
  assert.match(yaml, /livenessProbe:\s*\n\s*httpGet: \{ path: \/livez, port: health \}/);
  assert.match(yaml, /maxUnavailable: 0/);

  const grace = Number(/terminationGracePeriodSeconds: (\d+)/.exec(yaml)?.[1]) * 1000;
  const budget = stopBudgetMs(options.config);
  assert.ok(grace >= budget + 1000, `terminationGracePeriodSeconds ${grace}ms < ${budget}ms + 1s: the kubelet would SIGKILL a draining pod`);
});

test('systemd: ExecStart parses, KillMode=mixed, HUP reload, on-failure restart, TimeoutStopSec covers the stop', () => {
  const unit = readFileSync(join(examples, 'systemd', 'zd-app.service'), 'utf8');
  const setting = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1]?.trim();
  const execStart = setting('ExecStart')!.split(/\s+/);
  assert.equal(execStart[0], '/usr/bin/node');
  const options = parseZdRun(zdRunArgv(execStart));
  assert.equal(setting('KillMode'), 'mixed', 'SIGTERM to zd only, SIGKILL to the whole cgroup at the end');
  assert.equal(setting('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(setting('Restart'), 'on-failure');
  assert.equal(setting('SuccessExitStatus'), undefined, 'zd exits 0 on SIGTERM: nothing to add');
  const stop = seconds(setting('TimeoutStopSec')!) * 1000;
  assert.ok(stop >= stopBudgetMs(options.config) + 1000, `TimeoutStopSec ${stop}ms < ${stopBudgetMs(options.config)}ms + 1s`);
});

// -- 1. SIGTERM ----------------------------------------------------------------------------------

test('SIGTERM (docker stop, the kubelet, systemctl stop): exit 0 and no worker left', async () => {
  const port = await freePort();
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', ...fastFlags], { env: { PORT: String(port) } });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  await distinctPids(port, 2, 5000);
  const tree = zd.treePids();
  zd.signal('SIGTERM');
  assert.deepEqual(await zd.waitForExit(8000), { code: 0, signal: null }, zd.transcript());
  await assertAllDead(tree, 300);
  assert.deepEqual(
    zd.logs('ZD_WORKER_EXITED').map((log) => log.outcome),
    ['exited', 'exited'],
    'each worker drained and exited by itself',
  );
});

// -- 2. health endpoints and --shutdown-delay ---------------------------------------------------

test('--health-port: /livez and /readyz 200; on SIGTERM /readyz 503 at once, the app serves through --shutdown-delay, then drains', async () => {
  const [port, health] = [await freePort(), await freePort()];
  const zd = runApp(fixturePath('serve.cjs'), ['-w', '2', '--health-port', String(health), '--shutdown-delay', '1s', ...fastFlags], {
    env: { PORT: String(port) },
  });
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  assert.equal((await probe(health, '/livez')).status, 200);
  const ready = await probe(health, '/readyz');
  assert.equal(ready.status, 200, ready.body);
  const tree = zd.treePids();

  const sent = Date.now();
  zd.signal('SIGTERM');
  const { first503 } = await waitUntil(
    async () => (await probe(health, '/readyz')).status === 503 && { first503: Date.now() - sent },
    1000,
    '/readyz 503',
    0,
  );
  assert.ok(first503 <= 100, `/readyz turned 503 ${first503}ms after SIGTERM`);

  // The delay: readiness fails, liveness holds, and the app still answers every request.
  let answered = 0;
  while (Date.now() - sent < 800) {
    const reply = await getJson(port, '/', 1000);
    assert.equal(reply.status, 200);
    assert.equal((await probe(health, '/livez')).status, 200, 'alive while stopping: no liveness restart mid-drain');
    assert.equal((await probe(health, '/readyz')).status, 503);
    answered++;
    await sleep(50);
  }
  assert.ok(answered >= 5, `${answered} requests answered during the delay`);
  assert.equal(zd.logs('ZD_WORKER_DRAINING').length, 0, `a worker drained within the delay\n${zd.transcript()}`);

  const drains = await zd.waitForLogs('ZD_WORKER_DRAINING', 2, undefined, 3000);
  const shutdown = zd.logs('ZD_SHUTDOWN')[0]!;
  for (const drain of drains) {
    assert.ok(timeOf(drain) - timeOf(shutdown) >= 950, `drained ${timeOf(drain) - timeOf(shutdown)}ms after ZD_SHUTDOWN`);
    assert.ok(timeOf(drain) - sent >= 950, `drained ${timeOf(drain) - sent}ms after SIGTERM was sent`);
  }
  assert.deepEqual(await zd.waitForExit(8000), { code: 0, signal: null }, zd.transcript());
  await assertAllDead(tree, 300);
});

// -- 3. SIGHUP -----------------------------------------------------------------------------------

for (const workers of [1, 2]) {
  test(`SIGHUP (ExecReload=kill -HUP) with -w ${workers}: rolling restart, /readyz never leaves 200`, async () => {
    const [port, health] = [await freePort(), await freePort()];
    const zd = runApp(fixturePath('serve.cjs'), ['-w', String(workers), '--health-port', String(health), ...fastFlags], {
      env: { PORT: String(port) },
    });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    const readiness = statusPoller(health, '/readyz', 20);
    const client = poller(port, { intervalMs: 20, maxMs: 15_000 });
    await sleep(100);

    const mark = zd.mark();
    zd.signal('SIGHUP');
    await zd.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === 2, 10_000, mark);
    await zd.waitForLogs('ZD_WORKER_EXITED', workers, undefined, 5000, mark);
    await sleep(100);
    const seen = await readiness.stop();
    const report = await client.stop();

    const bad = seen.filter((s) => s.status !== 200);
    assert.deepEqual(bad, [], `/readyz during the reload (${seen.length} probes)`);
    assert.ok(seen.length >= 10, `${seen.length} readiness probes`);
    assert.equal(report.failures.length, 0, describeFailures(report.failures));
    assert.deepEqual([...report.generations].sort(), ['1', '2']);

    zd.signal('SIGTERM');
    assert.equal((await zd.waitForExit(8000)).code, 0, zd.transcript());
  });
}

// -- 4. the exit codes a supervisor acts on ------------------------------------------------------

test('an app that cannot start: exit 1 (systemd Restart=on-failure restarts it), nothing left', async () => {
  const [port, health] = [await freePort(), await freePort()];
  const zd = runApp(fixturePath('crash-on-boot.cjs'), ['-w', '2', '--health-port', String(health), ...fastFlags], {
    env: { PORT: String(port) },
  });
  const exit = await zd.waitForExit(8000);
  assert.deepEqual(exit, { code: 1, signal: null }, zd.transcript());
  await zd.waitForLog('ZD_BOOT_FAILED', undefined, 100);
  await assertAllDead(zd.workerPids(), 1000);
});

test('a second SIGTERM, even inside --shutdown-delay with workers ignoring SIGTERM: exit 143 at once, nothing left', async () => {
  const port = await freePort();
  const zd = runApp(
    fixturePath('ignore-sigterm.cjs'),
    ['-w', '2', '--shutdown-delay', '20s', '--drain-timeout', '20s', '--kill-timeout', '20s'],
    { env: { PORT: String(port) } },
  );
  await zd.waitForLog('ZD_READY', undefined, 10_000);
  await distinctPids(port, 2, 5000);
  const tree = zd.treePids();
  zd.signal('SIGTERM');
  await zd.waitForLog('ZD_SHUTDOWN_DELAY', undefined, 3000);
  await sleep(200);
  assert.ok(zd.alive(), 'the first SIGTERM waits');

  const sent = Date.now();
  zd.signal('SIGTERM');
  const exit = await zd.waitForExit(3000);
  assert.deepEqual(exit, { code: 143, signal: null }, zd.transcript());
  assert.ok(Date.now() - sent < 2000, `forced exit took ${Date.now() - sent}ms`);
  await assertAllDead(tree, 2000);
});

// -- 5. exec form --------------------------------------------------------------------------------

test("`sh -c 'exec node zd.js run …'`: the shell becomes zd, so SIGTERM reaches zd and the workers drain", async () => {
  const port = await freePort();
  // Without `exec`, sh would stay the parent (PID 1 in a container) and, having no SIGTERM handler,
  // pass nothing on: README pitfall, not tested here (that is the shell's behaviour, not zd's).
  const zd = new Logged('sh', ['-c', 'exec "$@"', 'sh', process.execPath, zdBin, 'run', fixturePath('serve.cjs'), '-w', '2', ...fastFlags], {
    env: { PORT: String(port) },
    hostPids: true,
  });
  await zd.waitForLog('ZD_READY');
  const cmdline = readFileSync(`/proc/${zd.pid}/cmdline`, 'utf8').split('\0');
  assert.equal(cmdline[1], zdBin, `the pid sh started now runs zd: ${cmdline.join(' ')}`);
  const workers = zd.logs('ZD_WORKER_FORKED').map((log) => log.pid as number);
  // zd (the keeper, the pid sh started) runs the primary, whose children the workers are.
  const primary = zd.logs('ZD_CONFIG')[0]!.primaryPid as number;
  assert.equal(procStat(primary)?.ppid, zd.pid, "the primary is the keeper's child");
  for (const pid of workers) assert.equal(procStat(pid)?.ppid, primary, "the workers are the primary's children");

  process.kill(zd.pid, 'SIGTERM');
  assert.deepEqual(await zd.waitForExit(8000), { code: 0, signal: null }, zd.transcript());
  assert.equal(zd.logs('ZD_WORKER_DRAINING').length, 2);
  assert.deepEqual(zd.logs('ZD_WORKER_EXITED').map((log) => log.outcome), ['exited', 'exited']);
  await assertAllDead([zd.pid, primary, ...workers], 300);
});

// -- 6. where the health server listens ----------------------------------------------------------

/** An address of this host other than 127.0.0.1: a real interface's (a pod IP's stand-in), else 127.0.0.2. */
function otherLocalAddress(): string | null {
  return otherAddress() ?? (process.platform === 'linux' ? '127.0.0.2' : null);
}

test('the health server binds 127.0.0.1 by default; --health-host 0.0.0.0 answers on another address', async (t) => {
  const other = otherLocalAddress();
  if (other === null) {
    t.skip('no local address other than 127.0.0.1');
    return;
  }
  const port = await freePort();
  for (const host of [null, '0.0.0.0']) {
    const health = await freePort();
    const flags = ['-w', '1', '--health-port', String(health), ...(host ? ['--health-host', host] : []), ...fastFlags];
    const zd = runApp(fixturePath('serve.cjs'), flags, { env: { PORT: String(port) } });
    await zd.waitForLog('ZD_READY', undefined, 10_000);
    assert.equal((await probe(health, '/readyz')).status, 200);
    if (host === null) {
      await assert.rejects(probe(health, '/readyz', other), { code: 'ECONNREFUSED' }, `not reachable on ${other} by default`);
    } else {
      assert.equal((await probe(health, '/readyz', other)).status, 200, `reachable on ${other}`);
      assert.equal((await probe(health, '/livez', other)).status, 200);
    }
    zd.signal('SIGTERM');
    assert.equal((await zd.waitForExit(8000)).code, 0, zd.transcript());
  }
});

// -- the Docker example as a container would run it ---------------------------------------------

/**
 * Builds what the Dockerfile's COPY lines build, under `root`: the zd stage's files become
 * <app>/node_modules/<package name> (the packed-and-installed package), the app stage's files land in its
 * WORKDIR. zd's own dependencies are this checkout's node_modules, linked. Not built: dist/, so
 * bin/zd.js runs the copied source through tsx (the image runs the bundle; both load the same src/).
 */
function materialize(stages: Stage[], root: string): string {
  const image = stages.at(-1)!;
  const appDir = join(root, image.workdir);
  const packageDir = join(appDir, 'node_modules', (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { name: string }).name);
  const place = (copy: Stage['copies'][number], into: string) => {
    for (const source of copy.sources) {
      const dest = copy.dest.endsWith('/') || copy.sources.length > 1 ? join(into, copy.dest, basename(source)) : join(into, copy.dest);
      cpSync(join(repoRoot, source), dest, { recursive: true });
    }
  };
  for (const stage of stages.slice(0, -1)) for (const copy of stage.copies) place(copy, packageDir);
  for (const copy of image.copies) if (copy.from === null) place(copy, appDir);
  mkdirSync(join(appDir, 'node_modules'), { recursive: true });
  for (const entry of readdirSync(join(repoRoot, 'node_modules'))) {
    const link = join(appDir, 'node_modules', entry);
    if (!entry.startsWith('.') && !existsSync(link)) symlinkSync(join(repoRoot, 'node_modules', entry), link);
  }
  return appDir;
}

test('the Docker image, as PID 1: ENTRYPOINT + CMD serve, HEALTHCHECK passes, SIGHUP reaps old workers, SIGTERM exits 0', { skip: noNamespace }, async () => {
  const { stages } = readDockerfile();
  const image = stages.at(-1)!;
  const appDir = materialize(stages, scratchDir());

  const entrypoint = execForm(image.last.get('ENTRYPOINT'))!;
  const cmd = execForm(image.last.get('CMD'))!;
  const healthcheck = execForm(image.last.get('HEALTHCHECK'))!;
  const imageHealth = Number(entrypoint[entrypoint.indexOf('--health-port') + 1]);
  const [port, health] = [await freePort(), await freePort()];
  const inImage = (arg: string) =>
    arg === 'node' ? process.execPath : arg.replaceAll(`${image.workdir}/`, `${appDir}/`).replaceAll(`:${imageHealth}/`, `:${health}/`);
  const argv = [...entrypoint, ...cmd].map(inImage).map((arg) => (arg === String(imageHealth) ? String(health) : arg));

  const container = new Logged(pidNamespace![0]!, [...pidNamespace!.slice(1), ...argv], {
    cwd: appDir,
    env: { ...image.env, PORT: String(port) },
    hostPids: false,
  });
  const ready = await container.waitForLog('ZD_READY', undefined, 20_000);
  const zd = await namespaceInit(container);
  const reply = await probe(port, '/');
  assert.equal(reply.status, 200);
  assert.match(reply.body, /hello from pid \d+ \(generation 1\)/);
  const check = spawnSync(healthcheck[0] === 'node' ? process.execPath : healthcheck[0]!, healthcheck.slice(1).map(inImage), { timeout: 5000 });
  assert.equal(check.status, 0, `HEALTHCHECK failed: ${check.stderr}`);

  // zd's own children are waited for by Node (libuv waitpid()s each child it spawned): a reload
  // leaves no zombie even with zd as PID 1.
  const oldWorkers = hostWorkerPids(container, zd);
  assert.equal(oldWorkers.length, ready.workers, `every worker under zd: ${descendants(zd).join(', ')}`);
  const mark = container.entries.length;
  process.kill(zd, 'SIGHUP');
  await container.waitForLog('ZD_RELOAD_DONE', (log) => Number(log.generation) === 2, 10_000, mark);
  await waitUntil(
    () => container.logs('ZD_WORKER_EXITED', mark).length >= oldWorkers.length,
    5000,
    () => `the old workers (${oldWorkers.join(', ')}) to exit\n${container.transcript()}`,
  );
  hostWorkerPids(container, zd); // tracks the new workers for cleanup
  assert.deepEqual(zombieChildren(zd), [], 'no unreaped worker under PID 1');
  for (const pid of oldWorkers) assert.equal(procStat(pid), undefined, `old worker ${pid} is gone, not a zombie`);

  process.kill(zd, 'SIGTERM');
  assert.deepEqual(await container.waitForExit(8000), { code: 0, signal: null }, container.transcript());
  await assertAllDead([zd, ...oldWorkers], 1000);
});

test('as PID 1, zd does not reap orphaned grandchildren (hence `docker run --init`)', { skip: noNamespace }, async () => {
  const dir = scratchDir();
  const app = join(dir, 'orphans.cjs');
  // The shell exits at once; its background `sleep` is orphaned, reparented to PID 1, and exits.
  writeFileSync(
    app,
    `const { spawn } = require('node:child_process');
require('node:http').createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), () => {
  spawn('sh', ['-c', 'sleep 0.1 &'], { stdio: 'ignore' });
});
`,
  );
  const port = await freePort();
  const container = new Logged(pidNamespace![0]!, [...pidNamespace!.slice(1), process.execPath, zdBin, 'run', app, '-w', '1', ...fastFlags], {
    env: { PORT: String(port) },
    hostPids: false,
  });
  await container.waitForLog('ZD_READY');
  const zd = await namespaceInit(container);
  const zombies = await waitUntil(() => zombieChildren(zd).length > 0 && zombieChildren(zd), 3000, () => `an orphan to die under PID 1\n${container.transcript()}`);
  for (const pid of zombies) assert.match(readFileSync(`/proc/${pid}/stat`, 'utf8'), /\(sleep\) Z /);

  process.kill(zd, 'SIGTERM');
  assert.deepEqual(await container.waitForExit(8000), { code: 0, signal: null }, container.transcript());
  await assertAllDead([zd, ...zombies], 1000);
});
