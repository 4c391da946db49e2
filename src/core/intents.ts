// What the core's layers hand each other, as plain data.
//
// The worker's life (workers.ts) applies the worker machine and reports *facts*: a worker became
// ready, stopped being ready, left the slot that counted on it without being retired, died (with
// an outcome), or became stable. The concerns above it (slots, startup, health, retirements,
// rollouts, scale, stopping) turn events and facts into *intents*: fork a slot's worker, send a
// worker's machine an event, retire a worker, a rollout event, start a reload, replace a slot's
// worker, stop with a code. The coordinator (reduce.ts) runs intents depth first, an intent's own
// before the ones after it, until none is left, and hands each fact to the concerns that react to
// it, one after the other. None of them imports another; they meet here.
//
// A concern that has more to do once some intents have run (a stop, once its rollout has aborted;
// a rollout's end, once the surplus slots are gone) returns its next step as an intent of its own,
// after them.
import type { RolloutContext, RolloutEvent } from '../../machines/rollout.machine.ts';
import type { StopReason, WorkerEvent, WorkerOutcome } from '../../machines/worker.machine.ts';
import type { MachineAction } from '../reducer-kit/machine-actions.ts';
import type { WorkerId } from './events.ts';
import type { WorkerEntry } from './state.ts';

export type Fact =
  | { type: 'ready'; worker: WorkerEntry }
  /** It listens and has begun its min-ready period. */
  | { type: 'warming'; worker: WorkerEntry }
  /** It no longer serves: told to drain, its channel closed, or it died. */
  | { type: 'unready'; worker: WorkerEntry }
  /** The slot that counted on it (as its worker, or its replacement) no longer can: it died, missed a deadline, or failed its trial. */
  | { type: 'left'; worker: WorkerEntry }
  | { type: 'died'; worker: WorkerEntry; outcome: WorkerOutcome }
  /** Up long enough that its slot's crash back-off starts over. */
  | { type: 'stable'; worker: WorkerEntry };

export type Intent =
  /** A fact, for its next reaction (the coordinator's table says which, in order). */
  | { type: 'fact'; fact: Fact; reaction: number }
  /** Start a worker of `generation` for `slot`: as the slot's worker (counted once ready). */
  | { type: 'worker.fork'; slot: number; generation: number; as: 'worker' }
  /** Start a rollout's replacement for `slot`; `warm`: it serves out --min-ready before it counts. */
  | { type: 'worker.fork'; slot: number; generation: number; as: 'next'; warm: boolean }
  | { type: 'worker.event'; workerId: WorkerId; event: WorkerEvent }
  /** Take a worker out of service: a serving one drains (in its staggered turn), a booting one is stopped. */
  | { type: 'worker.retire'; workerId: WorkerId; reason: StopReason }
  /** Drain a serving worker once the pool keeps its floor without it. */
  | { type: 'worker.retireWhenCovered'; workerId: WorkerId }
  /** A drain just began: the next waits the stagger interval. */
  | { type: 'retirements.stagger' }
  /** The next worker waiting for cover drains, if the pool is covered without it. */
  | { type: 'retirements.covered' }
  | { type: 'timer.cancel'; timerId: string }
  | { type: 'rollout.event'; event: RolloutEvent }
  /** Run the next queued rollout event through the rollout machine. */
  | { type: 'rollout.run' }
  /** One action the rollout machine asked for. */
  | { type: 'rollout.action'; generation: number; action: MachineAction }
  /** The rollout machine's actions are done: note a silent canary, end a finished rollout. */
  | { type: 'rollout.stepped'; event: string; context: RolloutContext; ended: 'done' | 'aborted' | null }
  /** A rollout ended and its surplus slots are gone: what comes next. */
  | { type: 'rollout.ended'; context: RolloutContext; done: boolean }
  /** Start the reload that was queued. */
  | { type: 'reload.start' }
  /** This slot's worker must be replaced (memory, heartbeat), the ready-before-drain way. */
  | { type: 'replace'; slot: number }
  /** Stop everything and exit with `code`. */
  | { type: 'stop'; code: number }
  /** A stop, once its rollout has aborted: the slots let go, booting workers stopped. */
  | { type: 'stop.clear'; code: number }
  /** A stop, once the booting workers are told: serve out the shutdown delay, or drain now. */
  | { type: 'stop.drain'; code: number }
  /** Exit, if no worker is left. */
  | { type: 'stop.ifIdle' }
  | { type: 'exit' };

/** Nothing to do (shared: most steps intend nothing). */
export const NONE: readonly Intent[] = Object.freeze([]);

/** The code of the error logged by a step cut short at its bound (invariant I12): the core did not settle. */
export const UNSETTLED = 'ZD_CORE_UNSETTLED';
