#!/usr/bin/env node
// What a canary's measuring costs the workers (issue 14): steady keep-alive throughput of zd with
// canaries off against zd without the measuring module (ZD_NO_MEASURE=1: the bootstrap as it was
// before it), and of workers measuring all the time against the same workers not measuring. Side
// by side in one run, alternating, several reps.
//
//   node bench/canary-overhead.mjs                       # 5 reps of 10 s each, 2 workers, 50 connections
//   node bench/canary-overhead.mjs --before 3673bdd       # also zd as of that commit (its own bootstrap)
//   node bench/canary-overhead.mjs --reps 7 --write       # writes its section of bench/RESULTS.md
//
// Runners, each serving bench/apps/app.cjs with 2 workers on 127.0.0.1:
//   zd-no-measure   zd (this checkout, from source through tsx), workers started with ZD_NO_MEASURE=1
//   zd              the same zd, canaries off: the measuring module loaded, subscribed to nothing
//   measure-off     a plain node:cluster primary whose workers preload zd's bootstrap (runners/measure-cluster.mjs)
//   measure-on      the same, every worker measuring the whole time (what a canary window costs);
//                   its figures, collected by zd's collector at the end, are checked against the load's count
// The load is autocannon (bench/lib/load.mjs, its own process): 50 keep-alive connections,
// pipelining 1, 2 s warm-up then 10 s measured. CPU per request (utime + stime of the primary and
// its workers, /proc) is given beside req/s: on two cores shared with the load generator, it moves
// much less from one run to the next. Every process started is tracked by pid and killed by pid.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { wholeFlag } from './lib/flags.mjs';
import { releaseLock, takeLock } from './lib/lock.mjs';
import { cleanUpOnExit, cpuMs, forkLoad, killTracked, otherCpuSeconds, otherCpuSnapshot, stopTree } from './lib/procs.mjs';
import { percentile, table, writeSection } from './lib/results-md.mjs';
import { removeSnapshots, snapshot } from './lib/snapshot.mjs';
import { BENCH, REPO, startPrimary } from './lib/runners.mjs';

const NAME = 'bench/canary-overhead';
const { values: flags } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '10' },
    workers: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    before: { type: 'string' },
    write: { type: 'boolean', default: false },
  },
});
const whole = wholeFlag(NAME);
const REPS = whole('reps', flags.reps, 1, 50);
const WINDOW_MS = 1000 * whole('seconds', flags.seconds, 2, 120);
const WORKERS = whole('workers', flags.workers, 1, 16);
const CONNECTIONS = whole('connections', flags.connections, 1, 500);
const WARMUP_MS = 2000;
const MAX_REQUESTS = 5_000_000;
const TARGET = 0.97;
const APP = join(BENCH, 'apps', 'app.cjs');
const MEASURE_CLUSTER = join(BENCH, 'runners', 'measure-cluster.mjs');
const READY_MS = 30_000;

const say = (text) => process.stderr.write(`${text}\n`);

function cleanup() {
  killTracked('SIGKILL');
  removeSnapshots();
  releaseLock();
}
cleanUpOnExit(NAME, cleanup);

const zdReady = (json) => json?.code === 'ZD_READY';
function zdRunner(key, label, main, env = {}) {
  return {
    key,
    label,
    env,
    args: (port) => ['--import', 'tsx', main, 'run', APP, '-w', String(WORKERS), '--log-format', 'json', '--name', `zd-bench-canary-${process.pid}-${port}`],
    ready: zdReady,
  };
}
const zdMain = join(REPO, 'src', 'cli', 'main.ts');
const runners = [
  zdRunner('zd-no-measure', 'zd, measuring module not loaded (ZD_NO_MEASURE=1)', zdMain, { ZD_NO_MEASURE: '1' }),
  zdRunner('zd', 'zd, canaries off', zdMain),
  { key: 'measure-off', label: 'node:cluster + zd bootstrap, not measuring', env: {}, args: () => ['--import', 'tsx', MEASURE_CLUSTER, APP, String(WORKERS), 'off'], ready: (json) => json?.event === 'ready' },
  { key: 'measure-on', label: 'node:cluster + zd bootstrap, measuring all the time', env: {}, args: () => ['--import', 'tsx', MEASURE_CLUSTER, APP, String(WORKERS), 'on'], ready: (json) => json?.event === 'ready' },
];

/** The load generator in its own process: resolves with its result. */
function load(port, durationMs) {
  const spec = { mode: 'keepalive', port, durationMs, connections: CONNECTIONS, maxRequests: MAX_REQUESTS, binMs: 1000 };
  return forkLoad(join(BENCH, 'lib', 'load.mjs'), spec, { killAfterMs: durationMs + 30_000 });
}

async function measure(runner) {
  const { port, child, log, until, workers } = await startPrimary(runner, { env: runner.env, app: APP, workers: WORKERS, readyMs: READY_MS });
  const result = { runner: runner.key };
  try {
    const warm = await load(port, WARMUP_MS).result;
    const run = load(port, WINDOW_MS);
    await run.started;
    const pids = [child.pid, ...workers];
    const other = otherCpuSnapshot();
    const before = pids.map(cpuMs);
    const window = await run.result;
    const after = pids.map(cpuMs);
    result.otherCpuS = otherCpuSeconds(other, otherCpuSnapshot());
    result.rps = window.rps;
    result.responses = window.responses;
    result.failed = window.errors + window.timeouts + window.droppedOnClose + window.non2xx;
    result.latencyP99 = window.latencyP99;
    result.cpuMs = after.reduce((sum, ms, i) => sum + (ms ?? 0) - (before[i] ?? 0), 0);
    result.primaryCpuMs = (after[0] ?? 0) - (before[0] ?? 0);
    result.cpuMsPer1k = window.responses > 0 ? (1000 * result.cpuMs) / window.responses : null;
    if (runner.key === 'measure-on') {
      // Measured from before the warm-up to now: every response of both loads, give or take the
      // requests in flight at the edges (at most one per connection).
      const from = log.length;
      process.kill(child.pid, 'SIGUSR2');
      const line = await until((l) => l.json?.event === 'figures', 5000, 'figures', from);
      const figures = line.json.figures.map((f) => f.figures);
      if (figures.some((f) => f === null)) throw new Error(`a worker had no figures: ${line.text}`);
      const total = (key) => figures.reduce((sum, f) => sum + key(f), 0);
      result.measured = {
        requests: total((f) => f.requests),
        errors: total((f) => f.errors),
        non2xx: total((f) => f.requests - f.status['2xx']),
        expected: warm.responses + window.responses,
      };
    }
    const problems = log.filter((l) => (l.json?.name === 'zd' && l.json.level >= 40) || l.json?.event === 'worker-exit' || l.json?.event === 'io-error').map((l) => l.text);
    if (problems.length) result.problems = problems;
  } finally {
    if (await stopTree(child, 15_000)) result.forcedStop = true;
  }
  return result;
}

async function main() {
  takeLock(NAME);
  if (flags.before !== undefined) {
    const { sha, main: before } = snapshot(REPO, flags.before);
    runners.splice(1, 0, zdRunner(`zd@${sha}`, `zd at ${sha} (before the measuring module)`, before));
  }
  const loadavg = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  say(`${NAME}: ${WORKERS} workers, ${CONNECTIONS} keep-alive connections, ${WINDOW_MS / 1000} s after ${WARMUP_MS / 1000} s of warm-up, ${REPS} rep(s) of ${runners.map((r) => r.key).join(', ')}; load average ${loadavg}`);
  const reps = [];
  for (let rep = 0; rep < REPS; rep++) {
    const row = {};
    // Rotated, so that no runner always goes first.
    for (let i = 0; i < runners.length; i++) {
      const runner = runners[(i + rep) % runners.length];
      let r;
      try {
        r = await measure(runner);
        const m = r.measured ? `; measured ${r.measured.requests} of ${r.measured.expected} responses, ${r.measured.errors} errors, ${r.measured.non2xx} non-2xx` : '';
        say(`${NAME}: rep ${rep + 1} ${runner.key}: ${Math.round(r.rps)} req/s, ${r.cpuMsPer1k?.toFixed(2)} CPU-ms per 1k, ${r.failed} failed, other processes ${r.otherCpuS.toFixed(1)} CPU-s${m}`);
      } catch (error) {
        r = { runner: runner.key, error: String(error.message ?? error).split('\n')[0], rps: null, cpuMsPer1k: null };
        say(`${NAME}: rep ${rep + 1} ${runner.key}: FAILED: ${r.error}`);
      }
      row[runner.key] = r;
    }
    reps.push(row);
  }

  const median = (values) => percentile(values, 50);
  const num = (x, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? 'failed' : x.toFixed(digits));
  /** Per rep, a ÷ b of one field (the two ran back to back in that rep). */
  const paired = (a, b, field) => reps.map((row) => (row[a]?.[field] && row[b]?.[field] ? row[a][field] / row[b][field] : null));
  const baselineOf = (key) => (key.startsWith('zd') ? 'zd-no-measure' : 'measure-off');
  const rows = runners.map((runner) => {
    const rps = reps.map((row) => row[runner.key].rps);
    const cpu = reps.map((row) => row[runner.key].cpuMsPer1k);
    const base = baselineOf(runner.key);
    const isBase = base === runner.key;
    const rpsRatio = paired(runner.key, base, 'rps');
    const cpuRatio = paired(base, runner.key, 'cpuMsPer1k');
    return [
      runner.label,
      num(median(rps)),
      rps.map((x) => num(x)).join(', '),
      num(median(cpu), 2),
      isBase ? '1' : `${num(median(rpsRatio), 3)} (${rpsRatio.map((x) => num(x, 2)).join(', ')})`,
      isBase ? '1' : num(median(cpuRatio), 3),
      String(reps.reduce((sum, row) => sum + (row[runner.key].failed ?? 0), 0)),
    ];
  });
  const markdownTable = table(
    ['runner', 'req/s, median', 'every rep', 'CPU-ms per 1k req, median', '× its baseline, req/s: median of paired reps (each)', '× baseline, CPU per request (baseline ÷ this)', 'failed requests, all reps'],
    rows,
  );
  const verdictOf = (key, what) => {
    const ratio = median(paired(key, baselineOf(key), 'rps'));
    if (ratio === null) return `- ${key}: no measurement`;
    const cpu = median(paired(baselineOf(key), key, 'cpuMsPer1k'));
    return `- ${what}: **${ratio.toFixed(3)}×** req/s, ${num(cpu, 3)}× CPU per request against ${baselineOf(key)}${key === 'zd' ? ` — target ≥ ${TARGET}×: ${ratio >= TARGET ? 'met' : 'missed'}` : ''}`;
  };
  const measuredLines = reps
    .map((row, i) => row['measure-on']?.measured && `rep ${i + 1}: ${row['measure-on'].measured.requests} counted of ${row['measure-on'].measured.expected} responses (${row['measure-on'].measured.errors} errors, ${row['measure-on'].measured.non2xx} non-2xx)`)
    .filter(Boolean);
  const others = reps.flatMap((row) => Object.values(row).map((r) => r.otherCpuS)).filter((x) => Number.isFinite(x));
  const verdicts = [
    `- other processes on the machine used ${others.length ? `${Math.min(...others).toFixed(1)}–${Math.max(...others).toFixed(1)} CPU-s (mean ${(others.reduce((a, b) => a + b, 0) / others.length).toFixed(1)})` : 'an unknown amount of CPU'} during each ${WINDOW_MS / 1000} s window: req/s moves with them, CPU per request much less`,
    verdictOf('zd', 'canaries off (zd against zd without the module)'),
    ...runners.filter((r) => r.key.startsWith('zd@')).map((r) => verdictOf(r.key, `zd before the module (${r.key}) against ZD_NO_MEASURE=1`)),
    verdictOf('measure-on', 'measuring (a canary window) against the same workers not measuring'),
    `- the measuring workers' own count against the load generator's: ${measuredLines.join('; ') || 'none'}`,
  ];
  process.stdout.write(`${markdownTable}\n\n${verdicts.join('\n')}\n`);

  const commit = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['-C', REPO, 'status', '--porcelain', '--', 'src', 'machines'], { encoding: 'utf8' }).trim() !== '';
  const command = `node bench/canary-overhead.mjs ${process.argv.slice(2).join(' ')}`.trim();
  const data = { date: new Date().toISOString(), command, commit, dirty, node: process.version, loadavg, workers: WORKERS, connections: CONNECTIONS, windowMs: WINDOW_MS, warmupMs: WARMUP_MS, reps };
  if (flags.write) {
    writeFileSync(join(BENCH, 'RESULTS-canary-overhead.json'), `${JSON.stringify(data, null, 1)}\n`);
    const file = writeSection(
      'canary-overhead',
      `## A canary's measuring: what it costs the workers (issue 14)

\`${command}\` — each runner serves \`bench/apps/app.cjs\` with ${WORKERS} workers on 127.0.0.1; autocannon,
${CONNECTIONS} keep-alive connections, ${WARMUP_MS / 1000} s of warm-up then ${WINDOW_MS / 1000} s measured; the runners alternate (rotated each rep), ${REPS} reps.
CPU per request: utime + stime of the primary and its workers over the window. ${data.date}, commit ${commit}${dirty ? ' (src/ or machines/ had uncommitted changes)' : ''}, Node ${process.version}, load average before ${loadavg}.
Raw: \`bench/RESULTS-canary-overhead.json\`.

${markdownTable}

${verdicts.join('\n')}
`,
    );
    say(`${NAME}: wrote its section of ${file}`);
  }
}

try {
  await main();
} finally {
  cleanup();
}
