// Read-only questions about the primary's state, shared by the reducer, the invariants and the
// views (status, inspect). Pure.
import { matchesState } from 'xstate';
import { WORKER_OUTCOMES, type WorkerOutcome } from '../../machines/worker.machine.ts';
import type { Release, WorkerId } from './events.ts';
import type { PrimaryState, TimerOwner, WorkerEntry } from './state.ts';

export function matches(entry: WorkerEntry, value: string): boolean {
  return matchesState(value, entry.machine.value);
}

export const isReady = (entry: WorkerEntry): boolean => matches(entry, 'listening');
/** Not counted as ready yet: starting up, or serving out its min-ready period. */
export const isBooting = (entry: WorkerEntry): boolean => matches(entry, 'booting') || matches(entry, 'warming');
export const isDead = (entry: WorkerEntry): boolean => matches(entry, 'dead');
/** Told to go and on its way out: draining, or being stopped or killed. */
export const isLeaving = (entry: WorkerEntry): boolean =>
  ['draining', 'stopping', 'terminating', 'killing'].some((s) => matches(entry, s));

export function outcomeOf(entry: WorkerEntry): WorkerOutcome | null {
  return WORKER_OUTCOMES.find((outcome) => matches(entry, `dead.${outcome}`)) ?? null;
}

/** A dotted name of the worker's current state, e.g. `booting.online`, `dead.crashed`. */
export function stateName(entry: WorkerEntry): string {
  return valueName(entry.machine.value);
}

/** A state value as a dotted name: { booting: 'online' } → `booting.online`. */
export function valueName(value: unknown): string {
  return typeof value === 'string'
    ? value
    : Object.entries(value as Record<string, unknown>)
        .map(([k, v]) => `${k}.${valueName(v)}`)
        .join(',');
}

/** Whether a slot is already on its way to a new worker: in the running rollout, or queued for one. */
export function replacementUnderway(state: PrimaryState, slot: number): boolean {
  const rollout = state.rollout?.context;
  return state.replaceQueue.includes(slot) || rollout?.pending.includes(slot) === true || rollout?.booting.includes(slot) === true;
}

/** Every worker the primary still tracks, by id (the list is kept sorted). */
export function workerList(state: PrimaryState): readonly WorkerEntry[] {
  return state.workers;
}

export function liveWorkers(state: PrimaryState): WorkerEntry[] {
  return state.workers.filter((w) => !isDead(w));
}

export function readyCount(state: PrimaryState): number {
  let count = 0;
  for (const w of state.workers) if (isReady(w)) count += 1;
  return count;
}

/**
 * Ready capacity, as retirements and invariant I1 count it: the ready workers, where a canary on
 * trial and the predecessor it serves beside count once, as the one slot they share (the canary
 * is surge, not capacity).
 */
export function servingCapacity(state: PrimaryState): number {
  const rollout = state.rollout;
  const index = rollout && matchesState('canary', rollout.value) ? rollout.context.canarySlot : null;
  const slot = index === null ? undefined : state.slots[index];
  const canary = getWorker(state, slot?.next ?? null);
  const predecessor = getWorker(state, slot?.worker ?? null);
  return readyCount(state) - (canary && predecessor && isReady(canary) && isReady(predecessor) ? 1 : 0);
}

/**
 * The fewest ready workers a rollout may leave: N − maxUnavailable, where N does not count slots
 * given up to a crash loop (they serve no one until the next reload).
 */
export function capacityFloor(state: PrimaryState): number {
  const parked = state.slots.filter((slot) => slot.parked).length;
  return state.config.workers - parked - state.config.maxUnavailable;
}

export function getWorker(state: PrimaryState, id: WorkerId | null): WorkerEntry | undefined {
  if (id === null) return undefined;
  const index = findWorkerIndex(state.workers, id);
  return index < 0 ? undefined : state.workers[index];
}

/** Where worker `id` is in a list sorted by id (binary search), or -1. */
export function findWorkerIndex(workers: readonly WorkerEntry[], id: WorkerId): number {
  let lo = 0;
  let hi = workers.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = workers[mid]!.id;
    if (at === id) return mid;
    if (at < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** The worker a timer belongs to (`w<id>:…`, `ping:<id>`, `pong:<id>`), or null for the primary's own. */
export function workerIdOfTimer(timerId: string): WorkerId | null {
  const match = /^(?:w|ping:|pong:)(\d+)(?::|$)/.exec(timerId);
  return match ? Number(match[1]) : null;
}

/** Whether a timer is pending, wherever it is kept. */
export function hasTimer(state: PrimaryState, timerId: string): boolean {
  const workerId = workerIdOfTimer(timerId);
  if (workerId === null) return state.timers[timerId] !== undefined;
  return getWorker(state, workerId)?.timers[timerId] !== undefined;
}

/** Every pending timer: the primary's own, then each worker's. */
export function allTimers(state: PrimaryState): Array<[string, TimerOwner]> {
  const all = Object.entries(state.timers);
  for (const worker of state.workers) all.push(...Object.entries(worker.timers));
  return all;
}

/** Why a worker that never became ready ended, in words for a log line. */
export function bootFailureReason(entry: WorkerEntry): string {
  const { stopReason, exit, timeouts, diedWarming, minReadyMs } = entry.machine.context;
  if (diedWarming) {
    const how = exit ? exitDescription(exit) : 'went away (its IPC channel closed)';
    return `${how} within its ${minReadyMs}ms min-ready period`;
  }
  if (stopReason === 'ready-timeout') {
    const missing = missingAddresses(entry);
    // It listens, but not everywhere its predecessors do (a deploy on the wrong port, or a
    // public server that never came up): name both.
    if (missing.length > 0 && entry.addresses.length > 0) {
      return `listens on ${entry.addresses.join(', ')} but not on ${missing.join(', ')}, where the workers it replaces listen, within ${timeouts.readyMs}ms`;
    }
    return `not ready within ${timeouts.readyMs}ms`;
  }
  return exitDescription(exit);
}

/** What `zd rollback` would go back to: the completed generation before the serving one. */
export function rollbackTarget(state: PrimaryState): { generation: number; release: Release } | { refused: string } {
  if (state.phase !== 'running') return { refused: state.phase === 'starting' ? 'no worker is ready yet' : 'zd is shutting down' };
  if (state.rollout !== null) return { refused: `a rollout to generation ${state.rollout.context.generation} is running: wait for it (zd reload --wait), then roll back` };
  const generation = state.completed[state.completed.length - 2];
  const release = generation === undefined ? undefined : state.releases[String(generation)];
  if (generation === undefined || release === undefined) {
    return { refused: `there is no previous generation to go back to (generation ${state.completed.at(-1) ?? state.generation} is the first that served)` };
  }
  return { generation, release };
}

/** The serving generation: the newest to complete a reload (the first, until one does). */
export function servingGeneration(state: PrimaryState): number {
  return state.completed[state.completed.length - 1] ?? 1;
}

/** The release the serving generation runs. */
export function servingRelease(state: PrimaryState): Release {
  return state.releases[String(servingGeneration(state))] ?? state.releases['1']!;
}

/**
 * The worker a slot counts runs code newer than the serving generation's with no reload rolling
 * it out: code of an aborted reload, left by a restore that failed. Its slot must be restored.
 */
export function onAbortedCode(state: PrimaryState, slot: number): WorkerEntry | undefined {
  if (state.rollout?.context.kind === 'reload') return undefined;
  const worker = getWorker(state, state.slots[slot]?.worker ?? null);
  return worker && !isDead(worker) && worker.generation > servingGeneration(state) ? worker : undefined;
}

/**
 * A slot on aborted code that waits, between rollouts, for its restore timer: neither queued for a
 * replacement nor failed more than --max-restarts times.
 */
export function awaitsRestore(state: PrimaryState, slot: number): boolean {
  return (
    state.rollout === null &&
    onAbortedCode(state, slot) !== undefined &&
    !state.replaceQueue.includes(slot) &&
    state.slots[slot]!.failures <= state.config.maxRestarts
  );
}

/** The addresses a booting worker must still listen on before it counts as ready. */
export function missingAddresses(entry: WorkerEntry): string[] {
  if (entry.expects === null) return [];
  return entry.expects.filter((address) => !entry.addresses.includes(address));
}

export function exitDescription(exit: { code: number | null; signal: string | null } | null): string {
  if (!exit) return 'gone without an exit status';
  if (exit.signal) return `killed by ${exit.signal}`;
  if (exit.code === null) return 'could not be started';
  return `exited with code ${exit.code}`;
}
