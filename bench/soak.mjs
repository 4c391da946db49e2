#!/usr/bin/env node
// A soak (issue #12): reload after reload, back to back, under keep-alive and new-connection load
// against a real zd on 127.0.0.1, recording every failed request, each reload's time, and the
// primary's RSS and open fds over time.
//
//   node bench/soak.mjs                          # 150 reloads, 2 workers (a few minutes)
//   node bench/soak.mjs --reloads 20             # shorter
//   node bench/soak.mjs --ref HEAD               # zd as committed, not the checkout's edits
//   node bench/soak.mjs --built                  # npm run build first, then bin/zd.js runs dist/
//   node bench/soak.mjs --ref HEAD --built       # the commit, built in its own temp dir
//   node bench/soak.mjs --write latest           # also bench/RESULTS-soak-latest.json and a RESULTS.md section
//   node bench/soak.mjs --node-flags=--max-semi-space-size=2     # node flags for zd (it passes them to its workers too)
//   node bench/soak.mjs --memory-log [--memory-gc 10]            # the primary's heap from inside (lib/primary-memory.cjs)
//   node bench/soak.mjs --settle 0               # no RSS reading 90 s after the load (default 90)
//
// By default zd runs from its TypeScript source through tsx (what bin/zd.js does without a fresh
// build). Every process it starts is tracked by pid and killed by pid, on failure and on SIGINT.
// The load is bounded: it stops after the last reload, or at its own deadline and request cap.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { wholeFlag } from './lib/flags.mjs';
import { releaseLock, takeLock } from './lib/lock.mjs';
import { cleanUpOnExit, forkLoad, freePort, killTracked, rssKb, runTracked } from './lib/procs.mjs';
import { percentile, table, writeSection } from './lib/results-md.mjs';
import { BENCH, REPO, zdRunner } from './lib/runners.mjs';
import { removeSnapshots, snapshot } from './lib/snapshot.mjs';

const NAME = 'bench/soak';
const { values: flags } = parseArgs({
  options: {
    reloads: { type: 'string', default: '150' },
    workers: { type: 'string', default: '2' },
    keepalive: { type: 'string', default: '8' }, // keep-alive connections
    fresh: { type: 'string', default: '2' }, // loops opening a new connection per request
    'sample-ms': { type: 'string', default: '1000' },
    ref: { type: 'string' },
    built: { type: 'boolean', default: false },
    write: { type: 'string' },
    'node-flags': { type: 'string', default: '' },
    'memory-log': { type: 'boolean', default: false },
    'memory-gc': { type: 'string', default: '0' }, // with --memory-log: a full GC every Nth sample
    settle: { type: 'string', default: '90' }, // seconds idle after the load, for V8 to give back its young generation
  },
});
const whole = wholeFlag(NAME);
const RELOADS = whole('reloads', flags.reloads, 1, 10_000);
const WORKERS = whole('workers', flags.workers, 1, 64);
const KEEPALIVE = whole('keepalive', flags.keepalive, 0, 256);
const FRESH = whole('fresh', flags.fresh, 0, 64);
const SAMPLE_MS = whole('sample-ms', flags['sample-ms'], 100, 60_000);
const MEMORY_GC = whole('memory-gc', flags['memory-gc'], 0, 1000);
/**
 * V8 keeps a young generation it grew under load (up to 2 × 16 MB), and old space it grew, until
 * its memory reducer sees the process idle: measured, 50-60 s after the load stopped. The RSS read
 * after that is what an idle zd goes back to.
 */
const SETTLE_S = whole('settle', flags.settle, 0, 600);
const NODE_FLAGS = flags['node-flags'].split(/\s+/).filter(Boolean);
if (NODE_FLAGS.some((f) => !f.startsWith('-'))) {
  process.stderr.write(`${NAME}: --node-flags takes node's own flags (each starting with -), not '${flags['node-flags']}'\n`);
  process.exit(2);
}
if (KEEPALIVE + FRESH === 0) {
  process.stderr.write(`${NAME}: no load: --keepalive and --fresh are both 0\n`);
  process.exit(2);
}
/** The whole soak gives up after this: 20 s a reload at worst, and some. */
const WATCHDOG_MS = RELOADS * 20_000 + 120_000 + Number(flags.settle) * 1000;
const WARMUP_MS = 2000;
const IDLE_MS = 2000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (text) => process.stderr.write(`${text}\n`);

let loadChild = null;
function cleanup() {
  loadChild?.kill('SIGKILL');
  killTracked('SIGKILL');
  removeSnapshots();
  releaseLock();
}
cleanUpOnExit(NAME, cleanup, { watchdogMs: WATCHDOG_MS });

function fdCount(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

function startLoad(port) {
  const spec = { port, keepalive: KEEPALIVE, fresh: FRESH, maxMs: WATCHDOG_MS, maxRequests: 100_000_000 };
  const { child, started, result } = forkLoad(join(BENCH, 'lib', 'soak-load.mjs'), spec, { what: 'the load' });
  loadChild = child;
  child.on('exit', () => (loadChild = null));
  return { child, started, result, stop: () => child.connected && child.send({ type: 'stop' }) };
}

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

async function main() {
  takeLock(NAME);
  const snap = flags.ref ? snapshot(REPO, flags.ref) : null;
  const root = snap?.dir ?? REPO;
  const which = snap ? `zd at ${snap.sha}` : 'zd (this checkout)';
  let command;
  let what;
  if (flags.built) {
    const build = await runTracked(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build', '--prefix', root], { cwd: root, env: process.env }, 120_000);
    if (build.code !== 0) throw new Error(`npm run build failed (${build.code}):\n${build.stderr}${build.stdout}`);
    command = [join(root, 'bin', 'zd.js')];
    what = `${which}, built (bin/zd.js runs dist/zd.cjs)`;
  } else {
    command = ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts')];
    what = `${which}, from source (tsx)`;
  }
  // Where the primary's own memory goes, read from inside it by a preloaded bench file.
  let memoryLog = null;
  const memoryFlags = [];
  if (flags['memory-log']) {
    memoryLog = join(mkdtempSync(join(os.tmpdir(), 'zd-soak-mem-')), 'primary.ndjson');
    process.env.ZD_BENCH_MEMORY_LOG = memoryLog;
    process.env.ZD_BENCH_MEMORY_MS = String(SAMPLE_MS);
    process.env.ZD_BENCH_MEMORY_GC = String(MEMORY_GC);
    memoryFlags.push('--require', join(BENCH, 'lib', 'primary-memory.cjs'));
    if (MEMORY_GC > 0) memoryFlags.push('--expose-gc');
  }
  command = [...NODE_FLAGS, ...memoryFlags, ...command];
  if (NODE_FLAGS.length) what += `, node ${NODE_FLAGS.join(' ')}`;
  const facts = {
    date: new Date().toISOString(),
    command: `node bench/soak.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    what,
    // The commit that ran: the --ref's, else the checkout's.
    commit: snap?.sha ?? sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']),
    dirty: !flags.ref && sh('git', ['-C', REPO, 'status', '--porcelain', '--', 'src', 'machines']) !== '',
    node: process.version,
    cpus: os.cpus().length,
    loadavgBefore: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    params: { reloads: RELOADS, workers: WORKERS, keepalive: KEEPALIVE, fresh: FRESH, sampleMs: SAMPLE_MS, nodeFlags: NODE_FLAGS, memoryLog: flags['memory-log'], memoryGc: MEMORY_GC },
  };
  say(`${NAME}: ${RELOADS} reloads of ${what}, ${WORKERS} workers, load ${KEEPALIVE} keep-alive + ${FRESH} new-connection loops; load average ${facts.loadavgBefore}`);

  const port = await freePort();
  const handle = await zdRunner(command, what).start({ port, workers: WORKERS });
  const pid = handle.pid;
  const t0 = Date.now();
  const sample = (label) => ({ t: Date.now() - t0, label, rssKb: rssKb(pid), fds: fdCount(pid) });
  const samples = [sample('ready, idle')];
  const reloads = [];
  let load = null;
  let loadResult = null;
  let end = null;
  let settled = null;
  try {
    load = startLoad(port);
    await load.started;
    const timer = setInterval(() => samples.push(sample(`after ${reloads.length} reloads`)), SAMPLE_MS);
    await sleep(WARMUP_MS);
    samples.push(sample('under load, before the first reload'));
    for (let i = 1; i <= RELOADS; i++) {
      const r = await handle.reload();
      const s = sample(`reload ${i}`);
      reloads.push({
        i,
        outcome: r.outcome,
        ms: r.doneAt === null ? null : r.doneAt - r.triggerAt,
        oldGoneMs: r.oldGoneAt === null ? null : r.oldGoneAt - r.triggerAt,
        rssKb: s.rssKb,
        fds: s.fds,
        detail: r.detail,
      });
      samples.push(s);
      if (i % 10 === 0 || i === RELOADS || r.outcome !== 'done') {
        say(`${NAME}: reload ${i}/${RELOADS}: ${r.outcome}, ${reloads.at(-1).ms} ms; primary RSS ${(s.rssKb / 1024).toFixed(1)} MB, ${s.fds} fds`);
      }
      if (r.outcome === 'timeout') throw new Error(`reload ${i} did not finish within its deadline`);
    }
    clearInterval(timer);
    samples.push(sample('after the last reload, under load'));
    load.stop();
    loadResult = await load.result;
    await sleep(IDLE_MS);
    end = sample(`idle ${IDLE_MS / 1000} s after the load stopped`);
    samples.push(end);
    if (SETTLE_S > 0) {
      await sleep(SETTLE_S * 1000 - IDLE_MS);
      settled = sample(`idle ${SETTLE_S} s after the load stopped`);
      samples.push(settled);
    }
  } finally {
    load?.stop();
    facts.stop = await handle.stop();
    facts.problems = handle.problems();
  }

  // ---- figures
  const done = reloads.filter((r) => r.outcome === 'done');
  const times = done.map((r) => r.ms);
  const lastHalf = reloads.slice(Math.floor(reloads.length / 2));
  const mb = (kb) => (kb === null || kb === undefined ? '?' : (kb / 1024).toFixed(1));
  const failed = loadResult.keepalive.failed + loadResult.keepalive.non2xx + loadResult.fresh.failed + loadResult.fresh.non2xx;
  const requests = loadResult.keepalive.sent + loadResult.fresh.sent;
  const figures = {
    requests,
    failed,
    failedKeepalive: loadResult.keepalive.failed + loadResult.keepalive.non2xx,
    failedFresh: loadResult.fresh.failed + loadResult.fresh.non2xx,
    errors: loadResult.errors,
    reloadsDone: done.length,
    reloadsAborted: reloads.filter((r) => r.outcome === 'aborted').length,
    reloadMs: { p50: percentile(times, 50), p99: percentile(times, 99), max: percentile(times, 100) },
    rssMb: {
      start: Number(mb(samples[0].rssKb)),
      underLoad: Number(mb(samples[1].rssKb)),
      afterFirstReload: Number(mb(reloads[0]?.rssKb)),
      plateau: Number(mb(percentile(lastHalf.map((r) => r.rssKb), 50))),
      max: Number(mb(Math.max(...samples.map((s) => s.rssKb ?? 0)))),
      end: Number(mb(end?.rssKb)),
      settled: settled ? Number(mb(settled.rssKb)) : null,
    },
    fds: {
      start: samples[0].fds,
      underLoad: samples[1].fds,
      max: Math.max(...samples.map((s) => s.fds ?? 0)),
      endUnderLoad: reloads.at(-1)?.fds ?? null,
      end: end?.fds ?? null,
      settled: settled?.fds ?? null,
    },
    durationS: Math.round((Date.now() - t0) / 1000),
  };
  const summary = table(
    ['figure', 'value'],
    [
      ['requests sent (keep-alive + new connection)', `${requests.toLocaleString('en-US')} (${loadResult.keepalive.sent.toLocaleString('en-US')} + ${loadResult.fresh.sent.toLocaleString('en-US')})`],
      ['failed requests (keep-alive · new connection)', `**${failed}** (${figures.failedKeepalive} · ${figures.failedFresh})${failed ? ` ${JSON.stringify(loadResult.errors)}` : ''}`],
      ['reloads done / aborted', `${done.length} / ${figures.reloadsAborted} of ${RELOADS}`],
      ['reload time p50 · p99 · max', `${figures.reloadMs.p50} · ${figures.reloadMs.p99} · ${figures.reloadMs.max} ms`],
      ['primary RSS: ready (idle) → under load → after reload 1', `${figures.rssMb.start} → ${figures.rssMb.underLoad} → ${figures.rssMb.afterFirstReload} MB`],
      ['primary RSS: plateau (median over the last half of the reloads) · max · end (idle 2 s)', `${figures.rssMb.plateau} · ${figures.rssMb.max} · ${figures.rssMb.end} MB`],
      ...(settled ? [[`primary RSS, idle ${SETTLE_S} s after the load stopped`, `${figures.rssMb.settled} MB`]] : []),
      ['primary open fds: ready → under load → max → after the last reload → end (idle)', `${figures.fds.start} → ${figures.fds.underLoad} → ${figures.fds.max} → ${figures.fds.endUnderLoad} → ${figures.fds.end}${settled ? ` → ${figures.fds.settled} (idle ${SETTLE_S} s)` : ''}`],
      ['duration', `${figures.durationS} s`],
    ],
    ['l', 'l'],
  );
  // RSS and fds every tenth of the way, to see a trend rather than two end points.
  const step = Math.max(1, Math.floor(reloads.length / 10));
  const trend = table(
    ['after reload', 'reload ms', 'primary RSS MB', 'fds'],
    reloads.filter((r) => r.i === 1 || r.i % step === 0 || r.i === reloads.length).map((r) => [String(r.i), String(r.ms), mb(r.rssKb), String(r.fds)]),
  );
  const memory = memoryLog ? primaryMemory(memoryLog) : null;
  process.stdout.write(`${summary}\n\n${trend}\n${memory ? `\n${memory.table}\n` : ''}`);
  if (facts.problems.length) process.stdout.write(`\nzd's warnings and errors:\n${facts.problems.slice(0, 20).join('\n')}\n`);

  const data = { facts, figures, reloads, samples, load: loadResult, primaryMemory: memory?.lines ?? null };
  if (flags.write !== undefined) {
    const label = flags.write || 'latest';
    if (!/^[\w.-]{1,40}$/.test(label)) throw new Error(`--write takes a short label, not '${label}'`);
    const json = join(BENCH, `RESULTS-soak-${label}.json`);
    writeFileSync(json, `${JSON.stringify(data, null, 1)}\n`);
    const file = writeSection(
      `soak:${label}`,
      `## Soak: ${RELOADS} reloads back to back under load (${label})

\`${facts.command}\` — ${what}, ${WORKERS} workers of \`bench/apps/app.cjs\`; ${KEEPALIVE} keep-alive
connections and ${FRESH} loops opening a new connection per request, without pause, on 127.0.0.1, the whole time.
Each reload is a SIGHUP sent once the previous one is done and its old workers have exited.
${facts.date}, commit ${facts.commit}${facts.dirty ? ' (src/ or machines/ had uncommitted changes)' : ''}, Node ${facts.node}, ${facts.cpus} cores, load average before ${facts.loadavgBefore}.
Raw, with a sample every ${SAMPLE_MS} ms: \`bench/RESULTS-soak-${label}.json\`.

${summary}

${trend}
${memory ? `\nThe primary's memory from inside (\`--memory-log\`, bench/lib/primary-memory.cjs), MB:\n\n${memory.table}\n` : ''}${facts.problems.length ? `\nzd logged ${facts.problems.length} warning(s) or error(s); the first: \`${facts.problems[0].slice(0, 300).replaceAll('`', "'")}\`\n` : ''}`,
    );
    say(`${NAME}: wrote ${json} and section '${label}' of ${file}`);
  }
  if (failed > 0 || done.length !== RELOADS) process.exitCode = 1;
}

/**
 * The preload's samples: at the start, a tenth of the way each time, and at the end; `afterGc`
 * columns only when --memory-gc made some (the nearest such sample at or before each row).
 */
function primaryMemory(file) {
  let lines;
  try {
    lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  } catch {
    return null;
  } finally {
    rmSync(join(file, '..'), { recursive: true, force: true });
  }
  if (lines.length === 0) return null;
  const mb = (b) => (b === undefined || b === null ? '–' : (b / 2 ** 20).toFixed(1));
  const step = Math.max(1, Math.floor(lines.length / 10));
  const rows = lines.filter((_, i) => i === 0 || i % step === 0 || i === lines.length - 1);
  const withGc = lines.some((l) => l.afterGc);
  const header = ['t, s', 'rss', 'heap total', 'heap used', 'new space (size)', 'old space (size · used)', 'code', 'external', 'array buffers'];
  if (withGc) header.push('heap used after a full GC (at t, s)');
  const body = rows.map((l) => {
    const sp = (name, i) => mb(l.spaces?.[name]?.[i]);
    const row = [(l.t / 1000).toFixed(0), mb(l.rss), mb(l.heapTotal), mb(l.heapUsed), sp('new_space', 0), `${sp('old_space', 0)} · ${sp('old_space', 1)}`, sp('code_space', 0), mb(l.external), mb(l.arrayBuffers)];
    if (withGc) {
      const gc = lines.filter((x) => x.afterGc && x.t <= l.t).at(-1);
      row.push(gc ? `${mb(gc.afterGc.heapUsed)} (${(gc.t / 1000).toFixed(0)})` : '–');
    }
    return row;
  });
  return { lines, table: table(header, body) };
}

try {
  await main();
} finally {
  cleanup();
}
