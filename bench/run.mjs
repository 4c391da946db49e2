#!/usr/bin/env node
// zd's benchmark (issue #4): reload under load and steady state, zd against a hand-written
// node:cluster script and PM2, all serving bench/apps/app.cjs on 127.0.0.1.
//
//   npm --prefix bench ci && node bench/run.mjs          # the full run (~8 min), writes bench/RESULTS.md
//   node bench/run.mjs --quick                           # a smoke run: 1 rep, short windows, prints only
//   node bench/run.mjs --only steady --steady-reps 9     # more repetitions of one part, for tighter medians
//   node bench/run.mjs --report-only                     # rewrite RESULTS.md from RESULTS.json
//   node bench/run.mjs --only reload --boot-ms 1000      # every runner's workers take 1 s to listen
//
// Every process it starts is tracked by pid and killed by pid at the end, on failure and on SIGINT;
// PM2 runs with its own PM2_HOME in a temp dir and is `pm2 kill`ed after every run.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { releaseLock, takeLock } from './lib/lock.mjs';
import { cleanUpOnExit, cpuMs, forkLoad, freePort, killTracked, otherCpuSeconds, otherCpuSnapshot, processesOfThisRun, rssKb, trackedAlive } from './lib/procs.mjs';
import { report } from './lib/report.mjs';
import { BENCH, pm2Homes, REPO, RUNNERS } from './lib/runners.mjs';
import { build, buildIsFresh, builds } from './lib/build.mjs';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' }, // steady | reload
    'steady-reps': { type: 'string' },
    'reload-reps': { type: 'string' },
    'report-only': { type: 'boolean', default: false }, // re-render RESULTS.md from RESULTS.json
    out: { type: 'string' },
    // How long the app takes to listen once started, for every runner alike (BENCH_BOOT_MS): a
    // reload's cost is counted in boots, and the quick app's are a few tens of ms.
    'boot-ms': { type: 'string' },
  },
});

const FULL = {
  workers: 2,
  steadyReps: 3,
  steadyWarmupMs: 2000,
  steadyMs: 10_000,
  reloadReps: 5,
  reloadMs: 8000,
  triggerAtMs: 2000,
  connections: 50,
  perConnectionLoops: 8,
  binMs: 100,
  maxRequests: 2_000_000,
};
const QUICK = { ...FULL, steadyReps: 1, steadyWarmupMs: 1000, steadyMs: 3000, reloadReps: 1, reloadMs: 4000, triggerAtMs: 1500 };
if (flags.only !== undefined && flags.only !== 'steady' && flags.only !== 'reload') {
  process.stderr.write(`bench: --only takes steady or reload, not '${flags.only}'\n`);
  process.exit(2);
}
const P = { ...(flags.quick ? QUICK : FULL) };
for (const [flag, key] of [['steady-reps', 'steadyReps'], ['reload-reps', 'reloadReps']]) {
  if (flags[flag] === undefined) continue;
  const n = Number(flags[flag]);
  if (!Number.isInteger(n) || n < 1 || n > 50) {
    process.stderr.write(`bench: --${flag} takes a whole number from 1 to 50\n`);
    process.exit(2);
  }
  P[key] = n;
}
if (flags['boot-ms'] !== undefined) {
  const ms = Number(flags['boot-ms']);
  if (!Number.isInteger(ms) || ms < 0 || ms > 20_000) {
    process.stderr.write('bench: --boot-ms takes a whole number of milliseconds from 0 to 20000\n');
    process.exit(2);
  }
  // Every runner's workers inherit it (runners.mjs passes process.env on).
  process.env.BENCH_BOOT_MS = String(ms);
}
P.bootMs = Number(process.env.BENCH_BOOT_MS ?? 0);
const OUT = flags.out ?? (flags.quick ? null : join(BENCH, 'RESULTS.md'));
const WATCHDOG_MS = 20 * 60_000;
const COMMAND = 'npm --prefix bench ci && node bench/run.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (text) => process.stderr.write(`${text}\n`);

// ---------------------------------------------------------------------------------------------
// Clean-up: every exit path goes through here.
const activeLoads = new Set();
let cleaningUp = false;
function cleanupNow() {
  if (cleaningUp) return;
  cleaningUp = true;
  for (const child of activeLoads) child.kill('SIGKILL');
  killTracked('SIGKILL');
  // Should a pid have escaped tracking (a PM2 instance forked after the last look), it still
  // carries this run's mark in its environment.
  for (const pid of processesOfThisRun()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const home of pm2Homes) rmSync(home, { recursive: true, force: true });
  releaseLock();
}
cleanUpOnExit('bench', cleanupNow, { watchdogMs: WATCHDOG_MS, newline: true });

// ---------------------------------------------------------------------------------------------
/** Starts the load child; resolves { started: Promise<at>, result: Promise<result> }. */
function startLoad(spec) {
  const { child, started, result } = forkLoad(join(BENCH, 'lib', 'load.mjs'), spec, { killAfterMs: spec.durationMs + 30_000 });
  activeLoads.add(child);
  child.on('exit', () => activeLoads.delete(child));
  return { started, result };
}

function rssOf(handle) {
  const { primary, workers } = handle.rssPids();
  return {
    primaryKb: rssKb(primary),
    workersKb: workers.map(rssKb).filter((kb) => kb !== null),
  };
}

/** Responses per second within [from, to], from the load's bins (partial bins weighted by overlap). */
function rateBetween(load, from, to) {
  if (from === null || to === null || to <= from) return null;
  let count = 0;
  for (let i = 0; i < load.bins.length; i++) {
    const a = load.startedAt + i * load.binMs;
    const b = a + load.binMs;
    const overlap = Math.max(0, Math.min(b, to) - Math.max(a, from));
    count += (load.bins[i] * overlap) / load.binMs;
  }
  return count / ((to - from) / 1000);
}

// ---------------------------------------------------------------------------------------------
/**
 * Starts runner `name` on a free port (rebuilding zd first if its source changed), hands it to
 * `measure`, and always stops it. An error is recorded in the run, never thrown: one failed run
 * must not stop the benchmark.
 */
async function measured(run, name, measure) {
  run.port = await freePort();
  let handle;
  try {
    if (name === 'zd' && !buildIsFresh()) await build('source changed during the run');
    run.zdPath = name === 'zd' ? 'dist' : name === 'zd-source' ? 'source' : null;
    handle = await RUNNERS[name].start({ port: run.port, workers: P.workers });
    if (handle.pingMs !== undefined) run.pm2PingMs = handle.pingMs;
    await measure(handle, run.port, run);
    run.problems = handle.problems();
  } catch (error) {
    run.error = String(error.stack ?? error);
  } finally {
    if (handle) run.stop = await handle.stop();
  }
  return run;
}

async function steadyRun(name, rep) {
  return measured({ name, rep }, name, async (handle, port, run) => {
      const warm = startLoad({ mode: 'keepalive', port, durationMs: P.steadyWarmupMs, connections: P.connections, maxRequests: P.maxRequests, binMs: 1000 });
      run.warmup = strip(await warm.result);
      const load = startLoad({ mode: 'keepalive', port, durationMs: P.steadyMs, connections: P.connections, maxRequests: P.maxRequests, binMs: 1000 });
      await load.started;
      const other = otherCpuSnapshot();
      // CPU the runner's processes spend per request: unlike req/s, it barely depends on how the
      // scheduler shares two cores between the load generator and the workers in a given run.
      const { primary, workers } = handle.rssPids();
      const pids = [primary, ...workers];
      const cpuBefore = pids.map(cpuMs);
      await sleep(P.steadyMs * 0.8);
      run.rss = rssOf(handle);
      run.load = strip(await load.result);
      const cpuAfter = pids.map(cpuMs);
      run.otherCpuS = otherCpuSeconds(other, otherCpuSnapshot());
      run.cpu = {
        primaryMs: primary === pids[0] && workers.length > 0 ? cpuAfter[0] - cpuBefore[0] : null,
        totalMs: cpuAfter.reduce((sum, ms, i) => sum + (ms ?? 0) - (cpuBefore[i] ?? 0), 0),
      };
      run.cpuMsPer1kReq = run.load.responses > 0 ? (1000 * run.cpu.totalMs) / run.load.responses : null;
  });
}

async function reloadRun(name, mode, rep) {
  return measured({ name, mode, rep }, name, async (handle, port, run) => {
      const load = startLoad({
        mode,
        port,
        durationMs: P.reloadMs,
        connections: mode === 'keepalive' ? P.connections : P.perConnectionLoops,
        maxRequests: P.maxRequests,
        binMs: P.binMs,
      });
      const startedAt = await load.started;
      const other = otherCpuSnapshot();
      await sleep(Math.max(0, startedAt + P.triggerAtMs - Date.now()));
      run.reload = await handle.reload();
      run.load = await load.result;
      run.otherCpuS = otherCpuSeconds(other, otherCpuSnapshot());
      const r = run.reload;
      run.reloadMs = r.doneAt === null ? null : r.doneAt - r.triggerAt;
      run.oldGoneMs = r.oldGoneAt === null ? null : r.oldGoneAt - r.triggerAt;
      run.rpsBefore = rateBetween(run.load, r.triggerAt - 1000, r.triggerAt);
      run.rpsDuring = rateBetween(run.load, r.triggerAt, r.doneAt);
      run.load = strip(run.load);
  });
}

function strip(load) {
  const { bins, ...rest } = load;
  return rest;
}

function rotate(list, by) {
  return list.map((_, i) => list[(i + by) % list.length]);
}

/** Share of both cores busy over `ms`, from /proc/stat: other work on the machine skews every number. */
async function cpuBusyPercent(ms) {
  const read = () => {
    const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
    const idle = fields[3] + fields[4];
    return { idle, total: fields.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await sleep(ms);
  const b = read();
  return Math.round((100 * (1 - (b.idle - a.idle) / (b.total - a.total))) || 0);
}

function sh(command) {
  try {
    return execFileSync('sh', ['-c', command], { encoding: 'utf8' }).trim();
  } catch (error) {
    return `(${command} failed: ${error.message.split('\n')[0]})`;
  }
}

function machine() {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model;
  const pkg = (name) => JSON.parse(readFileSync(join(BENCH, 'node_modules', name, 'package.json'), 'utf8')).version;
  return {
    nproc: sh('nproc'),
    node: sh('node -v'),
    cpu,
    memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    kernel: os.release(),
    autocannon: pkg('autocannon'),
    pm2: pkg('pm2'),
    commit: sh(`git -C ${REPO} rev-parse --short HEAD`),
    dirty: sh(`git -C ${REPO} status --porcelain -- src machines bin package.json`),
  };
}

// ---------------------------------------------------------------------------------------------
async function main() {
  if (flags['report-only']) {
    const out = OUT ?? join(BENCH, 'RESULTS.md');
    const data = JSON.parse(readFileSync(out.replace(/\.md$/, '.json'), 'utf8'));
    const { markdown, summary } = report(data);
    writeFileSync(out, markdown);
    process.stdout.write(`${summary}\n`);
    say(`bench: rewrote ${out} from ${out.replace(/\.md$/, '.json')} (no run)`);
    return;
  }
  const begin = Date.now();
  if (!existsSync(join(REPO, 'node_modules', 'esbuild')) || !existsSync(join(REPO, 'node_modules', 'tsx'))) {
    say("bench: zd's own dependencies are missing: run `npm ci` in the repository first");
    process.exit(2);
  }
  if (!existsSync(join(BENCH, 'node_modules', 'autocannon')) || !existsSync(join(BENCH, 'node_modules', 'pm2'))) {
    say('bench: run `npm --prefix bench ci` first');
    process.exit(2);
  }
  takeLock('bench');
  const facts = machine();
  const context = {
    date: new Date().toISOString(),
    command: process.argv.length > 2 ? `node bench/run.mjs ${process.argv.slice(2).join(' ')}` : COMMAND,
    facts,
    params: P,
    nodeProcsBefore: sh('ps aux | grep -c node'),
    loadavgBefore: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    cpuBusyBefore: await cpuBusyPercent(2000),
  };
  say(`bench: ${facts.nproc} cores, node ${facts.node}, zd ${facts.commit}${facts.dirty ? ' (source has uncommitted changes)' : ''}; load average ${context.loadavgBefore}`);
  if (context.cpuBusyBefore > 15) {
    say(`bench: WARNING: the CPU was ${context.cpuBusyBefore} % busy before the run started: other work skews every number (it is recorded in the results)`);
  }
  say('bench: npm run build (zd runs from dist/zd.cjs, as a published package does)');
  await build('start of the run');

  const steady = [];
  const reload = [];
  if (flags.only !== 'reload') {
    const names = ['single', 'seed-cluster', 'zd', 'pm2'];
    for (let rep = 1; rep <= P.steadyReps; rep++) {
      for (const name of rotate(names, rep - 1)) {
        say(`bench: steady ${name} rep ${rep}/${P.steadyReps}`);
        const run = await steadyRun(name, rep);
        steady.push(run);
        say(`  ${summarizeSteady(run)}`);
      }
    }
    say('bench: steady zd-source (RSS of the unbuilt path)');
    const run = await steadyRun('zd-source', 1);
    steady.push(run);
    say(`  ${summarizeSteady(run)}`);
  }
  if (flags.only !== 'steady') {
    const names = ['seed-cluster', 'zd', 'pm2'];
    for (const mode of ['keepalive', 'per-connection']) {
      for (let rep = 1; rep <= P.reloadReps; rep++) {
        for (const name of rotate(names, rep - 1)) {
          say(`bench: reload ${mode} ${name} rep ${rep}/${P.reloadReps}`);
          const run = await reloadRun(name, mode, rep);
          reload.push(run);
          say(`  ${summarizeReload(run)}`);
        }
      }
    }
  }

  // Nothing of ours may survive. (The PM2 daemon is reparented to init when it detaches; a zombie
  // of it waiting to be reaped there is not running and is not counted.)
  await sleep(1000);
  const leftovers = [...new Set([...trackedAlive(), ...processesOfThisRun()])];
  context.leftovers = leftovers.map((pid) => `${pid} ${sh(`ps -o args= -p ${pid}`)}`);
  cleanupNow();
  context.nodeProcsAfter = sh('ps aux | grep -c node');
  context.builds = builds;
  context.elapsedS = Math.round((Date.now() - begin) / 1000);

  const { markdown, summary } = report({ context, steady, reload });
  process.stdout.write(`\n${summary}\n`);
  if (OUT) {
    writeFileSync(OUT, markdown);
    writeFileSync(OUT.replace(/\.md$/, '.json'), `${JSON.stringify({ context, steady, reload }, null, 1)}\n`);
    say(`bench: wrote ${OUT} and ${OUT.replace(/\.md$/, '.json')}`);
  }
  const failedRuns = [...steady, ...reload].filter((r) => r.error);
  say(`bench: ${context.elapsedS} s; ${failedRuns.length} run(s) failed; leftover processes: ${leftovers.length}; node processes before/after: ${context.nodeProcsBefore}/${context.nodeProcsAfter}`);
  releaseLock();
  process.exit(failedRuns.length > 0 || leftovers.length > 0 ? 1 : 0);
}

function summarizeSteady(run) {
  if (run.error) return `ERROR ${run.error.split('\n')[0]}`;
  return `${Math.round(run.load.rps)} req/s, ${run.cpuMsPer1kReq?.toFixed(1)} CPU-ms per 1k requests, errors ${run.load.errors}, primary RSS ${((run.rss.primaryKb ?? 0) / 1024).toFixed(1)} MB; other processes used ${run.otherCpuS.toFixed(1)} CPU-s`;
}

function summarizeReload(run) {
  if (run.error) return `ERROR ${run.error.split('\n')[0]}`;
  const l = run.load;
  return `reload ${run.reloadMs} ms (${run.reload.outcome}${run.reload.bootsMs ? `, boots ${run.reload.bootsMs.join('+')} ms` : ''}), old gone ${run.oldGoneMs} ms; ${l.responses} responses, errors ${l.errors} (timeouts ${l.timeouts}), non2xx ${l.non2xx}${l.mode === 'keepalive' ? `, lost on close ${l.droppedOnClose} (after Connection: close ${l.droppedOnCloseAfterConnClose})` : ''} ${JSON.stringify(l.reqErrors)}; other processes used ${run.otherCpuS.toFixed(1)} CPU-s`;
}

main().catch((error) => {
  say(`bench: ${error.stack ?? error}`);
  cleanupNow();
  process.exit(1);
});
