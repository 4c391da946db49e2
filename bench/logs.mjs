#!/usr/bin/env node
// Issue 23: what zd's line-by-line forwarding of the workers' output costs, against workers that
// write to an inherited pipe themselves (plain node:cluster), with the same app, interleaved.
//
//   node bench/logs.mjs                      # 3 reps of each (about 2 minutes)
//   node bench/logs.mjs --reps 5 --write     # writes bench/RESULTS-logs.json
//
// Runners, each running bench/apps/logger.cjs, whose stdout is a pipe to a reader process
// (bench/lib/log-reader.cjs, as a log shipper would read it):
//   zd        `node bin/zd.js run logger.cjs -w N`, as installed (dist/): the workers' pipes are read
//             by the primary, which writes whole lines to its stdout, a pipe to the keeper, which
//             writes them to the reader's pipe
//   cluster   bench/runners/log-cluster.cjs: node:cluster, the workers inherit the reader's pipe
//   zd-no-keeper  (--runners zd,cluster,zd-no-keeper) zd with ZD_NO_KEEPER=1: the primary writes to
//             the reader's pipe itself; what the keeper's hop costs
// Runs, every rep, each runner once (the order rotates per rep):
//   throughput  --workers workers × --lines lines of --size bytes (200): the reader counts bytes
//               and lines
//   integrity   --big-workers workers × --big-lines lines of 64 KB: the reader parses every line
//               and checks each worker's order; a line that does not parse or is out of place is
//               corrupted
// Measured: the workers' own logging throughput (their bytes over the time from their first write
// to the last one's callback: what logging costs the app), the reader's MB/s and lines/s (from the
// workers' first write to the reader's last byte), and the CPU time of zd's own processes (keeper
// and primary; the cluster's primary for the baseline) per MB forwarded, from /proc. Targets:
// zd ≥ 100 MB/s at 200-byte lines, the workers' throughput under zd ≥ 0.9× the inherited pipe's,
// 0 corrupted lines under zd.
//
// Other processes' CPU over each run is recorded (two cores, shared). Every process started is
// tracked by pid and killed by pid.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { build, buildIsFresh, builds } from './lib/build.mjs';
import { wholeFlag } from './lib/flags.mjs';
import { releaseLock, takeLock } from './lib/lock.mjs';
import { cleanUpOnExit, cpuMs, freePort, killTracked, otherCpuSeconds, otherCpuSnapshot, spawnTracked, stopTree, trackTree, waitExit } from './lib/procs.mjs';
import { percentile } from './lib/results-md.mjs';
import { BENCH, REPO, stderrLines } from './lib/runners.mjs';

const NAME = 'bench/logs';
const { values: flags } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    workers: { type: 'string', default: '2' },
    lines: { type: 'string', default: '500000' },
    size: { type: 'string', default: '200' },
    'big-workers': { type: 'string', default: '4' },
    'big-lines': { type: 'string', default: '600' },
    runners: { type: 'string', default: 'zd,cluster' },
    write: { type: 'boolean', default: false },
  },
});
const whole = wholeFlag(NAME);
const REPS = whole('reps', flags.reps, 1, 20);
const MODES = {
  throughput: { workers: whole('workers', flags.workers, 1, 16), lines: whole('lines', flags.lines, 1000, 10_000_000), size: whole('size', flags.size, 64, 1 << 20), check: false },
  integrity: { workers: whole('big-workers', flags['big-workers'], 1, 16), lines: whole('big-lines', flags['big-lines'], 10, 100_000), size: 64 * 1024, check: true },
};
const APP = join(BENCH, 'apps', 'logger.cjs');
const READER = join(BENCH, 'lib', 'log-reader.cjs');
const ZD_BIN = join(REPO, 'bin', 'zd.js');
const CLUSTER = join(BENCH, 'runners', 'log-cluster.cjs');
const READY_MS = 30_000;
const RUN_MS = 120_000;
const say = (text) => process.stderr.write(`${text}\n`);

const scratch = [];
function cleanup() {
  killTracked('SIGKILL');
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  releaseLock();
}
cleanUpOnExit(NAME, cleanup);

const zdRunner = (key, env) => ({
  key,
  env,
  args: (workers, name) => [ZD_BIN, 'run', APP, '-w', String(workers), '--log-format', 'json', '--name', name],
  ready: (json) => json?.code === 'ZD_READY',
  // The keeper (the pid started here) and the primary: zd's own share of the work.
  pids: (child, log) => [...new Set([child.pid, log.find((l) => l.json?.code === 'ZD_CONFIG')?.json.primaryPid].filter(Boolean))],
});
const ALL_RUNNERS = [
  zdRunner('zd', {}),
  {
    key: 'cluster',
    env: {},
    args: (workers) => [CLUSTER, APP, String(workers)],
    ready: (json) => json?.event === 'ready',
    pids: (child) => [child.pid],
  },
  // zd without its keeper (ZD_NO_KEEPER=1: no zd upgrade): what the keeper's hop costs.
  zdRunner('zd-no-keeper', { ZD_NO_KEEPER: '1' }),
];
const RUNNERS = flags.runners.split(',').map((key) => {
  const runner = ALL_RUNNERS.find((r) => r.key === key);
  if (!runner) {
    process.stderr.write(`${NAME}: --runners takes a list of ${ALL_RUNNERS.map((r) => r.key).join(', ')}, not '${key}'\n`);
    process.exit(2);
  }
  return runner;
});
if (!RUNNERS.some((r) => r.key === 'zd') || !RUNNERS.some((r) => r.key === 'cluster')) {
  process.stderr.write(`${NAME}: --runners must include zd and cluster (the ratio is theirs)\n`);
  process.exit(2);
}

async function once(runner, modeKey) {
  const mode = MODES[modeKey];
  const dir = mkdtempSync(join(os.tmpdir(), 'zd-bench-logs-'));
  scratch.push(dir);
  const results = join(dir, 'results');
  mkdirSync(results);
  const expect = mode.workers * mode.lines * mode.size;
  const reader = spawnTracked(process.execPath, [READER, String(expect), ...(mode.check ? ['--check'] : [])], { stdio: ['pipe', 'pipe', 'inherit'] });
  let readerOut = '';
  reader.stdout.setEncoding('utf8').on('data', (chunk) => (readerOut += chunk));
  const child = spawnTracked(process.execPath, runner.args(mode.workers, `zd-bench-logs-${process.pid}`), {
    cwd: BENCH,
    env: {
      ...process.env,
      ...runner.env,
      PORT: String(await freePort()),
      ZD_RUNTIME_DIR: dir,
      LOG_SIZE: String(mode.size),
      LOG_LINES: String(mode.lines),
      GO_FILE: join(dir, 'go'),
      RESULT_DIR: results,
    },
    // The reader's pipe is the runner's stdout (and, under zd, the workers' output's way out).
    stdio: ['ignore', reader.stdin, 'pipe'],
  });
  const lines = stderrLines(child);
  try {
    await lines.until((l) => runner.ready(l.json), READY_MS, `${runner.key}: ready`);
    trackTree(child.pid);
    const pids = runner.pids(child, lines.log);
    const cpuBefore = pids.map(cpuMs);
    const otherBefore = otherCpuSnapshot();
    writeFileSync(join(dir, 'go'), '');
    if ((await waitExit(reader, RUN_MS)) === null) throw new Error(`${runner.key} ${modeKey}: the reader did not get ${expect} bytes within ${RUN_MS} ms`);
    const cpuAfter = pids.map(cpuMs);
    const otherCpuS = otherCpuSeconds(otherBefore, otherCpuSnapshot());
    const deadline = Date.now() + 10_000;
    while (readdirSync(results).length < mode.workers && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const workers = readdirSync(results).map((file) => JSON.parse(readFileSync(join(results, file), 'utf8')));
    if (workers.length !== mode.workers) throw new Error(`${runner.key} ${modeKey}: ${workers.length} worker results of ${mode.workers}`);
    const got = JSON.parse(readerOut);
    const start = Math.min(...workers.map((w) => w.startMs));
    const workersMs = Math.max(...workers.map((w) => w.endMs)) - start;
    const readerMs = got.lastMs - start;
    const mb = got.bytes / 1e6;
    const ownCpuMs = cpuAfter.reduce((sum, ms, i) => sum + (ms ?? 0) - (cpuBefore[i] ?? 0), 0);
    return {
      runner: runner.key,
      mode: modeKey,
      lineBytes: mode.size,
      workers: mode.workers,
      bytes: got.bytes,
      lines: got.lines,
      corrupted: got.corrupted,
      workersMBps: round(mb / (workersMs / 1000)),
      readerMBps: round(mb / (readerMs / 1000)),
      readerLinesPerS: Math.round(got.lines / (readerMs / 1000)),
      ownCpuMsPerMB: round(ownCpuMs / mb, 2),
      ownCpuMsByPid: cpuAfter.map((ms, i) => round((ms ?? 0) - (cpuBefore[i] ?? 0))),
      workerCpuMsPerMB: round(workers.reduce((sum, w) => sum + w.cpuMs, 0) / mb, 2),
      otherCpuS: round(otherCpuS),
    };
  } finally {
    await stopTree(child, 5000);
    reader.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (n, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const median = (values) => percentile(values, 50);

async function main() {
  takeLock(NAME);
  if (!buildIsFresh()) {
    say(`${NAME}: npm run build (dist/ is older than the source)`);
    await build('start of the run');
  }
  const runs = [];
  for (let rep = 1; rep <= REPS; rep++) {
    for (const modeKey of Object.keys(MODES)) {
      // Each runner first in turn: a machine that gets busier or quieter skews none of them.
      const order = RUNNERS.map((_, i) => RUNNERS[(i + rep) % RUNNERS.length]);
      for (const runner of order) {
        const run = { rep, ...(await once(runner, modeKey)) };
        runs.push(run);
        say(`${NAME}: rep ${rep} ${modeKey} ${runner.key}: ${JSON.stringify(run)}`);
      }
    }
  }
  const summary = {};
  for (const modeKey of Object.keys(MODES)) {
    const of = (key) => runs.filter((r) => r.mode === modeKey && r.runner === key);
    const ratios = of('zd').map((z) => z.workersMBps / of('cluster').find((c) => c.rep === z.rep).workersMBps);
    summary[modeKey] = {
      ...Object.fromEntries(
        RUNNERS.map(({ key }) => [
          key,
          {
            workersMBps: median(of(key).map((r) => r.workersMBps)),
            readerMBps: median(of(key).map((r) => r.readerMBps)),
            readerLinesPerS: median(of(key).map((r) => r.readerLinesPerS)),
            ownCpuMsPerMB: median(of(key).map((r) => r.ownCpuMsPerMB)),
            corrupted: of(key).map((r) => r.corrupted),
          },
        ]),
      ),
      workersRatio: { median: round(median(ratios), 3), each: ratios.map((r) => round(r, 3)) },
    };
  }
  const report = { at: new Date().toISOString(), commit: gitHead(), node: process.version, cpus: os.cpus().length, load: os.loadavg().map((l) => round(l, 2)), flags, builds, summary, runs };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  if (flags.write) writeFileSync(join(BENCH, 'RESULTS-logs.json'), `${JSON.stringify(report, null, 2)}\n`);
  cleanup();
}

function gitHead() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

main().catch((error) => {
  say(`${NAME}: ${error.stack ?? error}`);
  cleanup();
  process.exit(1);
});
