// The baseline: a rolling restart the way a typical hand-written node:cluster script does it.
//   node bench/runners/seed-cluster.cjs <app> [workers]
// SIGHUP replaces the workers one at a time: fork a new one, and when it is listening, disconnect the
// old one. No keep-alive handling, no drain timeout beyond a 30 s SIGKILL safety. An unplanned exit
// is re-forked. SIGTERM disconnects every worker and exits when they are gone. Events are JSON
// lines on stderr, for the benchmark to time.
'use strict';
const cluster = require('node:cluster');
const path = require('node:path');

const app = path.resolve(process.argv[2] ?? '');
const count = Number(process.argv[3] ?? 2);
const SAFETY_KILL_MS = 30_000;

const planned = new Set();
let reloading = false;
let stopping = false;

function log(event, extra = {}) {
  process.stderr.write(`${JSON.stringify({ event, t: Date.now(), ...extra })}\n`);
}

function safetyKill(worker) {
  const timer = setTimeout(() => worker.process.kill('SIGKILL'), SAFETY_KILL_MS);
  timer.unref();
  worker.once('exit', () => clearTimeout(timer));
}

cluster.setupPrimary({ exec: app });

cluster.on('exit', (worker, code, signal) => {
  log('worker-exit', { pid: worker.process.pid, code, signal, planned: planned.has(worker.id) });
  if (stopping) {
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    return;
  }
  if (!planned.delete(worker.id)) cluster.fork();
});

let listening = 0;
for (let i = 0; i < count; i++) {
  cluster.fork().once('listening', () => {
    if (++listening === count) log('ready', { pid: process.pid });
  });
}

function replace(old) {
  return new Promise((resolve) => {
    const fresh = cluster.fork();
    log('fork', { pid: fresh.process.pid });
    fresh.once('listening', () => {
      log('listening', { pid: fresh.process.pid });
      planned.add(old.id);
      old.disconnect();
      safetyKill(old);
      resolve();
    });
  });
}

process.on('SIGHUP', async () => {
  if (reloading || stopping) return;
  reloading = true;
  log('reload-start');
  for (const old of Object.values(cluster.workers ?? {})) await replace(old);
  log('reload-done');
  reloading = false;
});

process.on('SIGTERM', () => {
  stopping = true;
  const workers = Object.values(cluster.workers ?? {});
  if (workers.length === 0) process.exit(0);
  for (const worker of workers) {
    worker.disconnect();
    safetyKill(worker);
  }
});
