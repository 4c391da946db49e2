// @ts-check
// State shared by the bootstrap zd preloads and the `zd-runner/worker` API an app may import, kept
// on a global symbol: the app can load its own copy of the API from its node_modules.
'use strict';

/**
 * @typedef {object} WorkerShared
 * @property {boolean} draining
 * @property {Array<() => unknown>} hooks
 * @property {Promise<void>} hooksDone
 * @property {(() => void) | null} onShutdownMessage
 */

const KEY = Symbol.for('zd.worker');
const g = /** @type {Record<symbol, WorkerShared | undefined>} */ (/** @type {unknown} */ (globalThis));

/** @type {WorkerShared} */
const shared = (g[KEY] ??= {
  draining: false,
  hooks: [],
  hooksDone: Promise.resolve(),
  onShutdownMessage: null,
});

module.exports = { shared };
