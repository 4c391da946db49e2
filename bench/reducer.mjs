#!/usr/bin/env node
// The primary's reducer alone (issue #12): events per second for the events a running zd sees all
// the time, with a pool of 2 and of 64 ready workers. No process, no socket: `init`/`reduce`
// called directly, as the runtime calls them.
//
//   node bench/reducer.mjs                       # 2 and 64 workers, 50,000 events of each kind
//   node bench/reducer.mjs --workers 2,16,64 --events 20000
//   node bench/reducer.mjs --ref f9eb305         # the core as of a commit (extracted to a temp dir)
//   node bench/reducer.mjs --write before        # also write the table into bench/RESULTS.md
//   node bench/reducer.mjs --reps 5              # 5 measured passes per pool (default 3), medians
//
// On a machine shared with other work the wall-clock rate says as much about the neighbours as
// about the reducer, so each pass also reads this process's CPU time (process.cpuUsage, twice a
// pass: cheap) and gives the rate per CPU-second: the events a core spends on nothing else would
// reduce. The verdicts are judged on that rate; both are printed. The CPU time also counts V8's
// GC helper threads, so the per-CPU-second rate errs low, not high.
//
// It goes through the public entry points only (init, reduce, and the events and effects they
// exchange), so it measures the core whatever its files look like inside. Each event's effects
// are checked, so a reducer that stopped doing the work cannot look fast.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { wholeFlag } from './lib/flags.mjs';
import { releaseLock, takeLock } from './lib/lock.mjs';
import { table, writeSection } from './lib/results-md.mjs';
import { removeSnapshots, snapshot } from './lib/snapshot.mjs';

const { values: flags } = parseArgs({
  options: {
    workers: { type: 'string', default: '2,64' },
    events: { type: 'string', default: '50000' },
    warmup: { type: 'string', default: '5000' },
    reps: { type: 'string', default: '3' },
    write: { type: 'string' }, // a label: writes the table into RESULTS.md under it
    json: { type: 'boolean', default: false },
    ref: { type: 'string' },
  },
});

const whole = wholeFlag('bench/reducer');
const POOLS = flags.workers.split(',').map((w) => whole('workers', w.trim(), 1, 1024));
const EVENTS = whole('events', flags.events, 100, 10_000_000);
const WARMUP = whole('warmup', flags.warmup, 0, 10_000_000);
const REPS = whole('reps', flags.reps, 1, 50);
const TARGET_RATE = 200_000;
const TARGET_RATIO = 0.5;

const { register } = await import('tsx/esm/api');
register();
const REPO = new URL('..', import.meta.url).pathname;
const snap = flags.ref ? snapshot(REPO, flags.ref) : null;
process.on('exit', removeSnapshots);
const root = snap ? `${snap.dir}/` : REPO;
const core = await import(`${root}src/core/reduce.ts`);
if (typeof core.init !== 'function' || typeof core.reduce !== 'function') {
  process.stderr.write('bench/reducer: src/core/reduce.ts no longer exports init and reduce: point this script at the module that does\n');
  process.exit(2);
}
let defaults = {};
try {
  ({ DEFAULTS: defaults } = await import(`${root}src/core/config.ts`));
} catch {
  // moved: the explicit settings below are all the reducer reads
}

// Distinct durations, so that a timer.start effect tells which timer it is without knowing ids.
const MS = { ready: 20_000, stable: 30_000, interval: 5_000, timeout: 2_000 };
const LIMIT = 512 * 2 ** 20;

function config(workers) {
  return {
    ...defaults,
    workers,
    readyOn: 'listening',
    readyTimeoutMs: MS.ready,
    drainTimeoutMs: 30_000,
    killTimeoutMs: 5_000,
    stableAfterMs: MS.stable,
    backoffInitialMs: 100,
    backoffMaxMs: 10_000,
    maxRestarts: 10,
    maxSurge: 1,
    maxUnavailable: 0,
    retireStaggerMs: 0,
    shutdownDelayMs: 0,
    heartbeatTimeoutMs: MS.timeout,
    heartbeatIntervalMs: MS.interval,
    maxMemoryBytes: LIMIT,
  };
}

/** A pool of `n` ready, stable workers with heartbeats running, driven there by events alone. */
function pool(n) {
  const timers = new Map(); // pending timer id → ms, from the effects
  const logs = [];
  let state;
  const apply = (step) => {
    state = step.state;
    for (const e of step.effects) {
      if (e.type === 'timer.start') timers.set(e.timerId, e.ms);
      else if (e.type === 'timer.cancel') timers.delete(e.timerId);
      else if (e.type === 'log') logs.push(e.code);
    }
    return step;
  };
  const forks = apply(core.init(config(n))).effects.filter((e) => e.type === 'fork');
  if (forks.length !== n) throw new Error(`init forked ${forks.length} workers, not ${n}`);
  const ids = forks.map((f) => f.workerId);
  for (const id of ids) apply(core.reduce(state, { type: 'worker.forked', workerId: id, pid: 10_000 + id }));
  for (const id of ids) apply(core.reduce(state, { type: 'worker.online', workerId: id }));
  for (const id of ids) apply(core.reduce(state, { type: 'worker.listening', workerId: id, address: '127.0.0.1:3000' }));
  if (logs.filter((c) => c === 'ZD_WORKER_READY').length !== n || !logs.includes('ZD_READY')) {
    throw new Error(`the pool did not become ready: ${logs.join(' ')}`);
  }
  // Up for stableAfterMs: a long-running pool.
  for (const [id, ms] of [...timers]) {
    if (ms === MS.stable) {
      timers.delete(id);
      apply(core.reduce(state, { type: 'timer.fired', timerId: id }));
    }
  }
  // What is left is one heartbeat timer per worker; firing it tells whose it is.
  const pingTimer = new Map(); // workerId → its ping timer's id
  const seq = new Map(); // workerId → the ping it waits for an answer to
  const left = [...timers];
  if (left.length !== n || left.some(([, ms]) => ms !== MS.interval)) {
    throw new Error(`expected ${n} heartbeat timers, found ${JSON.stringify(left)}`);
  }
  for (const [timerId] of left) {
    timers.delete(timerId);
    const step = apply(core.reduce(state, { type: 'timer.fired', timerId }));
    const ping = step.effects.find((e) => e.type === 'send' && e.message?.type === 'zd:ping');
    if (!ping) throw new Error(`timer ${timerId} sent no ping`);
    pingTimer.set(ping.workerId, timerId);
    seq.set(ping.workerId, ping.message.seq);
  }
  return {
    ids,
    get state() {
      return state;
    },
    set state(s) {
      state = s;
    },
    pingTimer,
    seq,
  };
}

function fail(kind, event, effects) {
  throw new Error(`${kind}: unexpected effects for ${JSON.stringify(event)}: ${JSON.stringify(effects)}`);
}

/**
 * Round after round over every worker, until `count` events of each kind have been reduced; each
 * round of one kind is timed as a whole. Pongs and ping-timer firings alternate (a pong re-arms
 * the ping timer, whose firing sends the next ping), so both run against a live heartbeat.
 */
function run(p, count) {
  const ns = { memory: 0n, pong: 0n, timer: 0n, app: 0n };
  const done = { memory: 0, pong: 0, timer: 0, app: 0 };
  const { reduce } = core;
  let s = p.state;
  let n = 0;
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  while (done.memory < count || done.pong < count || done.timer < count || done.app < count) {
    // memory samples under the limit: nothing to do, and nothing done
    const memory = p.ids.map((workerId) => ({ type: 'worker.memory', workerId, rssBytes: 100 * 2 ** 20 + n }));
    let t = process.hrtime.bigint();
    for (const event of memory) {
      const step = reduce(s, event);
      if (step.effects.length !== 0) fail('memory', event, step.effects);
      s = step.state;
    }
    ns.memory += process.hrtime.bigint() - t;
    done.memory += memory.length;

    // the answers to the pings sent: each cancels its deadline and arms the next ping
    const pongs = p.ids.map((workerId) => ({ type: 'worker.message', workerId, message: { type: 'zd:pong', seq: p.seq.get(workerId) } }));
    t = process.hrtime.bigint();
    for (const event of pongs) {
      const step = reduce(s, event);
      // The next ping's timer (its id is whatever the reducer names it).
      const next = step.effects.find((e) => e.type === 'timer.start' && e.ms === MS.interval);
      if (!next) fail('pong', event, step.effects);
      p.pingTimer.set(event.workerId, next.timerId);
      s = step.state;
    }
    ns.pong += process.hrtime.bigint() - t;
    done.pong += pongs.length;

    // the ping timers fire: each sends a ping and arms its answer's deadline
    const fired = p.ids.map((workerId) => ({ type: 'timer.fired', timerId: p.pingTimer.get(workerId) }));
    const sent = [];
    t = process.hrtime.bigint();
    for (const event of fired) {
      const step = reduce(s, event);
      sent.push(step.effects);
      s = step.state;
    }
    ns.timer += process.hrtime.bigint() - t;
    done.timer += fired.length;
    for (const [i, effects] of sent.entries()) {
      const ping = effects.find((e) => e.type === 'send' && e.message?.type === 'zd:ping');
      if (!ping) fail('timer', fired[i], effects);
      p.seq.set(ping.workerId, ping.message.seq);
    }

    // an app's own message per request (Node's cluster docs' notifyRequest): not zd's business
    const app = p.ids.map((workerId) => ({ type: 'worker.message', workerId, message: { cmd: 'notifyRequest', n } }));
    t = process.hrtime.bigint();
    for (const event of app) {
      const step = reduce(s, event);
      if (step.effects.length !== 0) fail('app', event, step.effects);
      s = step.state;
    }
    ns.app += process.hrtime.bigint() - t;
    done.app += app.length;
    n++;
  }
  const wallUs = Number(process.hrtime.bigint() - wall0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  p.state = s;
  // The share of the pass this process was on a core; each kind's rounds are interleaved with the
  // others', so each kind had the same share of its own timed windows.
  const cpuShare = Math.min(1, (cpu.user + cpu.system) / wallUs);
  const rate = (kind) => done[kind] / (Number(ns[kind]) / 1e9);
  const wall = { memory: rate('memory'), pong: rate('pong'), timer: rate('timer'), app: rate('app') };
  const perCpu = Object.fromEntries(Object.entries(wall).map(([kind, r]) => [kind, r / cpuShare]));
  return { wall, perCpu, cpuShare, events: done };
}

const KINDS = [
  ['memory', 'memory sample below the limit (`worker.memory`)'],
  ['pong', 'heartbeat answer (`worker.message` zd:pong)'],
  ['timer', 'ping timer firing (`timer.fired`)'],
  ['app', "an app's own IPC message (`worker.message`)"],
];

takeLock('bench/reducer');
process.on('exit', releaseLock);
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const passes = Object.fromEntries(POOLS.map((n) => [n, []]));
// Every pool is warmed before any is measured: the first measured must not pay for the JIT.
const pools = new Map(POOLS.map((n) => [n, pool(n)]));
if (WARMUP > 0) for (const p of pools.values()) run(p, WARMUP);
// The pools take turns, pass after pass, so a busy moment on the machine hits them alike.
for (let rep = 1; rep <= REPS; rep++) {
  for (const n of POOLS) {
    const t0 = Date.now();
    const r = run(pools.get(n), EVENTS);
    passes[n].push(r);
    process.stderr.write(
      `bench/reducer: pass ${rep}, ${n} workers: ${KINDS.map(([k]) => `${k} ${Math.round(r.wall[k])}/s (${Math.round(r.perCpu[k])}/CPU-s)`).join(', ')}; on a core ${(100 * r.cpuShare).toFixed(0)} % of the time (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`,
    );
  }
}
const results = {};
for (const n of POOLS) {
  results[n] = { wall: {}, perCpu: {}, cpuShare: passes[n].map((r) => r.cpuShare) };
  for (const [kind] of KINDS) {
    results[n].wall[kind] = median(passes[n].map((r) => r.wall[kind]));
    results[n].perCpu[kind] = median(passes[n].map((r) => r.perCpu[kind]));
  }
}

const fmt = (x) => Math.round(x).toLocaleString('en-US');
const small = Math.min(...POOLS);
const large = Math.max(...POOLS);
const header = ['events', ...POOLS.map((n) => `${n} workers, events per CPU-s (per wall s)`)];
if (large !== small) header.push(`${large}/${small}`);
const rows = KINDS.map(([kind, label]) => {
  const row = [label, ...POOLS.map((n) => `${fmt(results[n].perCpu[kind])} (${fmt(results[n].wall[kind])})`)];
  if (large !== small) row.push((results[large].perCpu[kind] / results[small].perCpu[kind]).toFixed(2));
  return row;
});
const shares = POOLS.map((n) => `${n} workers ${results[n].cpuShare.map((x) => `${(100 * x).toFixed(0)} %`).join(', ')}`).join('; ');
const markdownTable = `${table(header, rows)}\n\nMedians of ${REPS} pass(es). The process was on a core this share of each pass: ${shares}.`;
process.stdout.write(`${markdownTable}\n`);

const verdicts = large === small ? [] : KINDS.map(([kind]) => {
  const rate = results[large].perCpu[kind];
  const ratio = rate / results[small].perCpu[kind];
  const ok = rate >= TARGET_RATE && ratio >= TARGET_RATIO;
  return `- ${kind}: ${ok ? 'met' : 'missed'} (${fmt(rate)}/CPU-s at ${large} workers, target ≥ ${fmt(TARGET_RATE)}; ${ratio.toFixed(2)}× the ${small}-worker rate, target ≥ ${TARGET_RATIO})`;
});
if (verdicts.length) process.stdout.write(`\nTargets (issue #12):\n${verdicts.join('\n')}\n`);

const sh = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
};
const facts = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: os.cpus().length,
  cpu: os.cpus()[0]?.model ?? '?',
  loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  commit: snap?.sha ?? sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']),
  dirty: !snap && sh('git', ['-C', REPO, 'status', '--porcelain', '--', 'src/core', 'machines']) !== '',
};
if (flags.json) process.stdout.write(`${JSON.stringify({ facts, events: EVENTS, warmup: WARMUP, reps: REPS, results, passes }, null, 1)}\n`);

if (flags.write !== undefined) {
  const label = flags.write || 'latest';
  if (!/^[\w.-]{1,40}$/.test(label)) {
    process.stderr.write(`bench/reducer: --write takes a short label (letters, digits, '.', '_', '-'), not '${label}'\n`);
    process.exit(2);
  }
  const command = `node bench/reducer.mjs ${process.argv.slice(2).join(' ')}`.trim();
  const file = writeSection(
    `reducer:${label}`,
    `## The reducer alone: events per second (${label})

\`${command}\` — \`init\`/\`reduce\` called directly on a pool of ready, stable workers with
heartbeat and --max-memory on; ${EVENTS.toLocaleString('en-US')} events of each kind per pass after ${WARMUP.toLocaleString('en-US')} of warm-up.
${facts.date}, commit ${facts.commit}${facts.dirty ? ' (src/core or machines/ had uncommitted changes)' : ''}, Node ${facts.node}, ${facts.cpus} × ${facts.cpu}, load average ${facts.loadavg}.

${markdownTable}
${verdicts.length ? `\nTarget: ≥ ${fmt(TARGET_RATE)} events/s at ${large} workers and ≥ ${TARGET_RATIO}× the ${small}-worker rate.\n${verdicts.join('\n')}\n` : ''}`,
  );
  process.stderr.write(`bench/reducer: wrote section '${label}' of ${file}\n`);
}
