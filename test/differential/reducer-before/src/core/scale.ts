// The pool's size: slots added or removed, by a reload that changes the worker count or by
// `zd scale`. Growing adds capacity before anything drains; shrinking drains the surplus last, so
// the pool never serves fewer than the smaller of the two counts.
import type { Draft } from './draft.ts';
import { isReady } from './queries.ts';
import { retire } from './rollouts.ts';
import { respawnTimerId } from './timers.ts';
import { fork } from './workers.ts';

/** Adds empty slots up to `n`, for workers of `generation` (a rollout fills them, or `scale`). */
export function growSlots(d: Draft, n: number, generation: number): void {
  if (d.s.slots.length >= n) return;
  const added = Array.from({ length: n - d.s.slots.length }, () => ({ worker: null, next: null, failures: 0, restarts: 0, parked: false, generation }));
  const fresh = d.s.slots.length;
  d.s.slots = [...d.s.slots, ...added];
  d.replacedSlots(fresh);
}

/**
 * Removes the slots from `n` on: their workers drain (or are stopped if not ready yet). A ready
 * worker there first takes the place of a kept slot that has none serving (empty, booting or
 * parked), so that a shrink never drains a worker that serves while keeping one that does not.
 */
export function shrinkSlots(d: Draft, n: number): void {
  if (d.s.slots.length <= n) return;
  for (let index = n; index < d.s.slots.length; index++) {
    const serving = d.worker(d.s.slots[index]!.worker);
    if (!serving || !isReady(serving)) continue;
    const spare = d.s.slots.findIndex((slot, kept) => {
      if (kept >= n || slot.next !== null) return false;
      const worker = d.worker(slot.worker);
      return !worker || !isReady(worker);
    });
    if (spare === -1) break;
    const displaced = d.worker(d.s.slots[spare]!.worker);
    const into = d.mutSlot(spare);
    into.worker = serving.id;
    // A finished reload's slot runs the new code: an older surplus worker moved there covers it
    // (capacity is kept) and is then replaced by the slot's own generation, the ready-first way,
    // so that ZD_RELOAD_DONE never leaves old code serving.
    if (serving.generation < into.generation) {
      if (!d.s.replaceQueue.includes(spare)) d.s.replaceQueue = [...d.s.replaceQueue, spare];
    } else {
      into.generation = serving.generation;
    }
    into.failures = 0;
    into.parked = false;
    d.cancelTimer(respawnTimerId(spare));
    d.mutSlot(index).worker = null;
    d.mutWorker(serving.id).slot = spare;
    if (displaced) retire(d, displaced, 'superseded');
  }
  for (let index = n; index < d.s.slots.length; index++) {
    const { next, worker } = d.s.slots[index]!;
    d.cancelTimer(respawnTimerId(index));
    // Out of its slot first: a planned retirement, not a slot losing its worker.
    const slot = d.mutSlot(index);
    slot.worker = null;
    slot.next = null;
    for (const id of [next, worker]) {
      const entry = d.worker(id);
      if (entry) retire(d, entry, 'superseded');
    }
  }
  d.s.slots = d.s.slots.slice(0, n);
  d.replacedSlots();
  // A replacement queued for a slot that is gone has nothing left to replace.
  if (d.s.replaceQueue.some((slot) => slot >= n)) d.s.replaceQueue = d.s.replaceQueue.filter((slot) => slot < n);
}

/** `zd scale N`: the same generation, more or fewer workers; never during a rollout. */
export function requestScale(d: Draft, workers: number): void {
  const from = d.config.workers;
  const refuse = (why: string) => d.log('warn', 'ZD_SCALE_REFUSED', `scale to ${workers} refused: ${why}`, { workers, reason: why });
  if (d.s.phase !== 'running') return refuse(d.s.phase === 'starting' ? 'no worker is ready yet' : 'zd is shutting down');
  if (d.s.rollout !== null) return refuse(`a rollout to generation ${d.s.rollout.context.generation} is running: scale when it ends (zd reload --wait)`);
  if (!Number.isInteger(workers) || workers < 1) return refuse('the worker count must be a whole number ≥ 1');
  if (workers === from) {
    d.log('info', 'ZD_SCALED', `already ${workers} worker(s)`, { from, workers });
    return;
  }
  d.s.config = { ...d.config, workers };
  d.log('info', 'ZD_SCALED', `scaling from ${from} to ${workers} worker(s)`, { from, workers });
  if (workers < from) {
    shrinkSlots(d, workers);
    return;
  }
  const serving = d.s.completed[d.s.completed.length - 1] ?? d.s.generation;
  const before = d.s.slots.length;
  growSlots(d, workers, serving);
  for (let index = before; index < workers; index++) {
    const id = fork(d, index, serving, false);
    d.mutSlot(index).worker = id;
  }
}
