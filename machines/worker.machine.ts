// One worker process's life, from fork to a final outcome.
//
// Every wait carries its deadline as an `after` transition, so a worker can never be stuck: booting
// ends in `listening` or is stopped at the ready deadline; draining escalates to SIGTERM, then
// SIGKILL; a process that outlives SIGKILL's deadline is given up as `lost`.
//
// A rollout's replacement may have to stay up a while before it counts (`warming`, Kubernetes'
// minReadySeconds): it serves beside its predecessor, and dying then is a failed boot, not a crash.
// Once another replacement of its generation has served out the period (`proven`), it need not:
// a warming one counts at once, a booting one will when it listens.
//
// How a worker ended is a state, not a flag: `dead.exited` (planned and clean), `dead.killed`
// (planned, forced at a deadline), `dead.crashed` (died while serving), `dead.bootFailed` (never
// became ready) and `dead.lost`. The primary decides respawns and rollout aborts from those states.
//
// The machine runs nothing: its actions are names with params that the primary's reducer turns
// into effects, and its delays come back from xstate's pure `transition()` as `xstate.raise`
// actions with a `delay`, which the runtime schedules as timers.
import { and, assign, setup } from 'xstate';

/** What makes a worker ready: its `listening`, or an explicit IPC `'ready'` message. */
export type ReadyOn = 'listening' | 'message';

export interface WorkerInput {
  id: number;
  slot: number;
  generation: number;
  readyOn: ReadyOn;
  /** How long it must stay up once listening before it counts as ready (0: at once). */
  minReadyMs: number;
  timeouts: { readyMs: number; drainMs: number; killMs: number; stableMs: number };
}

/** Why a worker was told to stop before it ever served. */
export type StopReason = 'ready-timeout' | 'unstable' | 'aborted' | 'shutdown' | 'superseded';

export interface WorkerContext extends WorkerInput {
  pid: number | null;
  /** Whether the IPC channel is still open: nothing is sent or disconnected once it is not. */
  connected: boolean;
  stopReason: StopReason | null;
  /** It died, or lost its channel, within its min-ready period. */
  diedWarming: boolean;
  exit: { code: number | null; signal: string | null } | null;
}

export type WorkerEvent =
  | { type: 'worker.forked'; pid: number }
  | { type: 'worker.online' }
  | { type: 'worker.listening' }
  | { type: 'worker.ready' }
  | { type: 'worker.disconnect' }
  | { type: 'worker.exit'; code: number | null; signal: string | null }
  /** Retire a ready worker: drain it (the rollout's replacement is ready, or zd is stopping). */
  | { type: 'drain' }
  /** Stop a worker that is not serving yet. */
  | { type: 'stop'; reason: StopReason }
  /** Its generation is proven (another replacement served out --min-ready): no period left to serve. */
  | { type: 'proven' }
  /**
   * Forced shutdown: SIGKILL now. Only workers already leaving receive it: the first stop signal
   * drains or stops every worker before a second one can force.
   */
  | { type: 'kill' };

/** The effects a worker machine can ask for, and what it decides by. */
const base = setup({
  types: {
    input: {} as WorkerInput,
    context: {} as WorkerContext,
    events: {} as WorkerEvent,
  },
  actions: {
    // Named effects; the reducer maps each to a runtime effect addressed to this worker.
    sendShutdown: () => {},
    disconnect: () => {},
    kill: (_, _params: { signal: 'SIGTERM' | 'SIGKILL' }) => {},
  },
  guards: {
    // Readiness travels over the IPC channel: with the channel gone, a worker can never serve.
    readyOnListening: ({ context }) => context.readyOn === 'listening' && context.connected,
    readyOnMessage: ({ context }) => context.readyOn === 'message' && context.connected,
    mustWarm: ({ context }) => context.minReadyMs > 0,
    // Stopped because it could not serve (missed its deadline, or its min-ready period): a failed boot.
    bootFailed: ({ context }) => context.stopReason === 'ready-timeout' || context.stopReason === 'unstable',
  },
  delays: {
    readyTimeout: ({ context }) => context.timeouts.readyMs,
    drainTimeout: ({ context }) => context.timeouts.drainMs,
    killTimeout: ({ context }) => context.timeouts.killMs,
    stableAfter: ({ context }) => context.timeouts.stableMs,
    minReady: ({ context }) => context.minReadyMs,
  },
});

export const workerMachine = base
  .extend({
    actions: {
      recordExit: base.assign({
        exit: ({ event }) =>
          event.type === 'worker.exit' ? { code: event.code, signal: event.signal } : null,
        connected: false,
      }),
      beginDrain: base.enqueueActions(({ context, enqueue }) => {
        // A worker whose channel already closed cannot be told anything: the deadlines still apply.
        if (!context.connected) return;
        enqueue('sendShutdown');
        enqueue('disconnect');
        enqueue.assign({ connected: false });
      }),
    },
  })
  .createMachine({
  id: 'worker',
  context: ({ input }) => ({
    ...input,
    pid: null,
    connected: true,
    stopReason: null,
    diedWarming: false,
    exit: null,
  }),
  initial: 'booting',
  on: {
    'worker.forked': { actions: assign({ pid: ({ event }) => event.pid }) },
    'worker.disconnect': { actions: base.assign({ connected: false }) },
  },
  states: {
    booting: {
      initial: 'forking',
      after: {
        readyTimeout: {
          target: 'stopping',
          actions: base.assign({ stopReason: 'ready-timeout' as const }),
        },
      },
      on: {
        'worker.listening': [
          { guard: and(['readyOnListening', 'mustWarm']), target: 'warming' },
          { guard: 'readyOnListening', target: 'listening' },
        ],
        'worker.ready': [
          { guard: and(['readyOnMessage', 'mustWarm']), target: 'warming' },
          { guard: 'readyOnMessage', target: 'listening' },
        ],
        'worker.exit': { target: 'dead.bootFailed', actions: 'recordExit' },
        stop: {
          target: 'stopping',
          actions: assign({ stopReason: ({ event }) => event.reason }),
        },
        proven: { actions: base.assign({ minReadyMs: 0 }) },
      },
      states: {
        forking: { on: { 'worker.online': 'online' } },
        online: {},
      },
    },
    // Serving beside its predecessor, not counted yet: it must stay up for minReadyMs.
    warming: {
      after: { minReady: 'listening' },
      on: {
        'worker.exit': { target: 'dead.bootFailed', actions: [base.assign({ diedWarming: true }), 'recordExit'] },
        'worker.disconnect': {
          target: 'stopping',
          actions: base.assign({ connected: false, diedWarming: true, stopReason: 'unstable' as const }),
        },
        stop: {
          target: 'stopping',
          actions: assign({ stopReason: ({ event }) => event.reason }),
        },
        proven: { target: 'listening', actions: base.assign({ minReadyMs: 0 }) },
      },
    },
    listening: {
      initial: 'fresh',
      on: {
        drain: 'draining',
        'worker.exit': { target: 'dead.crashed', actions: 'recordExit' },
        'worker.disconnect': { target: 'disconnected', actions: assign({ connected: false }) },
      },
      states: {
        // Stability resets the slot's crash backoff (a crash after 30 s up is not a crash loop).
        fresh: { after: { stableAfter: 'stable' } },
        stable: {},
      },
    },
    // Its channel closed while it served (the app called process.disconnect(), or it is dying):
    // cluster no longer routes to it. Replaced when it exits, never before (the seed runner's
    // respawn-on-disconnect ran N+1 workers); a process that lingers gets the drain deadline.
    disconnected: {
      after: { drainTimeout: 'terminating' },
      on: {
        'worker.exit': { target: 'dead.crashed', actions: 'recordExit' },
        kill: 'killing',
      },
    },
    draining: {
      entry: 'beginDrain',
      after: { drainTimeout: 'terminating' },
      on: {
        'worker.exit': { target: 'dead.exited', actions: 'recordExit' },
        kill: 'killing',
      },
    },
    // Told to stop before it was ready. It may already be in cluster's round robin (its listen()
    // reached the primary before 'listening' reached zd), so it gets the same escalation as a
    // draining worker: disconnected first, a connection already handed to it still answered,
    // SIGTERM only at the drain deadline.
    stopping: {
      entry: 'beginDrain',
      after: { drainTimeout: 'terminating' },
      on: {
        'worker.exit': [
          { guard: 'bootFailed', target: 'dead.bootFailed', actions: 'recordExit' },
          { target: 'dead.exited', actions: 'recordExit' },
        ],
        kill: 'killing',
      },
    },
    terminating: {
      entry: { type: 'kill', params: { signal: 'SIGTERM' } },
      after: { killTimeout: 'killing' },
      on: {
        'worker.exit': [
          { guard: 'bootFailed', target: 'dead.bootFailed', actions: 'recordExit' },
          { target: 'dead.killed', actions: 'recordExit' },
        ],
        kill: 'killing',
      },
    },
    killing: {
      entry: { type: 'kill', params: { signal: 'SIGKILL' } },
      // SIGKILL cannot be refused; a process still not reaped after this is stuck in the kernel.
      after: { killTimeout: 'dead.lost' },
      on: {
        'worker.exit': [
          { guard: 'bootFailed', target: 'dead.bootFailed', actions: 'recordExit' },
          { target: 'dead.killed', actions: 'recordExit' },
        ],
      },
    },
    dead: {
      // Every transition here names its outcome; xstate still wants a default child.
      initial: 'exited',
      // Terminal: these shadow the root-level handlers, so late news never changes a dead worker.
      on: { 'worker.forked': {}, 'worker.disconnect': {} },
      states: {
        exited: { type: 'final' },
        killed: { type: 'final' },
        crashed: { type: 'final' },
        bootFailed: { type: 'final' },
        lost: { type: 'final' },
      },
    },
  },
});

export type WorkerMachine = typeof workerMachine;

/** Final outcomes, in the order the docs list them. */
export const WORKER_OUTCOMES = ['exited', 'killed', 'crashed', 'bootFailed', 'lost'] as const;
export type WorkerOutcome = (typeof WORKER_OUTCOMES)[number];
