// @ts-check
// `zd-runner/worker`: what an app may say to zd, if it wants to. An app that never imports this
// still drains without dropping a request; this is for readiness that is not "listening", for closing
// pools and long-lived connections on drain, and for asking whether a drain has begun.
// Outside zd (plain `node app.js`) every call is harmless.
'use strict';

const { shared } = require('./shared.cjs');

let listening = false;

/** Tells zd this worker is ready (with `zd run --ready message`). */
function ready() {
  if (typeof process.send === 'function' && process.connected) process.send({ type: 'zd:ready' });
}

/**
 * Runs `hook` when zd starts draining this worker (before the worker exits): close pools, flush
 * queues, end WebSocket and SSE connections. The worker exits once its servers are closed and
 * every hook has settled, within zd's drain deadline.
 * @param {() => unknown} hook
 */
function onShutdown(hook) {
  shared.hooks.push(hook);
  if (listening || typeof process.send !== 'function') return;
  listening = true;
  // Registered only by apps that opted in: a 'message' listener keeps the IPC channel referenced.
  process.on('message', (message) => {
    if (message && typeof message === 'object' && /** @type {{type?: unknown}} */ (message).type === 'zd:shutdown') {
      shared.onShutdownMessage?.();
    }
  });
}

/** Whether zd has begun draining this worker. */
function isDraining() {
  return shared.draining;
}

module.exports = { ready, onShutdown, isDraining };
