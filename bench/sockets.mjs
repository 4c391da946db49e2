#!/usr/bin/env node
// zd owns the listening sockets (issue 13): what handing every connection through zd's primary
// costs, against node:cluster's own round robin. Side by side in one run, alternating.
//
//   node bench/sockets.mjs                     # 3 reps, 8 s windows after 2 s of warm-up, 2 workers
//   node bench/sockets.mjs --reps 5 --write    # writes its section of bench/RESULTS.md (+ RESULTS-sockets.json)
//
// Runners, each serving bench/apps/app.cjs with 2 workers on 127.0.0.1:
//   zd        `node bin/zd.js run app -w 2`: the app's listen() is a request to zd's primary, which
//             binds once and hands each accepted connection to a worker, keeping it until the ack
//   cluster   bench/runners/seed-cluster.cjs: a plain node:cluster primary (SCHED_RR, Linux's default)
// Loads (bench/lib/load.mjs, its own process), each on the same running primary:
//   new-connection  CONNECTIONS loops of one request per fresh TCP connection (agent: false): every
//                   request is an accept, a hand-over and an ack
//   keep-alive      autocannon, KEEPALIVE keep-alive connections, pipelining 1: the hand-over is paid
//                   once per connection, then requests go straight to the worker
// The ratio is zd ÷ cluster of the same rep (the two ran back to back; the runner order rotates).
// Targets: new-connection ≥ 0.95×, keep-alive ≥ 0.97×. CPU per request (utime + stime of the
// primary and its workers, /proc) is given beside req/s: on two cores shared with the load
// generator it moves much less. Every process started is tracked by pid and killed by pid.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { wholeFlag } from './lib/flags.mjs';
import { releaseLock, takeLock } from './lib/lock.mjs';
import { readFileSync } from 'node:fs';
import { cleanUpOnExit, cpuMs, descendants, forkLoad, freePort, killTracked, otherCpuSeconds, otherCpuSnapshot, spawnTracked, stopTree, trackTree } from './lib/procs.mjs';
import { percentile, table, writeSection } from './lib/results-md.mjs';
import { BENCH, REPO, stderrLines } from './lib/runners.mjs';

const NAME = 'bench/sockets';
const { values: flags } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    workers: { type: 'string', default: '2' },
    connections: { type: 'string', default: '16' },
    keepalive: { type: 'string', default: '50' },
    write: { type: 'boolean', default: false },
  },
});
const whole = wholeFlag(NAME);
const REPS = whole('reps', flags.reps, 1, 50);
const WINDOW_MS = 1000 * whole('seconds', flags.seconds, 2, 120);
const WORKERS = whole('workers', flags.workers, 1, 16);
const CONNECTIONS = whole('connections', flags.connections, 1, 256);
const KEEPALIVE = whole('keepalive', flags.keepalive, 1, 500);
const WARMUP_MS = 2000;
const MAX_REQUESTS = 5_000_000;
const TARGETS = { fresh: 0.95, keepalive: 0.97 };
const APP = join(BENCH, 'apps', 'app.cjs');
const ZD_BIN = join(REPO, 'bin', 'zd.js');
const CLUSTER = join(BENCH, 'runners', 'seed-cluster.cjs');
const READY_MS = 30_000;

const say = (text) => process.stderr.write(`${text}\n`);

function cleanup() {
  killTracked('SIGKILL');
  releaseLock();
}
cleanUpOnExit(NAME, cleanup);

const runners = [
  {
    key: 'zd',
    label: `zd (node bin/zd.js run app -w ${WORKERS})`,
    args: (port) => [ZD_BIN, 'run', APP, '-w', String(WORKERS), '--log-format', 'json', '--name', `zd-bench-sockets-${process.pid}-${port}`],
    ready: (json) => json?.code === 'ZD_READY',
  },
  { key: 'cluster', label: 'node:cluster round robin (runners/seed-cluster.cjs)', args: () => [CLUSTER, APP, String(WORKERS)], ready: (json) => json?.event === 'ready' },
];
const loads = [
  { key: 'fresh', label: `new connection per request (${CONNECTIONS} loops)`, spec: { mode: 'per-connection', connections: CONNECTIONS } },
  { key: 'keepalive', label: `keep-alive (autocannon, ${KEEPALIVE} connections)`, spec: { mode: 'keepalive', connections: KEEPALIVE } },
];

function load(port, spec, durationMs) {
  return forkLoad(join(BENCH, 'lib', 'load.mjs'), { ...spec, port, durationMs, maxRequests: MAX_REQUESTS, binMs: 1000 }, { killAfterMs: durationMs + 30_000 });
}

const cmdline = (pid) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
};

/**
 * lib/runners.mjs's startPrimary, but for zd as `zd run` now is: a keeper whose child is the
 * primary (its command line names the app too), whose children are the workers.
 */
async function start(runner) {
  const port = await freePort();
  const child = spawnTracked(process.execPath, runner.args(port), { cwd: BENCH, env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
  const { log, until } = stderrLines(child);
  try {
    await until((l) => runner.ready(l.json), READY_MS, `${runner.label}: ready`);
    trackTree(child.pid);
    const tree = descendants(child.pid);
    const workers = tree.filter((pid) => cmdline(pid).includes(APP) && !cmdline(pid).includes(ZD_BIN));
    if (workers.length !== WORKERS) throw new Error(`${runner.label}: ${workers.length} workers, not ${WORKERS}`);
    // The process that hands the connections over: zd's primary (under its keeper), or cluster's.
    const primary = tree.find((pid) => cmdline(pid).includes(ZD_BIN)) ?? child.pid;
    return { port, child, log, pids: [child.pid, ...tree], primary };
  } catch (error) {
    await stopTree(child, 15_000);
    throw error;
  }
}

/** One runner, both loads on the same primary (each after its own warm-up). */
async function measure(runner, loadOrder) {
  const { port, child, log, pids, primary } = await start(runner);
  const out = {};
  const p = pids.indexOf(primary);
  try {
    for (const l of loadOrder) {
      await load(port, l.spec, WARMUP_MS).result;
      const run = load(port, l.spec, WINDOW_MS);
      await run.started;
      const other = otherCpuSnapshot();
      const before = pids.map(cpuMs);
      const window = await run.result;
      const after = pids.map(cpuMs);
      const cpu = after.reduce((sum, ms, i) => sum + (ms ?? 0) - (before[i] ?? 0), 0);
      out[l.key] = {
        rps: window.rps,
        responses: window.responses,
        failed: window.errors + window.timeouts + (window.droppedOnClose ?? 0) + window.non2xx,
        errors: window.reqErrors,
        cpuMsPer1k: window.responses > 0 ? (1000 * cpu) / window.responses : null,
        primaryCpuMsPer1k: window.responses > 0 ? (1000 * ((after[p] ?? 0) - (before[p] ?? 0))) / window.responses : null,
        otherCpuS: otherCpuSeconds(other, otherCpuSnapshot()),
      };
    }
    const problems = log.filter((l) => (l.json?.name === 'zd' && l.json.level >= 40) || l.json?.event === 'worker-exit').map((l) => l.text);
    if (problems.length) out.problems = problems;
  } finally {
    if (await stopTree(child, 15_000)) out.forcedStop = true;
  }
  return out;
}

async function main() {
  takeLock(NAME);
  const loadavg = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  say(`${NAME}: ${WORKERS} workers; ${loads.map((l) => l.label).join(' and ')}; ${WINDOW_MS / 1000} s windows after ${WARMUP_MS / 1000} s of warm-up; ${REPS} rep(s); load average ${loadavg}`);
  const reps = [];
  for (let rep = 0; rep < REPS; rep++) {
    const row = {};
    const loadOrder = rep % 2 === 0 ? loads : [...loads].reverse();
    for (let i = 0; i < runners.length; i++) {
      const runner = runners[(i + rep) % runners.length];
      try {
        row[runner.key] = await measure(runner, loadOrder);
        for (const l of loads) {
          const r = row[runner.key][l.key];
          say(`${NAME}: rep ${rep + 1} ${runner.key} ${l.key}: ${Math.round(r.rps)} req/s, ${r.cpuMsPer1k?.toFixed(1)} CPU-ms per 1k (primary ${r.primaryCpuMsPer1k?.toFixed(1)}), ${r.failed} failed, other processes ${r.otherCpuS.toFixed(1)} CPU-s`);
        }
        if (row[runner.key].problems) say(`${NAME}: rep ${rep + 1} ${runner.key}: ${row[runner.key].problems.length} warning line(s): ${row[runner.key].problems[0]}`);
      } catch (error) {
        row[runner.key] = { error: String(error.message ?? error).split('\n')[0] };
        say(`${NAME}: rep ${rep + 1} ${runner.key}: FAILED: ${row[runner.key].error}`);
      }
    }
    reps.push(row);
  }

  const median = (values) => percentile(values, 50);
  const num = (x, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? 'failed' : x.toFixed(digits));
  const field = (runner, load, f) => reps.map((row) => row[runner]?.[load]?.[f] ?? null);
  const ratios = (load, f, invert = false) =>
    reps.map((row) => {
      const zd = row.zd?.[load]?.[f];
      const cl = row.cluster?.[load]?.[f];
      return zd && cl ? (invert ? cl / zd : zd / cl) : null;
    });
  const rows = [];
  for (const l of loads) {
    for (const runner of runners) {
      const rps = field(runner.key, l.key, 'rps');
      const ratio = ratios(l.key, 'rps');
      rows.push([
        l.label,
        runner.key,
        num(median(rps)),
        rps.map((x) => num(x)).join(', '),
        num(median(field(runner.key, l.key, 'cpuMsPer1k')), 1),
        num(median(field(runner.key, l.key, 'primaryCpuMsPer1k')), 1),
        runner.key === 'zd' ? `${num(median(ratio), 3)} (${ratio.map((x) => num(x, 2)).join(', ')})` : '1',
        String(field(runner.key, l.key, 'failed').reduce((sum, x) => sum + (x ?? 0), 0)),
      ]);
    }
  }
  const markdownTable = table(
    ['load', 'runner', 'req/s, median', 'every rep', 'CPU-ms per 1k req (primary + workers), median', 'of which the primary', 'zd ÷ cluster, req/s: median of paired reps (each)', 'failed requests, all reps'],
    rows,
  );
  const others = reps.flatMap((row) => Object.values(row).flatMap((r) => loads.map((l) => r?.[l.key]?.otherCpuS))).filter((x) => Number.isFinite(x));
  const verdicts = [
    `- other processes on the machine used ${others.length ? `${Math.min(...others).toFixed(1)}–${Math.max(...others).toFixed(1)} CPU-s (mean ${(others.reduce((a, b) => a + b, 0) / others.length).toFixed(1)})` : 'an unknown amount of CPU'} during each ${WINDOW_MS / 1000} s window: req/s moves with them, CPU per request much less`,
    ...loads.map((l) => {
      const ratio = median(ratios(l.key, 'rps'));
      const cpu = median(ratios(l.key, 'cpuMsPer1k', true));
      return `- ${l.label}: zd **${num(ratio, 3)}×** cluster's req/s, ${num(cpu, 3)}× its CPU efficiency (cluster's CPU per request ÷ zd's) — target ≥ ${TARGETS[l.key]}×: ${ratio === null ? 'no measurement' : ratio >= TARGETS[l.key] ? 'met' : `missed by ${((TARGETS[l.key] - ratio) * 100).toFixed(1)} points`}`;
    }),
  ];
  process.stdout.write(`${markdownTable}\n\n${verdicts.join('\n')}\n`);

  const commit = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['-C', REPO, 'status', '--porcelain', '--', 'src', 'machines'], { encoding: 'utf8' }).trim() !== '';
  const command = `node bench/sockets.mjs ${process.argv.slice(2).join(' ')}`.trim();
  const data = { date: new Date().toISOString(), command, commit, dirty, node: process.version, cpus: os.cpus().length, loadavg, workers: WORKERS, connections: CONNECTIONS, keepalive: KEEPALIVE, windowMs: WINDOW_MS, warmupMs: WARMUP_MS, reps };
  if (flags.write) {
    writeFileSync(join(BENCH, 'RESULTS-sockets.json'), `${JSON.stringify(data, null, 1)}\n`);
    const file = writeSection(
      'sockets',
      `## Sockets: zd's hand-over against node:cluster's round robin (issue 13)

\`${command}\` — each runner serves \`bench/apps/app.cjs\` with ${WORKERS} workers on 127.0.0.1; per rep, each runner
starts once and takes both loads (${WARMUP_MS / 1000} s of warm-up, then ${WINDOW_MS / 1000} s measured, each); the runner order rotates and the load order alternates, ${REPS} reps.
CPU per request: utime + stime over the window. ${data.date}, commit ${commit}${dirty ? ' (src/ or machines/ had uncommitted changes)' : ''}, Node ${process.version}, ${data.cpus} CPUs, load average before ${loadavg}.
Raw: \`bench/RESULTS-sockets.json\`.

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
