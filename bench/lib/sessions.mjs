// A runner started on a free port and measured under load: what bench/sockets.mjs and
// bench/sched.mjs share. A runner is { key, label, args(port, name), env, ready(json), zd? }: `zd`
// marks a zd (built first if dist/ is stale; its control sockets in the benchmark's own runtime
// directory, `zdEnv`); anything else is a plain process tree (node:cluster, bare processes).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, buildIsFresh } from './build.mjs';
import { failureKinds } from './failure-kinds.mjs';
import { cpuMs, descendants, forkLoad, freePort, otherCpuSeconds, otherCpuSnapshot, spawnTracked, stopTree, trackTree, waitExit } from './procs.mjs';
import { failures } from './report.mjs';
import { BENCH, REPO, stderrLines } from './runners.mjs';

const ZD_BIN = join(REPO, 'bin', 'zd.js');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** A zd that exited 2 before it was ready: it refused its command line (its last line says why). */
export class Unavailable extends Error {}

/** The two loads both benchmarks run: a new connection per request, and keep-alive. */
export function loadsOf(connections, keepalive) {
  return [
    { key: 'fresh', label: `new connection per request (${connections} loops)`, spec: { mode: 'per-connection', connections } },
    { key: 'keepalive', label: `keep-alive (autocannon, ${keepalive} connections)`, spec: { mode: 'keepalive', connections: keepalive } },
  ];
}

export function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

/**
 * @param {{ name: string, app: string, workers: number, zdEnv: Record<string, string>, warmupMs: number,
 *   windowMs: number, maxRequests: number, node?: string, readyMs?: number, stopMs?: number }} options
 */
export function sessions({ name, app, workers, zdEnv, warmupMs, windowMs, maxRequests, node = process.execPath, readyMs = 30_000, stopMs = 15_000 }) {
  const say = (text) => process.stderr.write(`${text}\n`);

  function load(port, spec, durationMs) {
    return forkLoad(join(BENCH, 'lib', 'load.mjs'), { ...spec, port, durationMs, maxRequests, binMs: 1000 }, { killAfterMs: durationMs + 30_000 });
  }

  async function buildIfStale(reason) {
    if (buildIsFresh()) return;
    say(`${name}: npm run build (${reason}: dist/ is older than the source)`);
    await build(reason);
  }

  /**
   * Starts a runner on a free port, once it says it is ready with `workers` processes serving the
   * app. zd as `zd run` is: a keeper whose child is the primary (its command line names the app
   * too), whose children are the workers.
   */
  async function start(runner, zdName) {
    const port = await freePort();
    if (runner.zd) await buildIfStale('before a zd start');
    const env = { ...process.env, ...(runner.zd ? zdEnv : {}), ...runner.env, PORT: String(port) };
    if (!runner.env?.NODE_CLUSTER_SCHED_POLICY) delete env.NODE_CLUSTER_SCHED_POLICY;
    const child = spawnTracked(node, runner.args(port, zdName), { cwd: BENCH, env, stdio: ['ignore', 'ignore', 'pipe'] });
    const { log, until } = stderrLines(child);
    try {
      const exited = waitExit(child, readyMs + 5000).then((r) => ({ exited: r }));
      const ready = until((l) => runner.ready(l.json), readyMs, `${runner.label}: ready`);
      ready.catch(() => {}); // an exit may win the race below; its timeout is then nobody's error
      const first = await Promise.race([ready.then(() => null), exited]);
      if (first?.exited) {
        await sleep(50); // its last stderr lines
        const last = log.map((l) => l.text.trim()).filter(Boolean).at(-1) ?? '(nothing on stderr)';
        const code = first.exited.code ?? first.exited.signal;
        if (runner.zd && code === 2) throw new Unavailable(last);
        throw new Error(`${runner.label} exited ${code} before it was ready: ${last}`);
      }
      trackTree(child.pid);
      const tree = descendants(child.pid);
      const serving = tree.filter((pid) => cmdline(pid).includes(app) && !cmdline(pid).includes(ZD_BIN));
      if (serving.length !== workers) throw new Error(`${runner.label}: ${serving.length} workers, not ${workers}`);
      // The process that hands connections over: zd's primary (under its keeper), or the runner itself.
      const primary = tree.find((pid) => cmdline(pid).includes(ZD_BIN)) ?? child.pid;
      return { port, child, log, until, pids: [child.pid, ...tree], primary };
    } catch (error) {
      await stopTree(child, stopMs);
      throw error;
    }
  }

  /** One runner, every load on the same running processes (each after its own warm-up). */
  async function measure(runner, loadOrder) {
    const { port, child, log, pids, primary } = await start(runner);
    const out = {};
    const p = pids.indexOf(primary);
    try {
      for (const l of loadOrder) {
        await load(port, l.spec, warmupMs).result;
        const run = load(port, l.spec, windowMs);
        await run.started;
        const other = otherCpuSnapshot();
        const before = pids.map(cpuMs);
        const window = await run.result;
        const after = pids.map(cpuMs);
        const cpu = after.reduce((sum, ms, i) => sum + (ms ?? 0) - (before[i] ?? 0), 0);
        const f = failures(window);
        out[l.key] = {
          rps: window.rps,
          responses: window.responses,
          failed: f.failed,
          artifacts: f.artifacts,
          errors: window.reqErrors,
          failures: failureKinds(window),
          cpuMsPer1k: window.responses > 0 ? (1000 * cpu) / window.responses : null,
          primaryCpuMsPer1k: window.responses > 0 ? (1000 * ((after[p] ?? 0) - (before[p] ?? 0))) / window.responses : null,
          otherCpuS: otherCpuSeconds(other, otherCpuSnapshot()),
        };
      }
      const problems = log.filter((l) => (l.json?.name === 'zd' && l.json.level >= 40) || l.json?.event === 'worker-exit').map((l) => l.text);
      if (problems.length) out.problems = problems;
    } finally {
      if (await stopTree(child, stopMs)) out.forcedStop = true;
    }
    return out;
  }

  /**
   * `reps` rounds of every runner under every load, interleaved: the runner order rotates and the
   * load order alternates per rep. A zd that refuses its command line is noted in `unavailable`
   * (key → its line) and skipped from then on; any other failure is that rep's `{ error }`.
   */
  async function measureReps(runners, loads, reps, unavailable = {}) {
    const rows = [];
    for (let rep = 0; rep < reps; rep++) {
      const row = {};
      const loadOrder = rep % 2 === 0 ? loads : [...loads].reverse();
      for (let i = 0; i < runners.length; i++) {
        const runner = runners[(i + rep) % runners.length];
        if (unavailable[runner.key]) continue;
        try {
          row[runner.key] = await measure(runner, loadOrder);
          for (const l of loads) {
            const r = row[runner.key][l.key];
            say(`${name}: rep ${rep + 1} ${runner.key} ${l.key}: ${Math.round(r.rps)} req/s, ${r.cpuMsPer1k?.toFixed(1)} CPU-ms per 1k (primary ${r.primaryCpuMsPer1k?.toFixed(1)}), ${r.failed} failed, other processes ${r.otherCpuS.toFixed(1)} CPU-s`);
          }
          if (row[runner.key].problems) say(`${name}: rep ${rep + 1} ${runner.key}: ${row[runner.key].problems.length} warning line(s): ${row[runner.key].problems[0]}`);
        } catch (error) {
          if (error instanceof Unavailable) {
            unavailable[runner.key] = error.message;
            say(`${name}: ${runner.key}: unavailable (zd refused its command line): ${error.message}`);
            continue;
          }
          row[runner.key] = { error: String(error.message ?? error).split('\n')[0] };
          say(`${name}: rep ${rep + 1} ${runner.key}: FAILED: ${row[runner.key].error}`);
        }
      }
      rows.push(row);
    }
    return rows;
  }

  return { load, buildIfStale, start, measure, measureReps };
}
