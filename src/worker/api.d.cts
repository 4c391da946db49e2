// Types for `zd-runner/worker` (api.cjs). Every call is harmless outside zd (plain `node app.js`).

/** Tells zd this worker is ready (with `zd run --ready message`). */
export declare function ready(): void;

/**
 * Runs `hook` when zd starts draining this worker (before the worker exits): close pools, flush
 * queues, end WebSocket and SSE connections. The worker exits once its servers are closed and
 * every hook has settled, within zd's drain deadline.
 */
export declare function onShutdown(hook: () => unknown): void;

/** Whether zd has begun draining this worker. */
export declare function isDraining(): boolean;
