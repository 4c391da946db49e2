// Retiring workers: a superseded or stopped worker leaves service. A serving one drains — one per
// --retire-stagger interval when staggered, or once the pool keeps its floor without it when it
// must wait for cover — and a booting one is stopped. Below the concerns: rollouts, scale and
// stopping ask for it as an intent (`worker.retire`).
import type { StopReason } from '../../machines/worker.machine.ts';
import { ids, type Draft } from './draft.ts';
import { NONE, type Intent } from './intents.ts';
import { capacityFloor, isBooting, isReady, servingCapacity } from './queries.ts';
import type { WorkerEntry } from './state.ts';
import { STAGGER_TIMER } from './timers.ts';

const STAGGER: Intent = { type: 'retirements.stagger' };
const COVERED: Intent = { type: 'retirements.covered' };

/**
 * Takes a worker out of service: a serving one drains (after its staggered turn, when
 * retirements are staggered), a booting one is stopped.
 */
export function retire(d: Draft, entry: WorkerEntry, reason: StopReason): readonly Intent[] {
  if (isBooting(entry)) return [{ type: 'worker.event', workerId: entry.id, event: { type: 'stop', reason } }];
  if (!isReady(entry)) return NONE;
  const staggered = d.config.retireStaggerMs > 0 && d.s.phase !== 'stopping';
  if (staggered && (d.s.timers[STAGGER_TIMER] || d.s.retiring.length > 0)) {
    d.s.retiring = [...d.s.retiring, entry.id]; // serves on until its turn
    return NONE;
  }
  return staggered ? [drain(d, entry), STAGGER] : [drain(d, entry)];
}

function drain(d: Draft, entry: WorkerEntry): Intent {
  d.log('info', 'ZD_WORKER_DRAINING', `worker ${entry.id} draining`, {
    ...ids(entry),
    pid: entry.machine.context.pid,
    drainTimeoutMs: d.config.drainTimeoutMs,
  });
  return { type: 'worker.event', workerId: entry.id, event: { type: 'drain' } };
}

/** A drain began: the next one waits its turn. */
export function stagger(d: Draft): readonly Intent[] {
  d.startTimer(STAGGER_TIMER, { kind: 'stagger' }, d.config.retireStaggerMs);
  return NONE;
}

/**
 * The stagger interval passed: the next superseded worker starts draining, unless a crash has
 * left the pool short, in which case it keeps serving until capacity is back.
 */
export function nextRetirement(d: Draft): readonly Intent[] {
  const next = d.worker(d.s.retiring[0] ?? null);
  if (!next) return NONE;
  if (servingCapacity(d.s) - 1 >= capacityFloor(d.s)) {
    d.s.retiring = d.s.retiring.slice(1);
    return [drain(d, next), STAGGER];
  }
  return stagger(d);
}

/** Drains a serving worker now if the pool keeps its floor without it; else it waits for cover. */
export function retireWhenCovered(d: Draft, entry: WorkerEntry): readonly Intent[] {
  // Judged by the settings the abort restores: the old generation's worker count.
  const restored = d.s.previousConfig ? { ...d.s, config: d.s.previousConfig } : d.s;
  if (servingCapacity(d.s) - 1 >= capacityFloor(restored)) return [drain(d, entry)];
  if (!d.s.retiring.includes(entry.id)) d.s.retiring = [...d.s.retiring, entry.id];
  return NONE;
}

/**
 * Workers waiting to retire with no stagger timer running wait for cover, not for their turn:
 * the first drains once the pool keeps its floor without it (a respawn became ready, a slot was
 * parked), then the next is looked at. Derived after every step; nothing when none may go.
 */
export function drainCovered(d: Draft): readonly Intent[] {
  if (d.s.retiring.length === 0 || d.s.timers[STAGGER_TIMER]) return NONE;
  const next = d.worker(d.s.retiring[0]!);
  if (next && isReady(next) && servingCapacity(d.s) - 1 < capacityFloor(d.s)) return NONE;
  d.s.retiring = d.s.retiring.slice(1);
  return next && isReady(next) ? [drain(d, next), COVERED] : [COVERED];
}

/** Reaction to a worker that stopped serving, or died: it no longer waits for a turn to drain. */
export function forget(d: Draft, entry: WorkerEntry): readonly Intent[] {
  if (d.s.retiring.includes(entry.id)) d.s.retiring = d.s.retiring.filter((queued) => queued !== entry.id);
  return NONE;
}
