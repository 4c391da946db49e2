// The pool's size: slots added or removed, by a reload that changes the worker count or by
// `zd scale`. Growing adds capacity before anything drains; shrinking drains the surplus last, so
// the pool never serves fewer than the smaller of the two counts. Below the concerns: rollouts and
// scale both resize the pool.
import type { Draft } from './draft.ts';
import { NONE, type Intent } from './intents.ts';
import { isReady } from './queries.ts';
import { respawnTimerId, restoreTimerId } from './timers.ts';

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
export function shrinkSlots(d: Draft, n: number): readonly Intent[] {
  if (d.s.slots.length <= n) return NONE;
  const intents: Intent[] = [];
  const cancelRespawn = (index: number) => {
    for (const timerId of [respawnTimerId(index), restoreTimerId(index)]) if (d.s.timers[timerId]) intents.push({ type: 'timer.cancel', timerId });
  };
  const retire = (id: number | null) => {
    if (d.worker(id)) intents.push({ type: 'worker.retire', workerId: id!, reason: 'superseded' });
  };
  for (let index = n; index < d.s.slots.length; index++) {
    const serving = d.worker(d.s.slots[index]!.worker);
    if (!serving || !isReady(serving)) continue;
    const spare = d.s.slots.findIndex((slot, kept) => {
      if (kept >= n || slot.next !== null) return false;
      const worker = d.worker(slot.worker);
      return !worker || !isReady(worker);
    });
    if (spare === -1) break;
    const displaced = d.s.slots[spare]!.worker;
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
    cancelRespawn(spare);
    d.mutSlot(index).worker = null;
    d.mutWorker(serving.id).slot = spare;
    retire(displaced);
  }
  for (let index = n; index < d.s.slots.length; index++) {
    const { next, worker } = d.s.slots[index]!;
    cancelRespawn(index);
    // Out of its slot first: a planned retirement, not a slot losing its worker.
    const slot = d.mutSlot(index);
    slot.worker = null;
    slot.next = null;
    retire(next);
    retire(worker);
  }
  d.s.slots = d.s.slots.slice(0, n);
  d.replacedSlots();
  // A replacement queued for a slot that is gone has nothing left to replace.
  if (d.s.replaceQueue.some((slot) => slot >= n)) d.s.replaceQueue = d.s.replaceQueue.filter((slot) => slot < n);
  return intents;
}
