// One reduction's working copy of the primary's state, copied on write (src/reducer-kit/draft.ts):
// the worker list, one worker, the slots, one slot, the timers and the counters are each copied
// the first time this reduction writes to them, through the accessors below.
import type { RolloutEvent } from '../../machines/rollout.machine.ts';
import type { CoreConfig } from './config.ts';
import type { Effect, LogEffect } from './effects.ts';
import type { WorkerId } from './events.ts';
import { Draft as CopyOnWrite } from '../reducer-kit/draft.ts';
import { findWorkerIndex, workerIdOfTimer } from './queries.ts';
import type { PrimaryState, SlotState, StoredSnapshot, TimerOwner, WorkerEntry } from './state.ts';

export interface MachineTransition {
  machine: 'worker' | 'rollout';
  /** Worker id, or the rollout's generation. */
  id: number;
  from: string;
  event: string;
  to: string;
}

export interface Step {
  state: PrimaryState;
  effects: Effect[];
  /** Every machine transition this step took, in order: for inspection and coverage. */
  transitions: MachineTransition[];
}

export class Draft extends CopyOnWrite<PrimaryState, Effect> {
  readonly transitions: MachineTransition[] = [];
  /** Rollout events raised while handling: run in order, so a machine is never re-entered mid-transition. */
  readonly rolloutQueue: RolloutEvent[] = [];

  constructor(base: PrimaryState) {
    super(base, copyState);
  }

  /**
   * Whether this reduction may have changed what reconcile() decides by: a slot, the phase, or
   * the rollout. Most frequent events (samples, heartbeats) change none, and skip it.
   */
  get slotsMayNeedWork(): boolean {
    return this.s.slots !== this.base.slots || this.s.phase !== this.base.phase || this.s.rollout !== this.base.rollout;
  }

  get config(): CoreConfig {
    return this.s.config;
  }

  // -- reads (never copy) -----------------------------------------------------------------------

  worker(id: WorkerId | null): WorkerEntry | undefined {
    if (id === null) return undefined;
    const index = findWorkerIndex(this.s.workers, id);
    return index < 0 ? undefined : this.s.workers[index];
  }

  /** A slot; undefined for one a shrink removed (its workers are on their way out). */
  slot(index: number): SlotState | undefined {
    return this.s.slots[index];
  }

  // -- writes (copy once, then change in place) -------------------------------------------------

  /** The worker, writable. */
  mutWorker(id: WorkerId): WorkerEntry {
    const index = findWorkerIndex(this.s.workers, id);
    if (index < 0) throw new Error(`core: no worker ${id}`);
    const workers = this.workerList();
    const entry = workers[index]!;
    return this.owns(entry) ? entry : (workers[index] = this.made({ ...entry }));
  }

  private workerList(): WorkerEntry[] {
    const workers = this.s.workers;
    return this.owns(workers) ? workers : (this.s.workers = this.made(workers.slice()));
  }

  /** A new worker: ids only grow, so the list stays sorted by id. */
  addWorker(entry: WorkerEntry): void {
    this.workerList().push(this.made(entry));
  }

  removeWorker(id: WorkerId): void {
    const index = findWorkerIndex(this.s.workers, id);
    if (index < 0) return;
    this.workerList().splice(index, 1);
  }

  /** The slot list was replaced by one this reduction made: its new slots are this reduction's too. */
  replacedSlots(fresh = this.s.slots.length): void {
    this.made(this.s.slots);
    for (let index = fresh; index < this.s.slots.length; index++) this.made(this.s.slots[index]!);
  }

  mutSlot(index: number): SlotState {
    const slots = this.owns(this.s.slots) ? this.s.slots : (this.s.slots = this.made(this.s.slots.slice()));
    const slot = slots[index]!;
    return this.owns(slot) ? slot : (slots[index] = this.made({ ...slot }));
  }

  counters(): PrimaryState['counters'] {
    const counters = this.s.counters;
    return this.owns(counters) ? counters : (this.s.counters = this.made({ ...counters }));
  }

  // -- timers -----------------------------------------------------------------------------------
  // A worker's timers (its machine's deadlines, its heartbeat) live in its entry, under ids
  // `w<id>:…`, and go with it; the primary's own (respawn, stagger, shutdown delay) are few.

  timer(timerId: string): TimerOwner | undefined {
    const workerId = workerIdOfTimer(timerId);
    if (workerId === null) return this.s.timers[timerId];
    return this.worker(workerId)?.timers[timerId];
  }

  startTimer(timerId: string, owner: TimerOwner, ms: number): void {
    this.setTimerOwner(timerId, owner);
    this.effects.push({ type: 'timer.start', timerId, ms });
  }

  cancelTimer(timerId: string): void {
    if (!this.timer(timerId)) return;
    this.forgetTimer(timerId);
    this.effects.push({ type: 'timer.cancel', timerId });
  }

  /** A timer fired or was cancelled: it is no longer pending. */
  forgetTimer(timerId: string): void {
    const workerId = workerIdOfTimer(timerId);
    if (workerId === null) {
      this.ownGlobalTimers();
      delete this.s.timers[timerId];
      return;
    }
    const entry = this.mutWorker(workerId);
    const { [timerId]: _gone, ...rest } = entry.timers;
    entry.timers = rest;
  }

  private setTimerOwner(timerId: string, owner: TimerOwner): void {
    const workerId = workerIdOfTimer(timerId);
    if (workerId === null) {
      this.ownGlobalTimers();
      this.s.timers[timerId] = owner;
      return;
    }
    const entry = this.mutWorker(workerId);
    entry.timers = { ...entry.timers, [timerId]: owner };
  }

  private ownGlobalTimers(): void {
    if (!this.owns(this.s.timers)) this.s.timers = this.made({ ...this.s.timers });
  }

  // -- effects ----------------------------------------------------------------------------------

  log(level: LogEffect['level'], code: string, msg: string, fields?: Record<string, unknown>, stderrOf?: WorkerId): void {
    const effect: LogEffect = { type: 'log', level, code, msg };
    if (fields) effect.fields = fields;
    if (stderrOf !== undefined) effect.stderrOf = stderrOf;
    this.effects.push(effect);
  }
}

/**
 * The state's top level, field by field: a spread of an object that has passed through many shapes
 * takes V8's slow path (about 430 ns against 50, a quarter of a frequent event's cost; measured).
 * Typed as the whole state, so a field added to it and not here does not compile.
 */
function copyState(b: PrimaryState): PrimaryState {
  return {
    config: b.config,
    phase: b.phase,
    exitCode: b.exitCode,
    generation: b.generation,
    nextWorkerId: b.nextWorkerId,
    workers: b.workers,
    slots: b.slots,
    rollout: b.rollout,
    canary: b.canary,
    canaryEvidence: b.canaryEvidence,
    lastRollout: b.lastRollout,
    lastReload: b.lastReload,
    reloadQueued: b.reloadQueued,
    queuedRelease: b.queuedRelease,
    queuedConfig: b.queuedConfig,
    previousConfig: b.previousConfig,
    releases: b.releases,
    completed: b.completed,
    replaceQueue: b.replaceQueue,
    retiring: b.retiring,
    draining: b.draining,
    routing: b.routing,
    ports: b.ports,
    timers: b.timers,
    allReadyAnnounced: b.allReadyAnnounced,
    lastBootFailure: b.lastBootFailure,
    counters: b.counters,
  };
}

/** A machine snapshot as the state stores it: plain `{ value, context }`. */
export function persist<T extends { value: unknown; context: unknown }>(snapshot: T): StoredSnapshot<T['context']> {
  return { value: snapshot.value as StoredSnapshot<unknown>['value'], context: snapshot.context };
}

/** The fields every log line about a worker carries. */
export function ids(entry: WorkerEntry) {
  return { workerId: entry.id, slot: entry.slot, generation: entry.generation };
}
