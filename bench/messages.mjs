#!/usr/bin/env node
// What an app's own IPC messages cost the primary (issue #12): zd's primary against a plain
// node:cluster primary that only counts them, side by side in one run, alternating.
//
//   node bench/messages.mjs                                   # 2 workers × 100,000 messages, 3 reps
//   node bench/messages.mjs --compare-ref f9eb305             # also zd as of that commit (repeatable)
//   node bench/messages.mjs --refs-only --compare-ref A --compare-ref B   # committed code only
//   node bench/messages.mjs --reps 5 --messages 50000 --write after
//
// Each runner serves bench/apps/messenger.cjs; on SIGUSR2 every worker sends its primary
// --messages messages in a tight loop. The primary's CPU time (utime + stime of every thread, from
// /proc/<pid>/stat) is read before the burst and once it is idle again after the last message was
// written, and divided by the number of messages. zd runs from its TypeScript source (tsx), the way
// bin/zd.js does without a build. Every process started is tracked by pid and killed by pid.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { wholeFlag } from './lib/flags.mjs';
import { releaseLock, takeLock } from './lib/lock.mjs';
import { cleanUpOnExit, cpuMs, killTracked, stopTree } from './lib/procs.mjs';
import { percentile, table, writeSection } from './lib/results-md.mjs';
import { removeSnapshots, snapshot } from './lib/snapshot.mjs';
import { BENCH, REPO, startPrimary } from './lib/runners.mjs';

const NAME = 'bench/messages';
const { values: flags } = parseArgs({
  options: {
    workers: { type: 'string', default: '2' },
    messages: { type: 'string', default: '100000' }, // per worker
    reps: { type: 'string', default: '3' },
    'compare-ref': { type: 'string', multiple: true },
    'refs-only': { type: 'boolean', default: false }, // not the checkout: only the --compare-ref commits
    write: { type: 'string' },
  },
});
const whole = wholeFlag(NAME);
const WORKERS = whole('workers', flags.workers, 1, 64);
const MESSAGES = whole('messages', flags.messages, 1000, 10_000_000);
const REPS = whole('reps', flags.reps, 1, 50);
const TARGET = 1.3;
const APP = join(BENCH, 'apps', 'messenger.cjs');
const COUNTER = join(BENCH, 'runners', 'count-cluster.cjs');
const READY_MS = 30_000;
const BURST_MS = 180_000;
/** The primary is idle again when its CPU time has not moved for this long. */
const QUIET_MS = 500;
const POLL_MS = 50;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (text) => process.stderr.write(`${text}\n`);

function cleanup() {
  killTracked('SIGKILL');
  removeSnapshots();
  releaseLock();
}
cleanUpOnExit(NAME, cleanup);

function zdRunner(main, label) {
  return {
    label,
    args: (port) => ['--import', 'tsx', main, 'run', APP, '-w', String(WORKERS), '--log-format', 'json', '--name', `zd-bench-msg-${process.pid}-${port}`],
    ready: (json) => json?.code === 'ZD_READY',
  };
}

const runners = [
  { label: 'plain node:cluster (counts them)', key: 'plain', args: () => [COUNTER, APP, String(WORKERS)], ready: (json) => json?.event === 'ready' },
  { ...zdRunner(join(REPO, 'src', 'cli', 'main.ts'), 'zd (this checkout)'), key: 'zd' },
];

/** CPU time of pid stays still for QUIET_MS: returns that value. */
async function quiet(pid, deadline) {
  let last = cpuMs(pid);
  let stillSince = Date.now();
  while (Date.now() < deadline) {
    await sleep(POLL_MS);
    const now = cpuMs(pid);
    if (now !== last) {
      last = now;
      stillSince = Date.now();
    } else if (Date.now() - stillSince >= QUIET_MS) {
      return last;
    }
  }
  throw new Error(`pid ${pid} never went idle`);
}

async function measure(runner) {
  const { child, log, until, workers } = await startPrimary(runner, { env: { BENCH_MESSAGES: String(MESSAGES) }, app: APP, workers: WORKERS, readyMs: READY_MS });
  const result = { runner: runner.key };
  try {
    const idleFrom = await quiet(child.pid, Date.now() + 20_000);
    await sleep(1000);
    result.idleCpuMsPerS = cpuMs(child.pid) - idleFrom; // what it burns doing nothing, over 1 s
    const before = cpuMs(child.pid);
    const from = log.length;
    const startedAt = Date.now();
    for (const pid of workers) process.kill(pid, 'SIGUSR2');
    const sent = new Set();
    await until(
      (l) => {
        if (typeof l.json?.sent === 'number') sent.add(l.json.pid);
        return sent.size === WORKERS;
      },
      BURST_MS,
      `${runner.label}: every worker's last message written`,
      from,
    );
    result.sentMs = Date.now() - startedAt;
    const after = await quiet(child.pid, Date.now() + BURST_MS);
    result.cpuMs = after - before;
    result.messages = WORKERS * MESSAGES;
    result.usPerMessage = (1000 * result.cpuMs) / result.messages;
    if (runner.key === 'plain') {
      const at = log.length;
      process.kill(child.pid, 'SIGUSR2');
      const line = await until((l) => l.json?.event === 'count', 5000, 'count', at);
      result.received = line.json.received;
      if (result.received !== result.messages) throw new Error(`plain primary received ${result.received} of ${result.messages} messages`);
    }
    const problems = log.filter((l) => l.json?.name === 'zd' && l.json.level >= 40).map((l) => l.text);
    if (problems.length) result.problems = problems;
  } finally {
    if (await stopTree(child, 15_000)) result.forcedStop = true;
  }
  return result;
}

async function main() {
  takeLock(NAME);
  for (const ref of flags['compare-ref'] ?? []) {
    const { sha, main } = snapshot(REPO, ref);
    runners.push({ ...zdRunner(main, `zd at ${sha}`), key: `zd@${sha}` });
  }
  if (flags['refs-only']) runners.splice(runners.findIndex((r) => r.key === 'zd'), 1);
  const loadavg = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  say(`${NAME}: ${WORKERS} workers × ${MESSAGES} messages, ${REPS} rep(s) of ${runners.map((r) => r.key).join(', ')}; load average ${loadavg}`);
  const reps = [];
  for (let rep = 0; rep < REPS; rep++) {
    const row = {};
    // Rotated, so that no runner always goes first after a quiet machine.
    for (let i = 0; i < runners.length; i++) {
      const runner = runners[(i + rep) % runners.length];
      let r;
      try {
        r = await measure(runner);
        say(`${NAME}: rep ${rep + 1} ${runner.key}: ${r.usPerMessage.toFixed(2)} µs CPU per message (${r.cpuMs} ms over ${r.messages}, last written after ${r.sentMs} ms)`);
      } catch (error) {
        // One failed run must not stop the others: it is reported as such.
        r = { runner: runner.key, error: String(error.message ?? error).split('\n')[0], usPerMessage: null };
        say(`${NAME}: rep ${rep + 1} ${runner.key}: FAILED: ${r.error}`);
      }
      row[runner.key] = r;
    }
    reps.push(row);
  }

  const median = (values) => percentile(values, 50);
  const keys = runners.map((r) => r.key);
  const num = (x, digits = 2) => (x === null || !Number.isFinite(x) ? 'failed' : x.toFixed(digits));
  const ratiosOf = (key) =>
    reps.map((row) => (row[key].usPerMessage === null || row.plain.usPerMessage === null ? null : row[key].usPerMessage / row.plain.usPerMessage));
  const rows = runners.map((runner) => {
    const us = reps.map((row) => row[runner.key].usPerMessage);
    const ratios = ratiosOf(runner.key);
    return [
      runner.label,
      num(median(us)),
      us.map((x) => num(x)).join(', '),
      runner.key === 'plain' ? '1' : `${num(median(ratios))} (${ratios.map((x) => num(x)).join(', ')})`,
    ];
  });
  const markdownTable = table(['primary', 'µs CPU per message, median', 'every rep', '× plain, median (every rep)'], rows);
  const verdicts = keys
    .filter((k) => k !== 'plain')
    .map((k) => {
      const ratio = median(ratiosOf(k));
      if (ratio === null) return `- ${k}: no measurement (every rep failed: ${reps.map((row) => row[k].error).find(Boolean)})`;
      return `- ${k}: ${ratio <= TARGET ? 'met' : 'missed'} (${ratio.toFixed(2)}× plain, target ≤ ${TARGET}×)`;
    });
  process.stdout.write(`${markdownTable}\n\n${verdicts.join('\n')}\n`);

  const commit = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['-C', REPO, 'status', '--porcelain', '--', 'src', 'machines'], { encoding: 'utf8' }).trim() !== '';
  const data = { date: new Date().toISOString(), command: `node bench/messages.mjs ${process.argv.slice(2).join(' ')}`.trim(), commit, dirty, node: process.version, loadavg, workers: WORKERS, messagesPerWorker: MESSAGES, reps };
  if (flags.write !== undefined) {
    const label = flags.write || 'latest';
    if (!/^[\w.-]{1,40}$/.test(label)) throw new Error(`--write takes a short label, not '${label}'`);
    writeFileSync(join(BENCH, `RESULTS-messages-${label}.json`), `${JSON.stringify(data, null, 1)}\n`);
    const file = writeSection(
      `messages:${label}`,
      `## An app's own IPC messages: the primary's CPU per message (${label})

\`${data.command}\` — ${WORKERS} workers of \`bench/apps/messenger.cjs\` each send ${MESSAGES.toLocaleString('en-US')} messages in a tight
loop; the primary's CPU time (utime + stime, \`/proc/<pid>/stat\`, 10 ms ticks) from before the burst until it is idle again, per message.
The runners alternate, ${REPS} rep(s). ${data.date}, commit ${commit}${dirty ? ' (src/ or machines/ had uncommitted changes)' : ''}, Node ${process.version}, load average before ${loadavg}.
Raw: \`bench/RESULTS-messages-${label}.json\`.

${markdownTable}

Target: zd ≤ ${TARGET}× the plain primary.
${verdicts.join('\n')}
`,
    );
    say(`${NAME}: wrote section '${label}' of ${file}`);
  }
}

try {
  await main();
} finally {
  cleanup();
}
