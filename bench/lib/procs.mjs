// Every process the benchmark starts is recorded by pid (with its start time, so a reused pid is
// never mistaken for ours) and killed by pid at the end, on failure and on SIGINT. Nothing is ever
// killed by name.
import { fork, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';

/**
 * Every process of this run inherits ZD_BENCH_RUN=<RUN_ID> (PM2's daemon and instances too, which
 * are not our descendants): a leftover is found by this exact value, never by a name.
 */
export const RUN_ID = `${process.pid}-${randomUUID()}`;
process.env.ZD_BENCH_RUN = RUN_ID;
const MARK = `ZD_BENCH_RUN=${RUN_ID}`;

/** pid → start time (clock ticks since boot, field 22 of /proc/<pid>/stat). */
const tracked = new Map();

function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0], ppid: Number(fields[1]), start: fields[19] };
  } catch {
    return null;
  }
}

export function track(pid) {
  if (!pid || tracked.has(pid)) return;
  const s = stat(pid);
  if (s) tracked.set(pid, s.start);
}

/** Is this pid still the process we started (and not a zombie)? */
export function isOurs(pid) {
  const s = stat(pid);
  return s !== null && s.state !== 'Z' && s.start === tracked.get(pid);
}

export function isAlive(pid) {
  const s = stat(pid);
  return s !== null && s.state !== 'Z';
}

/** Every live descendant of pid, found through /proc's parent links. */
export function descendants(pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = stat(name);
    if (!s) continue;
    if (!children.has(s.ppid)) children.set(s.ppid, []);
    children.get(s.ppid).push(Number(name));
  }
  const out = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** Records pid and all its current descendants (workers forked since the last call). */
export function trackTree(pid) {
  track(pid);
  for (const child of descendants(pid)) track(child);
}

export function trackedAlive() {
  return [...tracked.keys()].filter(isOurs);
}

/** Sends signal to every tracked process still alive, and to their descendants. */
export function killTracked(signal = 'SIGKILL') {
  for (const pid of trackedAlive()) trackTree(pid);
  for (const pid of trackedAlive()) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** CPU time a process has used (utime + stime), in ms, or null. */
export function cpuMs(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/** VmRSS of a process in kB, or null. */
export function rssKb(pid) {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** Live processes of this run, tracked or not: their environment carries this run's mark. */
export function processesOfThisRun() {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`).includes(MARK) && isAlive(name)) out.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/**
 * CPU time (clock ticks) used so far by each live process that is not part of this run: other work
 * on the machine, which skews a benchmark on two cores. Compare two snapshots with otherCpuSeconds.
 */
export function otherCpuSnapshot() {
  const out = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`).includes(MARK)) continue;
      const text = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      out.set(name, Number(fields[11]) + Number(fields[12])); // utime + stime: its own, not its reaped children's
    } catch {
      // gone
    }
  }
  return out;
}

/** Seconds of CPU other processes used between two snapshots (a lower bound: some may have exited). */
export function otherCpuSeconds(before, after) {
  let ticks = 0;
  for (const [pid, now] of after) ticks += now - (before.get(pid) ?? 0);
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** Spawns a tracked child. */
export function spawnTracked(command, args, options) {
  const child = spawn(command, args, options);
  track(child.pid);
  return child;
}

/** Resolves with { code, signal } when the child has exited, or null after ms. */
export function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** Runs a tracked command to completion (bounded by timeoutMs, then SIGKILL). */
export function runTracked(command, args, options, timeoutMs) {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const child = spawnTracked(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, startedAt, endedAt: Date.now() });
    });
  });
}

/** Sends SIGTERM to child, SIGKILLs what is left of its tree after ms; resolves true if it had to. */
export async function stopTree(child, ms) {
  trackTree(child.pid);
  const tree = [child.pid, ...descendants(child.pid)];
  child.kill('SIGTERM');
  const forced = (await waitExit(child, ms)) === null;
  for (const pid of tree) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  return forced;
}

/** A primary's workers: its descendants whose command line names the app (tsx's esbuild service is not one). */
export function workersOf(pid, app) {
  return descendants(pid).filter((child) => {
    try {
      return readFileSync(`/proc/${child}/cmdline`, 'utf8').includes(app);
    } catch {
      return false;
    }
  });
}

/**
 * Forks a load generator (lib/load.mjs, lib/soak-load.mjs: they say 'started' and 'result' over
 * IPC), tracked. killAfterMs bounds it, if given; `what` names it in the error of an exit without
 * a result.
 */
export function forkLoad(script, spec, { killAfterMs, what = 'load generator' } = {}) {
  const child = fork(script, [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  track(child.pid);
  let onStarted;
  const started = new Promise((resolve) => (onStarted = resolve));
  const result = new Promise((resolve, reject) => {
    let got = null;
    const timer = killAfterMs === undefined ? null : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('message', (message) => {
      if (message.type === 'started') onStarted(message.at);
      if (message.type === 'result') got = message.result;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (got) resolve(got);
      else reject(new Error(`${what} exited ${code ?? signal} without a result`));
    });
  });
  return { child, started, result };
}

/** A port free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Every way out of a benchmark goes through cleanup: these signals (then exit 128 + n), an
 * uncaught exception (exit 1), and, given watchdogMs, a watchdog (exit 1). `name` prefixes what
 * it says; newline puts a line break before the signal's message (after a progress line).
 */
export function cleanUpOnExit(name, cleanup, { signals = ['SIGINT', 'SIGTERM', 'SIGHUP'], watchdogMs, newline = false } = {}) {
  const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  const say = (text) => process.stderr.write(`${text}\n`);
  for (const signal of signals) {
    process.on(signal, () => {
      say(`${newline ? '\n' : ''}${name}: ${signal}: killing every process it started`);
      cleanup();
      process.exit(codes[signal]);
    });
  }
  process.on('uncaughtException', (error) => {
    say(`${name}: ${error.stack ?? error}`);
    cleanup();
    process.exit(1);
  });
  if (watchdogMs !== undefined) {
    setTimeout(() => {
      say(`${name}: watchdog: still running after ${Math.round(watchdogMs / 60_000)} min, giving up`);
      cleanup();
      process.exit(1);
    }, watchdogMs).unref();
  }
}
