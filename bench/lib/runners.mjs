// The four ways of running bench/apps/app.cjs, behind one interface:
//   const h = await RUNNERS[name].start({ port, workers });   // resolves once ready and answering
//   await h.reload()  → { triggerAt, doneAt, oldGoneAt?, outcome, detail }
//   h.rssPids()       → { primary: pid, workers: [pid] }
//   await h.stop()    → { code, signal, forced }
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { descendants, freePort, isAlive, runTracked, spawnTracked, stopTree, trackTree, track, waitExit, workersOf } from './procs.mjs';

export const BENCH = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
export const REPO = join(BENCH, '..');
const APP = join(BENCH, 'apps', 'app.cjs');
const SEED = join(BENCH, 'runners', 'seed-cluster.cjs');
const ZD_SOURCE = join(BENCH, 'runners', 'zd-source.mjs');
const ZD_BIN = join(REPO, 'bin', 'zd.js');
const PM2_BIN = join(BENCH, 'node_modules', 'pm2', 'bin', 'pm2');
const PM2_APP_NAME = 'zd-bench-app';

const READY_TIMEOUT_MS = 20_000;
const RELOAD_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/** PM2_HOME dirs of PM2 runs not yet stopped, for the clean-up on an interrupted run. */
export const pm2Homes = new Set();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** GET / on 127.0.0.1:port answers 200. */
function probe(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

async function waitAnswering(port, deadline) {
  while (Date.now() < deadline) {
    if (await probe(port)) return;
    await sleep(50);
  }
  throw new Error(`nothing answered on 127.0.0.1:${port} in time`);
}

/** Splits a child's stderr into lines, JSON-parsed where possible, each stamped with its arrival time. */
function lineReader(stream, onLine) {
  let buffer = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    const at = Date.now();
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const text = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON: a worker's own output
      }
      onLine({ at, text, json });
    }
  });
}

/** Waits for the first line (from index `from` on) matching pred; lines are kept in `log`. */
function waitLine(log, listeners, pred, ms, from = 0) {
  const found = log.slice(from).find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      listeners.delete(check);
      resolve(null);
    }, ms);
    const check = (line) => {
      if (!pred(line)) return;
      clearTimeout(timer);
      listeners.delete(check);
      resolve(line);
    };
    listeners.add(check);
  });
}

/**
 * Every line of a child's stderr (JSON-parsed where it is JSON), and until(pred, ms, what, from):
 * the first line from index `from` on that satisfies pred, or an error naming `what` after ms.
 */
export function stderrLines(child) {
  const log = [];
  const listeners = new Set();
  lineReader(child.stderr, (line) => {
    log.push(line);
    for (const listener of [...listeners]) listener(line);
  });
  const until = async (pred, ms, what, from = 0) => {
    const line = await waitLine(log, listeners, pred, ms, from);
    if (line === null) throw new Error(`${what}: not seen within ${ms} ms; last lines:\n${log.slice(-10).map((l) => l.text).join('\n')}`);
    return line;
  };
  return { log, listeners, until };
}

/**
 * A primary started as `node ...runner.args(port)` in bench/ with PORT set, once runner.ready
 * holds for a line of its stderr and it has exactly `workers` workers running `app`; else it is
 * stopped and the error thrown. Stop it with stopTree.
 */
export async function startPrimary(runner, { env = {}, app, workers, readyMs }) {
  const port = await freePort();
  const child = spawnTracked(process.execPath, runner.args(port), {
    cwd: BENCH, // zd reads a zd.config.json in its cwd: not the repository's
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines = stderrLines(child);
  try {
    await lines.until((l) => runner.ready(l.json), readyMs, `${runner.label}: ready`);
    trackTree(child.pid);
    const pids = workersOf(child.pid, app);
    if (pids.length !== workers) throw new Error(`${runner.label}: ${pids.length} workers, not ${workers}`);
    return { port, child, log: lines.log, until: lines.until, workers: pids };
  } catch (error) {
    await stopTree(child, STOP_TIMEOUT_MS);
    throw error;
  }
}

/** A runner that is one tracked child process logging events on stderr (zd, the seed, the bare app). */
async function startChild({ command, args, port, ready, name }) {
  const child = spawnTracked(process.execPath, [...command, ...args], {
    // Not the repository: zd reads a zd.config.json or a "zd" key from the package.json in its cwd.
    cwd: BENCH,
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const { log, listeners } = stderrLines(child);
  const exited = waitExit(child, 10 * 60_000);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  if (ready) {
    const line = await Promise.race([waitLine(log, listeners, ready, READY_TIMEOUT_MS), exited.then(() => 'exited')]);
    if (line === null || line === 'exited') {
      const last = log.at(-1)?.text ?? '(nothing on stderr)';
      throw new Error(
        `${name} did not become ready (${line === 'exited' ? `exited ${child.exitCode ?? child.signalCode}` : 'timeout'}): ${last}\nstderr:\n${log.map((l) => l.text).join('\n').slice(-2000)}`,
      );
    }
  }
  await waitAnswering(port, deadline);
  trackTree(child.pid);
  return {
    child,
    log,
    listeners,
    pid: child.pid,
    rssPids() {
      trackTree(child.pid);
      return { primary: child.pid, workers: descendants(child.pid) };
    },
    async stop() {
      trackTree(child.pid);
      const tree = [child.pid, ...descendants(child.pid)];
      child.kill('SIGTERM');
      let result = await waitExit(child, STOP_TIMEOUT_MS);
      let forced = false;
      if (result === null) {
        forced = true;
        for (const pid of tree) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
        result = await waitExit(child, 5000);
      }
      // A worker the primary left behind is a leak of the runner's: report it, then kill it.
      await sleep(100);
      const leftovers = tree.filter((pid) => pid !== child.pid && isAlive(pid));
      for (const pid of leftovers) process.kill(pid, 'SIGKILL');
      return { code: result?.code ?? null, signal: result?.signal ?? null, forced, leftovers };
    },
  };
}

/** fork → ready time of each replacement, from a reload's phases. */
function boots(phases, forked, ready, key) {
  return phases
    .filter((p) => p.what === forked)
    .map((f) => {
      const r = phases.find((p) => p.what === ready && key(p) === key(f));
      return r ? r.ms - f.ms : null;
    });
}

const isCode = (code) => (line) => line.json?.code === code;
const isEvent = (event) => (line) => line.json?.event === event;

export function zdRunner(command, label) {
  return {
    label,
    async start({ port, workers }) {
      const h = await startChild({
        name: label,
        command,
        // A name of its own: zd's control socket is named after the app file by default, and two
        // instances (this one and one still stopping, or another benchmark) must not collide.
        args: ['run', APP, '-w', String(workers), '--log-format', 'json', '--name', `zd-bench-${process.pid}-${port}`],
        port,
        ready: isCode('ZD_READY'),
      });
      let generation = 1;
      return {
        ...h,
        async reload() {
          const from = h.log.length;
          const oldGeneration = generation;
          const triggerAt = Date.now();
          h.child.kill('SIGHUP');
          const end = await waitLine(h.log, h.listeners, (l) => ['ZD_RELOAD_DONE', 'ZD_RELOAD_ABORTED'].includes(l.json?.code), RELOAD_TIMEOUT_MS, from);
          const started = h.log.slice(from).find(isCode('ZD_RELOAD_STARTED'));
          if (end?.json.code === 'ZD_RELOAD_DONE') generation = end.json.generation;
          // The old generation's workers have exited (they drain after their replacement is ready).
          let oldGoneAt = null;
          const oldExits = () => h.log.slice(from).filter((l) => l.json?.code === 'ZD_WORKER_EXITED' && l.json.generation === oldGeneration);
          const deadline = Date.now() + RELOAD_TIMEOUT_MS;
          while (oldExits().length < workers && Date.now() < deadline) await sleep(20);
          if (oldExits().length >= workers) oldGoneAt = oldExits().at(-1).at;
          trackTree(h.pid);
          // Each replacement's fork and ready, by zd's own clock (pino's ms timestamps).
          const phases = h.log
            .slice(from)
            .filter((l) => ['ZD_WORKER_FORKED', 'ZD_WORKER_READY', 'ZD_WORKER_DRAINING', 'ZD_RELOAD_DONE'].includes(l.json?.code))
            .map((l) => ({ what: l.json.code, workerId: l.json.workerId ?? null, ms: Date.parse(l.json.time) - triggerAt }));
          return {
            triggerAt,
            phases,
            bootsMs: boots(phases, 'ZD_WORKER_FORKED', 'ZD_WORKER_READY', (p) => p.workerId),
            startedAt: started?.at ?? null,
            doneAt: end?.at ?? null,
            oldGoneAt,
            outcome: end === null ? 'timeout' : end.json.code === 'ZD_RELOAD_DONE' ? 'done' : 'aborted',
            detail: end?.json.code === 'ZD_RELOAD_ABORTED' ? end.text : null,
          };
        },
        /** zd's own warnings and errors (pino level ≥ 40), verbatim. */
        problems: () => h.log.filter((l) => l.json?.name === 'zd' && l.json.level >= 40).map((l) => l.text),
      };
    },
  };
}

export const RUNNERS = {
  single: {
    label: 'single process',
    async start({ port }) {
      const h = await startChild({ name: 'single', command: [APP], args: [], port, ready: null });
      return { ...h, problems: () => [] };
    },
  },

  'seed-cluster': {
    label: 'seed node:cluster script',
    async start({ port, workers }) {
      const h = await startChild({ name: 'seed-cluster', command: [SEED], args: [APP, String(workers)], port, ready: isEvent('ready') });
      return {
        ...h,
        async reload() {
          const from = h.log.length;
          const triggerAt = Date.now();
          h.child.kill('SIGHUP');
          const end = await waitLine(h.log, h.listeners, isEvent('reload-done'), RELOAD_TIMEOUT_MS, from);
          // The seed disconnects an old worker once its replacement listens; count their exits.
          let oldGoneAt = null;
          const deadline = Date.now() + RELOAD_TIMEOUT_MS;
          const planned = () => h.log.slice(from).filter((l) => l.json?.event === 'worker-exit' && l.json.planned);
          while (planned().length < workers && Date.now() < deadline) await sleep(20);
          if (planned().length >= workers) oldGoneAt = planned().at(-1).at;
          trackTree(h.pid);
          const phases = h.log
            .slice(from)
            .filter((l) => ['fork', 'listening', 'reload-done'].includes(l.json?.event))
            .map((l) => ({ what: l.json.event, pid: l.json.pid ?? null, ms: l.json.t - triggerAt }));
          return {
            triggerAt,
            phases,
            bootsMs: boots(phases, 'fork', 'listening', (p) => p.pid),
            startedAt: null,
            doneAt: end?.at ?? null,
            oldGoneAt,
            outcome: end ? 'done' : 'timeout',
            detail: null,
          };
        },
        problems: () => h.log.filter((l) => l.json?.event === 'worker-exit' && !l.json.planned).map((l) => l.text),
      };
    },
  },

  zd: zdRunner([ZD_BIN], 'zd (built: dist/zd.cjs)'),

  // bin/zd.js's fallback path (TypeScript source through tsx), for the primary's RSS only.
  'zd-source': zdRunner([ZD_SOURCE], 'zd (source via tsx)'),

  pm2: {
    label: 'PM2 cluster mode',
    async start({ port, workers }) {
      const home = mkdtempSync(join(tmpdir(), 'zd-bench-pm2-'));
      pm2Homes.add(home);
      const env = { ...process.env, PM2_HOME: home, PORT: String(port) };
      const pm2 = (args, timeoutMs = 30_000) => runTracked(process.execPath, [PM2_BIN, ...args], { cwd: BENCH, env }, timeoutMs);
      let daemonPid = null;
      const readDaemonPid = () => {
        try {
          daemonPid = Number(readFileSync(join(home, 'pm2.pid'), 'utf8').trim()) || daemonPid;
        } catch {
          // not started yet
        }
        if (daemonPid) trackTree(daemonPid);
        return daemonPid;
      };
      const kill = async () => {
        readDaemonPid();
        const tree = daemonPid ? [daemonPid, ...descendants(daemonPid)] : [];
        const result = await pm2(['kill'], STOP_TIMEOUT_MS);
        let forced = false;
        const deadline = Date.now() + 5000;
        while (tree.some(isAlive) && Date.now() < deadline) await sleep(50);
        const leftovers = tree.filter(isAlive);
        for (const pid of leftovers) {
          forced = true;
          process.kill(pid, 'SIGKILL');
        }
        rmSync(home, { recursive: true, force: true });
        pm2Homes.delete(home);
        return { code: result.code, signal: result.signal, forced, leftovers };
      };
      try {
        const started = await pm2(['start', APP, '-i', String(workers), '--name', PM2_APP_NAME], READY_TIMEOUT_MS);
        readDaemonPid();
        if (started.code !== 0) throw new Error(`pm2 start exited ${started.code}: ${started.stderr}${started.stdout}`);
        const deadline = Date.now() + READY_TIMEOUT_MS;
        // Ready: every instance online, and the port answering.
        for (;;) {
          const list = await pm2(['jlist'], 10_000);
          const apps = JSON.parse(list.stdout.slice(list.stdout.indexOf('[')) || '[]');
          if (apps.length === workers && apps.every((a) => a.pm2_env?.status === 'online')) break;
          if (Date.now() > deadline) throw new Error(`pm2: instances not online: ${list.stdout.slice(0, 500)}`);
          await sleep(100);
        }
        await waitAnswering(port, deadline);
        readDaemonPid();
      } catch (error) {
        await kill();
        throw error;
      }
      // The CLI's own cost (start node, load pm2, talk to the daemon), which `pm2 reload`'s time includes.
      const ping = await pm2(['ping'], 10_000);
      return {
        home,
        pingMs: ping.endedAt - ping.startedAt,
        get pid() {
          return readDaemonPid();
        },
        rssPids() {
          readDaemonPid();
          return { primary: daemonPid, workers: descendants(daemonPid) };
        },
        async reload() {
          const result = await pm2(['reload', PM2_APP_NAME], RELOAD_TIMEOUT_MS);
          readDaemonPid();
          return {
            triggerAt: result.startedAt,
            startedAt: null,
            doneAt: result.code === 0 ? result.endedAt : null,
            // pm2 reload returns once each old instance has been stopped.
            oldGoneAt: result.code === 0 ? result.endedAt : null,
            outcome: result.code === 0 ? 'done' : `pm2 reload exited ${result.code ?? result.signal}`,
            detail: result.code === 0 ? null : `${result.stderr}${result.stdout}`.slice(-1000),
          };
        },
        stop: kill,
        problems: () => [],
      };
    },
  },
};

export { track };
