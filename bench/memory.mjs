#!/usr/bin/env node
// What a runner costs in memory beside its workers (issues #11, #13, #22): zd as a user installs it
// (this checkout packed with `npm pack`, the tarball installed into a fresh app) against PM2's
// daemon and a hand-written node:cluster script, each idle with 2 workers of bench/apps/app.cjs, in
// one run; then where a primary's memory goes: what each dependency costs a node process that loads
// it the way zd does (or did).
// `zd run` is two processes of zd's own, and both stay running: the keeper (the pid the bench
// starts) and the primary, its child (ZD_CONFIG's primaryPid). The headline is the two together
// (RSS, PSS and private memory, each added), beside PM2's daemon (all of PM2 that stays running in
// cluster mode) and the script's primary; each process is also given on its own, with the keeper's
// anonymous memory against its own target (≤ 12 MB).
//
//   npm --prefix bench ci && node bench/memory.mjs              # 3 repetitions, prints the tables
//   node bench/memory.mjs --before 3f45839                      # also that commit's built primary
//   node bench/memory.mjs --write                               # also the RESULTS.md section
//   node bench/memory.mjs --report-only                         # rewrite that section from RESULTS-memory.json
//
// RSS is read from /proc/<pid>/smaps_rollup twice: 5 s after the runner is ready, and once V8's
// memory reducer has run on an idle heap (--settle, 20 s). RSS counts the pages of the node binary
// a process has touched; they are shared with every other node process (the workers), so the
// private part (USS: private clean + dirty) is given too. Every process is tracked by pid and
// killed by pid, on failure and on SIGINT.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { releaseLock, takeLock } from './lib/lock.mjs';
import { cleanUpOnExit, descendants, freePort, killTracked, runTracked } from './lib/procs.mjs';
import { percentile, table, writeSection } from './lib/results-md.mjs';
import { BENCH, pm2Homes, REPO, RUNNERS, zdRunner } from './lib/runners.mjs';

const NAME = 'bench/memory';
const { values: flags } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    settle: { type: 'string', default: '20' },
    before: { type: 'string' },
    write: { type: 'boolean', default: false },
    'skip-modules': { type: 'boolean', default: false },
    'report-only': { type: 'boolean', default: false },
  },
});
const REPS = Number(flags.reps);
const SETTLE_S = Number(flags.settle);
if (!Number.isInteger(REPS) || REPS < 1 || REPS > 20 || !Number.isInteger(SETTLE_S) || SETTLE_S < 6 || SETTLE_S > 120) {
  process.stderr.write(`${NAME}: --reps takes 1 to 20, --settle 6 to 120 (seconds)\n`);
  process.exit(2);
}
const WORKERS = 2;
/** Issue #13: the keeper's own anonymous memory (smaps_rollup's Anonymous), idle. */
const KEEPER_ANON_TARGET_MB = 12;
const say = (text) => process.stderr.write(`${text}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const MB = (kb) => (kb === null || kb === undefined ? null : kb / 1024);
const fmt = (x, digits = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));

const scratch = [];
function cleanupNow() {
  killTracked('SIGKILL');
  for (const home of pm2Homes) rmSync(home, { recursive: true, force: true });
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
  releaseLock();
}
cleanUpOnExit(NAME, cleanupNow, { signals: ['SIGINT', 'SIGTERM'], newline: true });

/** Rss, Pss, private (USS) and anonymous memory of a process, in kB, from smaps_rollup. */
function smaps(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rss: field('Rss'), pss: field('Pss'), uss: field('Private_Clean') + field('Private_Dirty'), anon: field('Anonymous') };
  } catch {
    return null;
  }
}

async function run(command, args, cwd, timeoutMs = 180_000) {
  const result = await runTracked(command, args, { cwd, env: { ...process.env, npm_config_update_notifier: 'false' } }, timeoutMs);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} (in ${cwd}) exited ${result.code ?? result.signal}:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** This checkout as a user gets it: npm pack (prepack builds), the tarball installed into a fresh app. */
/** The zd in `repo` as a user gets it: packed (prepack builds it) and installed into a fresh app. */
async function installPacked(repo) {
  const dir = mkdtempSync(join(os.tmpdir(), 'zd-bench-memory-'));
  scratch.push(dir);
  const out = await run('npm', ['pack', '--pack-destination', dir, '--json'], repo);
  const { filename } = JSON.parse(out.slice(out.indexOf('[\n')))[0];
  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), '{ "name": "zd-bench-memory-app", "private": true }\n');
  await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline', join(dir, filename)], app);
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  return { app, bin: join(app, 'node_modules', pkg.name, 'bin', 'zd.js'), tarball: filename };
}

/**
 * zd as of `ref`, installed from its own `npm pack` as this checkout is, so that the two rows differ
 * only by the code. A commit from before the package could be packed (no prepack script: before
 * issue #11) runs from its checkout, built (bin/zd.js then runs its dist/).
 */
async function builtAt(ref) {
  const sha = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', `${ref}^{commit}`], { encoding: 'utf8' }).trim();
  const dir = mkdtempSync(join(os.tmpdir(), 'zd-bench-memory-ref-'));
  scratch.push(dir);
  execFileSync('tar', ['-x', '-C', dir], { input: execFileSync('git', ['-C', REPO, 'archive', '--format=tar', sha], { maxBuffer: 256 * 2 ** 20 }) });
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  if (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).scripts?.prepack) {
    const { bin, tarball } = await installPacked(dir);
    return { sha, bin, how: `${tarball} of ${sha}, installed` };
  }
  await run('npm', ['run', 'build'], dir);
  return { sha, bin: join(dir, 'bin', 'zd.js'), how: 'built, bin/zd.js → dist/' };
}

function parentOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/**
 * The runner's processes: for zd under a keeper, the keeper is the pid the bench started and the
 * primary is the pid its ZD_CONFIG line names, which must be the keeper's child; a zd without a
 * keeper (an older commit, or ZD_NO_KEEPER=1) names its own pid. PM2 and the script: one primary.
 */
function processesOf(handle) {
  const { primary: started, workers } = handle.rssPids();
  const config = handle.log?.find((l) => l.json?.code === 'ZD_CONFIG')?.json;
  const primaryPid = config?.primaryPid;
  if (primaryPid === undefined || primaryPid === started) return { keeper: null, primary: started, workers };
  if (parentOf(primaryPid) !== started) throw new Error(`ZD_CONFIG names primary ${primaryPid}, which is not a child of the keeper ${started}`);
  return { keeper: started, primary: primaryPid, workers: descendants(primaryPid) };
}

/** Starts a runner, samples its primary (and keeper) at ready + 5 s and ready + SETTLE_S, always stops it. */
async function idle(name, runner) {
  const port = await freePort();
  const sample = { name, port };
  let handle;
  try {
    handle = await runner.start({ port, workers: WORKERS });
    const ready = Date.now();
    const { keeper, primary, workers } = processesOf(handle);
    sample.workers = workers.length;
    if (keeper !== null) sample.keeper = { pid: keeper };
    sample.primaryPid = primary;
    await sleep(5000 - (Date.now() - ready));
    sample.at5s = smaps(primary);
    if (keeper !== null) sample.keeper.at5s = smaps(keeper);
    await sleep(SETTLE_S * 1000 - (Date.now() - ready));
    sample.settled = smaps(primary);
    if (keeper !== null) sample.keeper.settled = smaps(keeper);
    sample.workerRss = workers.map((pid) => smaps(pid)?.rss ?? null);
  } catch (error) {
    sample.error = String(error.stack ?? error);
  } finally {
    if (handle) sample.stop = await handle.stop();
  }
  return sample;
}

// ---------------------------------------------------------------------------------------------
// What a dependency costs: a fresh node process (in this checkout, where the devDependencies zd
// no longer ships, pino and xstate, are installed too) with node:cluster, net and child_process
// loaded, plus the module loaded and used the way zd loads it (or did); minus the same process
// without it. Sampled 3 s after start.
const MODULES = [
  ['(the baseline: node with cluster, net, child_process)', ''],
  ['node:http (the health server, loaded eagerly before #11)', "await import('node:http');"],
  ['pino from node_modules, required (as the primary did until it was bundled; sync destination, one line)', "const { pino } = require('pino'); pino({ name: 'zd' }, pino.destination({ fd: 1, sync: true })).info({ code: 'X' }, 'x');"],
  ['pino, imported from an ES module (as the bundle did before #11)', "const { pino } = await import('pino'); pino({ name: 'zd' }, pino.destination({ fd: 1, sync: true })).info({ code: 'X' }, 'x');"],
  ['pino-pretty (a terminal only: prettyFactory, one line)', "require('pino-pretty').prettyFactory({ colorize: true })('{\"level\":30,\"time\":1,\"msg\":\"x\"}');"],
  ["xstate, imported by Node (its CommonJS build, lexed for exports; one transition)", "const x = await import('xstate'); const m = x.setup({}).createMachine({ initial: 'a', states: { a: { on: { go: 'b' } }, b: {} } }); x.transition(m, x.initialTransition(m)[0], { type: 'go' });"],
  ['prom-client (--metrics-port only: a registry, default metrics)', "const c = require('prom-client'); c.collectDefaultMetrics({ register: new c.Registry() });"],
  ['@hpcc-js/wasm-graphviz (zd inspect --machine --format svg only: loaded, one layout)', "const { Graphviz } = await import('@hpcc-js/wasm-graphviz'); (await Graphviz.load()).dot('digraph { a -> b }');"],
  ["a Date printed by V8 once (Date#toISOString: ICU's time-zone data; pino's time in zd's lines until src/clock.ts)", 'new Date().toISOString();'],
  ['perf_hooks (`performance.now()`, the flight recorder\'s clock until src/clock.ts)', 'performance.now();'],
  ["worker_threads and assert (what pino's transports and sonic-boom load; left out of the bundle since 8f3b053)", "require('node:worker_threads'); require('node:assert');"],
  ['sucrase (workers of a .ts app on Node 20 only; never the primary)', "require('sucrase').transform('const a: number = 1', { transforms: ['typescript'] });"],
];

async function moduleCost(cwd, code) {
  const script = `import { createRequire } from 'node:module'; import 'node:cluster'; import 'node:net'; import 'node:child_process';
const require = createRequire(process.cwd() + '/');
${code}
setTimeout(() => process.stdout.write(require('node:fs').readFileSync('/proc/self/smaps_rollup', 'utf8')), 3000);`;
  const out = await run(process.execPath, ['--input-type=module', '-e', script], cwd, 60_000);
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(out)?.[1] ?? NaN);
  return { rss: field('Rss'), uss: field('Private_Clean') + field('Private_Dirty') };
}

// ---------------------------------------------------------------------------------------------
async function main() {
  if (flags['report-only']) {
    const data = JSON.parse(readFileSync(join(BENCH, 'RESULTS-memory.json'), 'utf8'));
    const { markdown, summary } = render(data.context, data.runners, data.samples, data.modules);
    process.stdout.write(`${summary}\n`);
    say(`${NAME}: rewrote its section of ${writeSection('memory', markdown)} from bench/RESULTS-memory.json (no run)`);
    return;
  }
  if (!RUNNERS.pm2 || !readFileSync(join(BENCH, 'package.json'), 'utf8')) throw new Error('bench/lib/runners.mjs has no PM2 runner');
  try {
    readFileSync(join(BENCH, 'node_modules', 'pm2', 'package.json'));
  } catch {
    say(`${NAME}: run \`npm --prefix bench ci\` first`);
    process.exit(2);
  }
  takeLock(NAME);
  const began = Date.now();
  const git = (...args) => {
    try {
      return execFileSync('git', ['-C', REPO, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null; // not a git checkout (an exported tree)
    }
  };
  const commit = git('rev-parse', '--short', 'HEAD') ?? 'unknown';
  const dirty = Boolean(git('status', '--porcelain', '--', 'src', 'machines', 'bin', 'scripts', 'package.json'));
  const pm2Version = JSON.parse(readFileSync(join(BENCH, 'node_modules', 'pm2', 'package.json'), 'utf8')).version;
  say(`${NAME}: npm pack + install into a fresh app (zd ${commit}${dirty ? ', with uncommitted changes' : ''})`);
  const installed = await installPacked(REPO);
  const runners = [
    ['zd', `zd (${installed.tarball}, installed)`, zdRunner([installed.bin], 'zd installed')],
    ['pm2', `PM2 ${pm2Version}, cluster mode`, RUNNERS.pm2],
    ['seed-cluster', 'hand-written node:cluster script (no runner logic)', RUNNERS['seed-cluster']],
  ];
  if (flags.before) {
    const before = await builtAt(flags.before);
    say(`${NAME}: zd ${before.sha} built for comparison`);
    runners.push(['zd-before', `zd ${before.sha} (${before.how})`, zdRunner([before.bin], 'zd before')]);
  }

  const samples = [];
  for (let rep = 1; rep <= REPS; rep++) {
    for (let i = 0; i < runners.length; i++) {
      const [key, , runner] = runners[(i + rep - 1) % runners.length];
      say(`${NAME}: ${key} rep ${rep}/${REPS} (idle ${SETTLE_S} s)`);
      const sample = await idle(key, runner);
      samples.push({ ...sample, rep });
      const keeperNote = sample.keeper ? `; keeper RSS ${fmt(MB(sample.keeper.settled?.rss))} MB, anonymous ${fmt(MB(sample.keeper.settled?.anon))} MB` : '';
      say(sample.error ? `  failed: ${sample.error.split('\n')[0]}` : `  primary RSS ${fmt(MB(sample.at5s?.rss))} MB at 5 s, ${fmt(MB(sample.settled?.rss))} MB settled (USS ${fmt(MB(sample.settled?.uss))} MB, anonymous ${fmt(MB(sample.settled?.anon))} MB)${keeperNote}`);
    }
  }

  const modules = [];
  if (!flags['skip-modules']) {
    for (const [label, code] of MODULES) {
      const reps = [];
      for (let rep = 0; rep < 3; rep++) reps.push(await moduleCost(REPO, code));
      modules.push({ label, rss: percentile(reps.map((r) => r.rss), 50), uss: percentile(reps.map((r) => r.uss), 50) });
      say(`${NAME}: ${label}: RSS ${fmt(MB(modules.at(-1).rss))} MB`);
    }
  }
  cleanupNow();

  const context = {
    date: new Date().toISOString(),
    commit,
    dirty,
    node: process.version,
    nproc: os.availableParallelism(),
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    reps: REPS,
    settleS: SETTLE_S,
    pm2: pm2Version,
    command: `node bench/memory.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
    elapsedS: Math.round((Date.now() - began) / 1000),
  };
  const { markdown, summary } = render(context, runners, samples, modules);
  process.stdout.write(`${summary}\n`);
  if (flags.write) {
    const labels = runners.map(([key, label]) => [key, label]);
    writeFileSync(join(BENCH, 'RESULTS-memory.json'), `${JSON.stringify({ context, runners: labels, samples, modules }, null, 1)}\n`);
    say(`${NAME}: wrote ${writeSection('memory', markdown)} and bench/RESULTS-memory.json`);
  }
}

/** A zd run's keeper + primary, added (RSS counts their shared pages twice; PSS and private add up fairly). */
function both(s, when) {
  const k = s.keeper?.[when];
  const p = s[when];
  if (!k || !p) return null;
  return { rss: k.rss + p.rss, uss: k.uss + p.uss, pss: k.pss + p.pss, anon: k.anon + p.anon };
}

/** What stays running beside the workers: zd's keeper + primary, PM2's daemon, the script's primary. */
const supervising = (s, when) => (s.keeper ? both(s, when) : s[when]);

function render(context, runners, samples, modules) {
  const med = (key, pick) => percentile(samples.filter((s) => s.name === key && !s.error).map(pick), 50);
  const S = context.settleS;
  const what = (key) => (samples.some((s) => s.name === key && !s.error && s.keeper) ? 'keeper + primary (2 processes)' : key === 'pm2' ? 'its daemon (1 process)' : 'its primary (1 process)');
  const rows = runners.map(([key, label]) => [
    `${key === 'zd' ? '**' : ''}${label}: ${what(key)}${key === 'zd' ? '**' : ''}`,
    fmt(MB(med(key, (s) => supervising(s, 'at5s')?.rss))),
    fmt(MB(med(key, (s) => supervising(s, 'settled')?.rss))),
    fmt(MB(med(key, (s) => supervising(s, 'settled')?.pss))),
    fmt(MB(med(key, (s) => supervising(s, 'settled')?.uss))),
    String(samples.filter((s) => s.name === key && !s.error).length),
  ]);
  const ratio = (a, b, pick) => {
    const x = med(a, pick);
    const y = med(b, pick);
    return x && y ? x / y : null;
  };
  const against = (other) =>
    ['rss', 'pss', 'uss'].map((f) => `${f === 'uss' ? 'private' : f.toUpperCase()} **${fmt(ratio('zd', other, (s) => supervising(s, 'settled')?.[f]), 2)} ×**`).join(', ');
  // Issue #11's target was set for the primary alone, before the keeper existed (issue #13).
  const r5 = ratio('zd', 'pm2', (s) => s.at5s?.rss);
  const rs = ratio('zd', 'pm2', (s) => s.settled?.rss);
  const ru = ratio('zd', 'pm2', (s) => s.settled?.uss);
  const base = modules[0];
  const moduleRows = modules.map((m, i) =>
    i === 0 ? [m.label, fmt(MB(m.rss)), fmt(MB(m.uss))] : [m.label, `+${fmt(MB(m.rss - base.rss))}`, `+${fmt(MB(m.uss - base.uss))}`],
  );
  const failures = samples.filter((s) => s.error).map((s) => `- ${s.name} rep ${s.rep}: ${s.error.split('\n')[0]}`);
  const verdict = (r) => (r === null ? '–' : `${fmt(r, 2)} × (${r <= 0.8 ? 'met' : 'missed'})`);
  const own = ownProcesses(context, runners, samples, med);
  const markdown = `## Memory: zd's keeper + primary, idle with ${WORKERS} workers, against PM2's daemon

\`${context.command}\` — ${context.date}, zd ${context.commit}${context.dirty ? ' (with uncommitted changes)' : ''}, Node ${context.node}, ${context.nproc} cores, load average ${context.loadavg}; ${context.reps} repetitions per runner, medians; ${context.elapsedS} s.
zd is this checkout packed by \`npm pack\` and installed from the tarball into a fresh app, as a user gets it. Each
runner serves \`bench/apps/app.cjs\` with ${WORKERS} workers and no load. What is measured is everything of the runner that stays running beside
the workers: for zd, the keeper (the pid \`zd run\` has) and the primary it spawns, added; for PM2, its daemon (the CLI exits); for the script,
its primary. From /proc/<pid>/smaps_rollup, 5 s after ready and once idle for ${S} s (V8's memory reducer has shrunk the heap by then, in every
runner). Private is Private_Clean + Private_Dirty (USS): pages no other process maps. PSS adds each shared page divided by the number of
processes mapping it, so it falls as other node processes run on the machine (they map the same binary): compare it within one run. RSS counts every page a process maps, the node binary's too, so zd's two RSS added count the pages they share twice. Raw: \`bench/RESULTS-memory.json\`.

${table(['what stays running beside the workers', 'RSS 5 s', `RSS ${S} s`, `PSS ${S} s`, `private ${S} s`, 'runs'], rows)}

zd's keeper + primary against PM2's daemon, settled: ${against('pm2')}; against the hand-written script's primary: ${against('seed-cluster')}.
Issue #11's target was for zd's primary alone (≤ 0.8 × PM2's daemon's RSS), one of its two processes: at 5 s ${verdict(r5)}; settled ${verdict(rs)}; private, settled: ${ru === null ? '–' : `${fmt(ru, 2)} ×`}.
${failures.length ? `\nFailed runs:\n${failures.join('\n')}\n` : ''}${own.markdown}
### Where a primary's memory goes

What loading each module costs a node process, loaded and used the way zd loads it (median of 3, RSS 3 s after start, MB over the
baseline's). The costs do not add up: the first CommonJS package imported from an ES module brings Node's export lexer, and enough of
it runs to get V8's optimising compiler going, whose code is then part of the RSS too.

${loadedNote()}

${modules.length ? table(['loaded', 'RSS MB', 'USS MB'], moduleRows) : '(not measured: --skip-modules)'}
`;
  const summary = [
    ...rows.map((r) => `${r[0].replaceAll('*', '')}: RSS ${r[1]} MB at 5 s, ${r[2]} MB settled, PSS ${r[3]} MB, private ${r[4]} MB`),
    `zd (keeper + primary) / PM2's daemon, settled: ${against('pm2').replaceAll('*', '')}`,
    `zd (keeper + primary) / the script's primary, settled: ${against('seed-cluster').replaceAll('*', '')}`,
    `zd's primary alone / PM2's daemon (RSS): ${fmt(r5, 2)} at 5 s, ${fmt(rs, 2)} settled; private ${fmt(ru, 2)}`,
    ...own.summary,
    ...moduleRows.map((r) => `${r[0]}: ${r[1]} MB`),
  ].join('\n');
  return { markdown, summary };
}

/**
 * zd's own processes under a keeper: the keeper, the primary and both together (summed per run,
 * then the median), beside PM2's daemon, which is all of PM2 that stays running in cluster mode.
 */
function ownProcesses(context, runners, samples, med) {
  const S = context.settleS;
  const withKeeper = runners.filter(([key]) => samples.some((s) => s.name === key && !s.error && s.keeper));
  if (withKeeper.length === 0) return { markdown: '', summary: [] };
  const cells = (key, pick) => [
    fmt(MB(med(key, (s) => pick(s, 'at5s')?.rss))),
    fmt(MB(med(key, (s) => pick(s, 'settled')?.rss))),
    fmt(MB(med(key, (s) => pick(s, 'settled')?.uss))),
    fmt(MB(med(key, (s) => pick(s, 'settled')?.pss))),
    fmt(MB(med(key, (s) => pick(s, 'at5s')?.anon))),
    fmt(MB(med(key, (s) => pick(s, 'settled')?.anon))),
  ];
  const keeperOf = (s, when) => s.keeper?.[when];
  const primaryOf = (s, when) => s[when];
  const rows = [];
  const lines = [];
  for (const [key, label] of withKeeper) {
    rows.push([`${label}: the keeper`, ...cells(key, keeperOf)]);
    rows.push([`${label}: the primary`, ...cells(key, primaryOf)]);
    rows.push([`**${label}: keeper + primary**`, ...cells(key, both).map((c) => `**${c}**`)]);
    const k5 = MB(med(key, (s) => s.keeper?.at5s?.anon));
    const ks = MB(med(key, (s) => s.keeper?.settled?.anon));
    const met = (x) => (x === null ? '–' : `**${fmt(x)} MB** (${x <= KEEPER_ANON_TARGET_MB ? 'met' : 'missed'})`);
    const vsPm2 = (field) => {
      const z = med(key, (s) => both(s, 'settled')?.[field]);
      const p = med('pm2', (s) => s.settled?.[field]);
      return z && p ? `${fmt(z / p, 2)} ×` : '–';
    };
    lines.push(
      `${label}: the keeper's own anonymous memory, target (issue #13) ≤ ${KEEPER_ANON_TARGET_MB} MB: at 5 s ${met(k5)}; settled ${met(ks)}. ` +
        `Keeper + primary against PM2's daemon, settled: RSS ${vsPm2('rss')}, USS ${vsPm2('uss')}, PSS ${vsPm2('pss')}.`,
    );
  }
  rows.push(["PM2's daemon (all of PM2 that stays running)", ...cells('pm2', primaryOf)]);
  if (withKeeper.some(([key, label]) => key === 'zd-before' && label.includes('bin/zd.js'))) {
    lines.push(
      "The --before commit runs from a checkout, where bin/zd.js first checks that the build is newer than every file of src/: that walk alone gets V8's optimising compiler going in its keeper (path's normalizeString), so its keeper's RSS is not an installed keeper's.",
    );
  }
  const markdown = `
### zd's own processes: the keeper and the primary

\`zd run\` is two processes of zd's: the keeper (the pid the bench starts, which systemd or Docker would know; it holds the
listening sockets and loads almost nothing) and the primary, its child (the pid in ZD_CONFIG's \`primaryPid\`, checked to be the
keeper's child), which forks the workers. The table above adds the two; here is each. Anonymous is smaps_rollup's \`Anonymous\`: the
process's own heap, stacks and V8 spaces, none of the node binary. The keeper + primary RSS counts the node binary's shared pages
twice (each process maps them); USS and PSS add up fairly. Medians of per-run values.

${table(['process', 'RSS 5 s', `RSS ${S} s`, `USS ${S} s`, `PSS ${S} s`, 'anonymous 5 s', `anonymous ${S} s`], rows)}

${lines.join('\n\n')}
`;
  const summary = [...rows.map((r) => `${r[0].replaceAll('*', '')}: RSS ${r[2].replaceAll('*', '')} MB settled, USS ${r[3].replaceAll('*', '')} MB, anonymous ${r[6].replaceAll('*', '')} MB`), ...lines.map((l) => l.replaceAll('*', ''))];
  return { markdown, summary };
}

function loadedNote() {
  return `What zd's primary loads: one CommonJS file (\`dist/zd.cjs\`, through the CommonJS \`bin/zd.js\`), with xstate's ES module
build and pino (zd's logs are pino by design) inside it, so that no file of zd's goes through Node's ES module loader and Node resolves, reads and lexes no
file from node_modules at start-up: the rows below are what those two cost loaded from node_modules instead. pino-pretty loads
only on a terminal, node:http only with --health-port or --metrics-port, prom-client only with --metrics-port, the WASM Graphviz
only in \`zd inspect\`, sucrase only in the workers of a TypeScript app on Node 20. The keeper (\`dist/keeper.cjs\`) loads
node:child_process, its own modules, the upgrade machine and xstate: no logger library, no cluster, no control server.`;
}

main().catch((error) => {
  say(`${NAME}: ${error.stack ?? error}`);
  cleanupNow();
  process.exit(1);
});
