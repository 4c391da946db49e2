#!/usr/bin/env node
// zd owns the listening sockets (issue 13): what handing every connection through zd's primary
// costs, against node:cluster's own round robin. Side by side in one run, alternating.
//
//   node bench/sockets.mjs                     # 3 reps, 8 s windows after 2 s of warm-up, 2 workers,
//                                              # then `zd upgrade` under each load (about 3 minutes)
//   node bench/sockets.mjs --reps 5 --write    # writes its section of bench/RESULTS.md (+ RESULTS-sockets.json)
//   node bench/sockets.mjs --upgrades 0        # the throughput comparison only
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
// generator it moves much less.
//
// Then zd upgrade under load (issue 13's third guard: 0 failed requests): per load, a fresh zd
// (its own ZD_RUNTIME_DIR, a scratch dir) takes the load for --upgrade-seconds after its warm-up,
// and `zd upgrade <name> --wait` runs --upgrades times, evenly spaced inside that window. Recorded:
// every failed request (by kind), req/s over the window and its lowest second, how long each
// upgrade took (the CLI's wall clock, the keeper's ZD_UPGRADE_STARTED → DONE, the old primary's
// exit), and the pids: the keeper (the process spawned here) must stay the same process while
// each upgrade brings a new primary (ZD_CONFIG's primaryPid), which `zd status` must then name.
//
// zd runs as installed: dist/ is rebuilt (npm run build) when it is older than src/ or machines/,
// at the start and before each zd start, since bin/zd.js would otherwise run the source through
// tsx. Every process started is tracked by pid and killed by pid.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { wholeFlag } from './lib/flags.mjs';
import { releaseLock, takeLock } from './lib/lock.mjs';
import { cleanUpOnExit, isAlive, isOurs, killTracked, runTracked, stopTree, trackTree } from './lib/procs.mjs';
import { failureKinds, whenFailed } from './lib/failure-kinds.mjs';
import { failures } from './lib/report.mjs';
import { percentile, table, writeSection } from './lib/results-md.mjs';
import { BENCH, REPO } from './lib/runners.mjs';
import { buildIsFresh, builds } from './lib/build.mjs';
import { loadsOf, sessions } from './lib/sessions.mjs';

const NAME = 'bench/sockets';
const { values: flags } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    workers: { type: 'string', default: '2' },
    connections: { type: 'string', default: '16' },
    keepalive: { type: 'string', default: '50' },
    upgrades: { type: 'string', default: '2' },
    'upgrade-seconds': { type: 'string', default: '15' },
    write: { type: 'boolean', default: false },
  },
});
const whole = wholeFlag(NAME);
const REPS = whole('reps', flags.reps, 1, 50);
const WINDOW_MS = 1000 * whole('seconds', flags.seconds, 2, 120);
const WORKERS = whole('workers', flags.workers, 1, 16);
const CONNECTIONS = whole('connections', flags.connections, 1, 256);
const KEEPALIVE = whole('keepalive', flags.keepalive, 1, 500);
const UPGRADES = whole('upgrades', flags.upgrades, 0, 5); // per load; 0: no upgrade part
const UPGRADE_WINDOW_MS = 1000 * whole('upgrade-seconds', flags['upgrade-seconds'], 6, 120);
const UPGRADE_TIMEOUT = '30s';
const UPGRADE_CLI_MS = 60_000; // the CLI waits for the new primary (30 s), then is killed
const OLD_PRIMARY_GONE_MS = 30_000;
const WARMUP_MS = 2000;
const MAX_REQUESTS = 5_000_000;
const TARGETS = { fresh: 0.95, keepalive: 0.97 };
const APP = join(BENCH, 'apps', 'app.cjs');
const ZD_BIN = join(REPO, 'bin', 'zd.js');
const CLUSTER = join(BENCH, 'runners', 'seed-cluster.cjs');
const READY_MS = 30_000;

const say = (text) => process.stderr.write(`${text}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// zd's control sockets go here, not in the user's runtime directory: no name of another zd (or
// of another benchmark) can collide with ours, and `zd upgrade <name>` finds only ours. Made once
// the lock is ours (a refused run exits at once, with nothing to remove).
const ZD_ENV = {};

function cleanup() {
  killTracked('SIGKILL');
  if (ZD_ENV.ZD_RUNTIME_DIR) rmSync(ZD_ENV.ZD_RUNTIME_DIR, { recursive: true, force: true });
  releaseLock();
}
cleanUpOnExit(NAME, cleanup);

const zdRunner = (name = (port) => `zd-bench-sockets-${process.pid}-${port}`) => ({
  key: 'zd',
  zd: true,
  label: `zd (node bin/zd.js run app -w ${WORKERS})`,
  args: (port) => [ZD_BIN, 'run', APP, '-w', String(WORKERS), '--log-format', 'json', '--name', name(port)],
  env: {},
  ready: (json) => json?.code === 'ZD_READY',
});
const runners = [
  zdRunner(),
  { key: 'cluster', label: 'node:cluster round robin (runners/seed-cluster.cjs)', args: () => [CLUSTER, APP, String(WORKERS)], ready: (json) => json?.event === 'ready' },
];
const loads = loadsOf(CONNECTIONS, KEEPALIVE);

const { load, buildIfStale, start, measureReps } = sessions({
  name: NAME,
  app: APP,
  workers: WORKERS,
  zdEnv: ZD_ENV,
  warmupMs: WARMUP_MS,
  windowMs: WINDOW_MS,
  maxRequests: MAX_REQUESTS,
  readyMs: READY_MS,
});

/** Each primary's pid, in the order they started (their ZD_CONFIG lines come through the keeper). */
const primaryPids = (log) => log.filter((l) => l.json?.code === 'ZD_CONFIG').map((l) => l.json.primaryPid);

/**
 * One load on a fresh zd: warm-up, then UPGRADE_WINDOW_MS of load with UPGRADES `zd upgrade --wait`
 * evenly spaced inside it. Resolves with what happened; throws only if zd does not start.
 */
async function measureUpgrades(l) {
  const name = `zd-bench-up-${process.pid}-${l.key}`;
  const runner = zdRunner(() => name);
  const { port, child, log } = await start(runner);
  const keeper = child.pid;
  const out = { load: l.key, name, keeperPid: keeper, upgrades: [] };
  const cli = (args, timeoutMs) => runTracked(process.execPath, [ZD_BIN, ...args], { cwd: BENCH, env: { ...process.env, ...ZD_ENV } }, timeoutMs);
  const oldGone = [];
  try {
    await load(port, l.spec, WARMUP_MS).result;
    const run = load(port, l.spec, UPGRADE_WINDOW_MS);
    const startedAt = await run.started;
    for (let k = 1; k <= UPGRADES; k++) {
      const due = startedAt + (k * UPGRADE_WINDOW_MS) / (UPGRADES + 1);
      if (Date.now() > startedAt + UPGRADE_WINDOW_MS - 1000) {
        out.upgrades.push({ atMs: null, error: 'not run: the previous upgrades took the whole window' });
        continue;
      }
      await sleep(due - Date.now());
      trackTree(keeper);
      const from = log.length;
      const before = primaryPids(log).at(-1);
      const result = await cli(['upgrade', name, '--wait', '--timeout', UPGRADE_TIMEOUT], UPGRADE_CLI_MS);
      trackTree(keeper);
      const lines = log.slice(from);
      const at = (code) => lines.find((x) => x.json?.code === code);
      const begun = at('ZD_UPGRADE_STARTED');
      const done = at('ZD_UPGRADE_DONE') ?? at('ZD_UPGRADE_ABORTED');
      const after = primaryPids(log).at(-1);
      const u = {
        atMs: result.startedAt - startedAt,
        exit: result.code ?? result.signal,
        cliMs: result.endedAt - result.startedAt,
        keeperMs: begun && done ? Date.parse(done.json.time) - Date.parse(begun.json.time) : null,
        outcome: done?.json.code ?? null,
        oldPrimary: before,
        newPrimary: after,
        oldPrimaryGoneMs: null,
      };
      if (result.code !== 0) {
        u.error = `${result.stderr}${result.stdout}`.trim().split('\n').slice(-3).join(' | ');
        // What zd said meanwhile (its own lines, not the app's), for the report of a failed upgrade.
        u.zdLines = log.slice(from).filter((x) => x.json?.name === 'zd').slice(-40).map((x) => x.text);
      }
      out.upgrades.push(u);
      // The old primary drains (its workers finish their requests) while the load goes on.
      if (before !== after && before) {
        oldGone.push(
          (async () => {
            const deadline = result.endedAt + OLD_PRIMARY_GONE_MS;
            while (isAlive(before) && Date.now() < deadline) await sleep(20);
            if (!isAlive(before)) u.oldPrimaryGoneMs = Date.now() - result.startedAt;
          })(),
        );
      }
      say(`${NAME}: upgrade ${k} under ${l.key}: exit ${u.exit}, ${u.cliMs} ms (keeper ${u.keeperMs} ms), primary ${before} → ${after}${u.error ? `: ${u.error}\n  zd said meanwhile:\n  ${u.zdLines.join('\n  ')}` : ''}`);
    }
    const window = await run.result;
    await Promise.all(oldGone);
    trackTree(keeper);
    const status = await cli(['status', name, '--json'], 20_000);
    let view = null;
    try {
      view = JSON.parse(status.stdout);
    } catch {
      // said below
    }
    const primaries = primaryPids(log);
    const full = Math.floor(UPGRADE_WINDOW_MS / window.binMs);
    const bins = window.bins.slice(0, full);
    out.window = {
      rps: window.rps,
      responses: window.responses,
      lowestSecondRps: bins.length ? Math.min(...bins) / (window.binMs / 1000) : null,
      failed: failures(window).failed,
      artifacts: failures(window).artifacts,
      failures: failureKinds(window),
      // When each failure (and artifact) happened, ms after the load started: against the upgrades' atMs.
      errorTimes: window.errorTimes ?? [],
      latencyP99: window.latencyP99 ?? null,
    };
    out.pids = {
      keeperSameProcess: isOurs(keeper),
      primaries,
      distinctPrimaries: new Set(primaries).size,
      statusKeeperPid: view?.keeper?.pid ?? null,
      statusPrimaryPid: view?.primary?.pid ?? null,
      statusError: view ? null : `${status.stderr}${status.stdout}`.trim().slice(0, 300),
    };
    const p = out.pids;
    out.pidsOk =
      p.keeperSameProcess &&
      p.distinctPrimaries === UPGRADES + 1 &&
      !primaries.includes(keeper) &&
      p.statusKeeperPid === keeper &&
      p.statusPrimaryPid === primaries.at(-1) &&
      primaries.slice(0, -1).every((pid) => !isAlive(pid));
    const problems = log.filter((x) => x.json?.level >= 40).map((x) => x.text);
    if (problems.length) out.problems = problems;
  } finally {
    if (await stopTree(child, 15_000)) out.forcedStop = true;
    out.exit = child.exitCode ?? child.signalCode;
  }
  return out;
}

async function main() {
  takeLock(NAME);
  ZD_ENV.ZD_RUNTIME_DIR = mkdtempSync(join(os.tmpdir(), 'zdb-'));
  const loadavg = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  say(`${NAME}: ${WORKERS} workers; ${loads.map((l) => l.label).join(' and ')}; ${WINDOW_MS / 1000} s windows after ${WARMUP_MS / 1000} s of warm-up; ${REPS} rep(s); ${UPGRADES ? `then ${UPGRADES} zd upgrade(s) in a ${UPGRADE_WINDOW_MS / 1000} s window per load; ` : ''}load average ${loadavg}`);
  await buildIfStale('start of the run');
  const reps = await measureReps(runners, loads, REPS);

  const upgrades = [];
  for (const l of UPGRADES > 0 ? loads : []) {
    try {
      const u = await measureUpgrades(l);
      upgrades.push(u);
      say(`${NAME}: zd upgrade under ${l.key}: ${Math.round(u.window.rps)} req/s (lowest second ${Math.round(u.window.lowestSecondRps)}), ${u.window.failed} failed${u.window.failed || u.window.artifacts ? ` ${JSON.stringify(u.window.failures)}: ${whenFailed(u.window.errorTimes)}` : ''}; keeper ${u.keeperPid} ${u.pids.keeperSameProcess ? 'the same process' : 'GONE'}, primaries ${u.pids.primaries.join(' → ')}, zd status: keeper ${u.pids.statusKeeperPid}, primary ${u.pids.statusPrimaryPid}${u.problems ? `; ${u.problems.length} warning line(s): ${u.problems[0]}` : ''}`);
    } catch (error) {
      upgrades.push({ load: l.key, error: String(error.message ?? error).split('\n')[0] });
      say(`${NAME}: zd upgrade under ${l.key}: FAILED: ${upgrades.at(-1).error}`);
    }
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

  let upgradeMd = '';
  if (UPGRADES > 0) {
    const upgradeRows = loads.map((l) => {
      const u = upgrades.find((x) => x.load === l.key);
      if (!u || u.error) return [l.label, `failed: ${u?.error ?? 'not run'}`, '', '', '', '', ''];
      const steady = median(field('zd', l.key, 'rps'));
      const each = u.upgrades.map((x) => (x.error && x.atMs === null ? x.error : `at ${(x.atMs / 1000).toFixed(2)} s: ${x.exit === 0 ? '' : `exit ${x.exit} (${String(x.error ?? '').replace(/\|/g, '/')}), `}${x.cliMs} ms (keeper ${num(x.keeperMs)} ms; old primary gone after ${num(x.oldPrimaryGoneMs)} ms)`));
      const kinds = Object.entries(u.window.failures.failed).map(([kind, n]) => `${n} ${kind}`);
      const artifacts = Object.entries(u.window.failures.artifacts).map(([kind, n]) => `${n} ${kind}`);
      const when = u.window.errorTimes.length ? ` (${whenFailed(u.window.errorTimes)} into the window)` : '';
      const p = u.pids;
      return [
        l.label,
        each.join('; '),
        `${num(u.window.rps)}${steady ? ` (${num(u.window.rps / steady, 2)}× zd's steady median)` : ''}`,
        num(u.window.lowestSecondRps),
        `**${u.window.failed}**${kinds.length ? `: ${kinds.join(', ')}` : ''}${u.window.failed ? when : ''}`,
        artifacts.length ? `${artifacts.join(', ')}${u.window.failed ? '' : when}` : '0',
        `keeper ${u.keeperPid} (${p.keeperSameProcess ? 'same process' : 'NOT the same process'}); primaries ${p.primaries.join(' → ')}; zd status: keeper ${p.statusKeeperPid}, primary ${p.statusPrimaryPid}${u.pidsOk ? '' : ' — NOT as expected'}`,
      ];
    });
    const upgradeTable = table(
      ['load', `each \`zd upgrade --wait\`: the CLI's wall clock (the keeper's STARTED → DONE; the old primary's exit)`, `req/s over the ${UPGRADE_WINDOW_MS / 1000} s window`, 'lowest second, req/s', 'failed requests', "autocannon's artifacts (not failures)", 'pids'],
      upgradeRows,
      ['l', 'l', 'r', 'r', 'l', 'l', 'l'],
    );
    const ran = upgrades.filter((u) => !u.error);
    const count = ran.reduce((sum, u) => sum + u.upgrades.filter((x) => x.exit === 0).length, 0);
    const failed = ran.reduce((sum, u) => sum + u.window.failed, 0);
    const allRan = ran.length === loads.length && count === UPGRADES * loads.length;
    const pidsOk = ran.length === loads.length && ran.every((u) => u.pidsOk);
    upgradeMd = `${upgradeTable}\n\n- zd upgrade under load: ${count} of ${UPGRADES * loads.length} upgrades done, **${failed} failed requests** — target 0 failed under both loads: ${allRan && failed === 0 ? 'met' : allRan ? 'missed' : 'not measured (an upgrade or a run failed)'}; the keeper stayed the same process and each upgrade brought a new primary: ${pidsOk ? 'yes' : 'NO'}`;
  }
  process.stdout.write(`${markdownTable}\n\n${verdicts.join('\n')}\n${upgradeMd ? `\n${upgradeMd}\n` : ''}`);

  const commit = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['-C', REPO, 'status', '--porcelain', '--', 'src', 'machines'], { encoding: 'utf8' }).trim() !== '';
  const command = `node bench/sockets.mjs ${process.argv.slice(2).join(' ')}`.trim();
  const data = { date: new Date().toISOString(), command, commit, dirty, node: process.version, cpus: os.cpus().length, loadavg, workers: WORKERS, connections: CONNECTIONS, keepalive: KEEPALIVE, windowMs: WINDOW_MS, warmupMs: WARMUP_MS, reps, upgradesPerLoad: UPGRADES, upgradeWindowMs: UPGRADE_WINDOW_MS, upgrades, builds, builtAtEnd: buildIsFresh() };
  if (flags.write) {
    writeFileSync(join(BENCH, 'RESULTS-sockets.json'), `${JSON.stringify(data, null, 1)}\n`);
    const file = writeSection(
      'sockets',
      `## Sockets: zd's hand-over against node:cluster's round robin (issue 13)

\`${command}\` — each runner serves \`bench/apps/app.cjs\` with ${WORKERS} workers on 127.0.0.1; per rep, each runner
starts once and takes both loads (${WARMUP_MS / 1000} s of warm-up, then ${WINDOW_MS / 1000} s measured, each); the runner order rotates and the load order alternates, ${REPS} reps.
CPU per request: utime + stime over the window. ${data.date}, commit ${commit}${dirty ? ' (src/ or machines/ had uncommitted changes)' : ''}, zd from dist/${builds.length ? ` (npm run build ran ${builds.length} time(s) in the run)` : ''}${data.builtAtEnd ? '' : ' (the source changed after the last build)'}, Node ${process.version}, ${data.cpus} CPUs, load average before ${loadavg}.
Raw: \`bench/RESULTS-sockets.json\`.

${markdownTable}

${verdicts.join('\n')}
${
  upgradeMd
    ? `
### zd upgrade under load

Then, per load, a fresh zd (same app, ${WORKERS} workers, its own \`ZD_RUNTIME_DIR\`) takes the load for ${UPGRADE_WINDOW_MS / 1000} s after ${WARMUP_MS / 1000} s of warm-up, and
\`zd upgrade <name> --wait --timeout ${UPGRADE_TIMEOUT}\` runs ${UPGRADES} time(s), evenly spaced inside that window. Failed, as in the reload table above (\`lib/report.mjs\`): errors (timeouts
included), non-2xx, and requests lost on a connection the server closed without answering — less autocannon's artifacts, a request it wrote on a connection
after the server had answered \`Connection: close\` (a compliant client, like Node's http.Agent or undici, would not), which are counted apart. The keeper is the process this benchmark spawned; the primaries' pids are their \`ZD_CONFIG\` lines, the last of which \`zd status\` must name.

${upgradeMd}
`
    : ''
}`,
    );
    say(`${NAME}: wrote its section of ${file}`);
  }
}

try {
  await main();
} finally {
  cleanup();
}
