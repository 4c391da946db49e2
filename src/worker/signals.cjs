// @ts-check
// Signals sent to zd's whole process group — Ctrl-C in a terminal, `timeout`, `kill -- -PGID`, a
// supervisor that signals the group — reach every worker at the same moment they reach zd. zd
// turns SIGINT/SIGTERM into a drain and SIGHUP/SIGUSR2 into a reload; a worker that also acted on
// them would die at once (in-flight requests reset) or run the app's own shutdown before zd's
// drain. So, as Puma's workers ignore SIGINT:
//   - SIGINT/SIGTERM while zd has not begun stopping this worker cannot be zd's (zd signals a
//     worker only after it has told it to disconnect): it is the group's, zd will drain us for
//     it, and it neither kills the worker nor runs the app's handlers. Nor does one that arrives
//     just after zd's disconnect order: zd may well have acted on the group's signal before this
//     worker read it, and zd's own SIGTERM comes no sooner than the drain deadline. From
//     `GRACE_MS` after the order on (half the drain deadline, at most 1 s), these signals do what
//     the app expects: its handlers run, or without one the default action ends the worker —
//     zd's SIGTERM at the drain deadline is one of these.
//   - SIGHUP/SIGUSR2 never end a worker (their default action would): an app's own handlers run,
//     otherwise nothing happens.
// Node binds `process.emit` into a signal's native watcher when the first listener of that signal
// is added (lib/internal/process/signal.js, startListeningIfSignal). Each signal is armed here,
// before the app runs, by adding a listener of ours while `process.emit` is, for that moment,
// `deliver`: every later app listener shares that watcher, so every signal passes through
// `deliver`, while the app's own process.emit calls stay untouched.
'use strict';

const cluster = /** @type {import('node:cluster').Cluster} */ (/** @type {unknown} */ (require('node:cluster')));

/** @typedef {'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'SIGUSR2'} Guarded */
/** @type {ReadonlyArray<Guarded>} */
const STOP = ['SIGINT', 'SIGTERM'];
/** @type {ReadonlyArray<Guarded>} */
const RELOAD = ['SIGHUP', 'SIGUSR2'];

/** @type {Record<Guarded, () => void>} */
const guards = {
  SIGINT: () => {},
  SIGTERM: () => {},
  SIGHUP: () => {},
  SIGUSR2: () => {},
};
/** Signals whose guard was taken off for good: the default action applies again. */
const released = new Set();
let arming = false;

const drainMs = Number(process.env.ZD_DRAIN_TIMEOUT_MS ?? 30_000);
const GRACE_MS = Number.isFinite(drainMs) ? Math.max(0, Math.min(1000, drainMs / 2)) : 1000;
/** When this worker first saw that zd is stopping it. @type {number | null} */
let leavingSince = null;

/** Whether zd has begun stopping this worker (or is gone), and since when. */
function leaving() {
  if (leavingSince === null && (!process.connected || cluster.worker?.exitedAfterDisconnect === true)) startLeaving();
  return leavingSince !== null;
}

function startLeaving() {
  if (leavingSince !== null) return;
  leavingSince = performance.now();
  if (GRACE_MS === 0) return releaseNow();
  setTimeout(releaseNow, GRACE_MS).unref();
}

function releaseNow() {
  for (const signal of STOP) release(signal);
}

/** @param {Guarded} signal */
function appListeners(signal) {
  return process.listeners(signal).filter((listener) => listener !== guards[signal]).length;
}

/**
 * What the signal's watcher calls instead of process.emit.
 * @this {unknown} @param {string | symbol} type @param {any[]} args @returns {boolean}
 */
function deliver(type, ...args) {
  /** @type {(...a: any[]) => boolean} */
  const emit = process.emit === /** @type {unknown} */ (deliver) ? originalEmit : process.emit;
  if (!isGuarded(type)) return emit.call(process, type, ...args);
  if (RELOAD.includes(type)) return appListeners(type) > 0 ? emit.call(process, type, ...args) : false;
  // The group's: zd is draining us for it.
  if (!leaving() || performance.now() - /** @type {number} */ (leavingSince) < GRACE_MS) return false;
  if (appListeners(type) > 0) return emit.call(process, type, ...args);
  // No handler of the app's: die of it, as without zd. Arrived before release() could run.
  release(type);
  process.kill(process.pid, type);
  return false;
}

/** @type {typeof process.emit} */
let originalEmit = process.emit;

/** @param {string | symbol} type @returns {type is Guarded} */
function isGuarded(type) {
  return type === 'SIGINT' || type === 'SIGTERM' || type === 'SIGHUP' || type === 'SIGUSR2';
}

/** @param {Guarded} signal */
function arm(signal) {
  if (released.has(signal) || process.rawListeners(signal).includes(guards[signal])) return;
  // A listener added before us (a preload of the user's) owns a watcher bound to another emit:
  // without listeners Node closes it, and re-adding them joins the watcher armed below.
  const earlier = process.rawListeners(signal);
  arming = true;
  try {
    for (const listener of earlier) process.removeListener(signal, /** @type {any} */ (listener));
    originalEmit = process.emit;
    process.emit = /** @type {typeof process.emit} */ (/** @type {unknown} */ (deliver));
    try {
      process.on(signal, guards[signal]);
    } finally {
      process.emit = originalEmit;
    }
    for (const listener of earlier) process.on(signal, /** @type {any} */ (listener));
  } finally {
    arming = false;
  }
}

/**
 * zd has begun stopping this worker: after GRACE_MS, SIGINT/SIGTERM get their default action back
 * unless the app handles them (a handler of the app's still shares the watcher, and `deliver`
 * passes it on).
 */
function releaseStopSignals() {
  startLeaving();
}

/** @param {Guarded} signal */
function release(signal) {
  released.add(signal);
  process.removeListener(signal, guards[signal]);
}

function armSignals() {
  // Only a worker with a primary has someone else to turn a group signal into a drain.
  if (typeof process.send !== 'function') return;
  for (const signal of [...STOP, ...RELOAD]) arm(signal);
  // An app that removes every listener of a signal (removeAllListeners) takes ours too: put it back.
  process.on('removeListener', (type, listener) => {
    if (arming || !isGuarded(type) || listener !== guards[type] || released.has(type)) return;
    process.nextTick(() => arm(type));
  });
  // Through cluster's worker: a 'disconnect' listener on process would keep the channel referenced.
  cluster.worker?.once('disconnect', releaseStopSignals);
}

module.exports = { armSignals, releaseStopSignals };
