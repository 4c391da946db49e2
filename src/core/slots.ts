// The slots: each of the N places a worker serves in keeps a worker, or is on its way to one. A
// worker that leaves its slot unplanned (a crash, a failed boot) is counted against it; the slot
// respawns after its back-off, and one that fails too often in a row is parked until the next
// reload. When every slot is parked, zd stops. A slot left on an aborted reload's code (the
// restore that was to replace it failed) is restored again after its back-off, counted the same
// way: one that keeps failing keeps that worker, as a last resort, until the next reload.
import { matchesState } from 'xstate';
import { respawnDelayMs } from './config.ts';
import { ids, type Draft } from './draft.ts';
import { EXIT } from './exit-codes.ts';
import { NONE, type Intent } from './intents.ts';
import { awaitsRestore, bootFailureReason, exitDescription, matches, onAbortedCode, outcomeOf, servingGeneration } from './queries.ts';
import type { WorkerEntry } from './state.ts';
import { respawnTimerId, restoreTimerId } from './timers.ts';

/** Reaction to a worker a slot points at no longer counting, without the reducer retiring it. */
export function onLeft(d: Draft, entry: WorkerEntry): readonly Intent[] {
  const slot = d.mutSlot(entry.slot);
  const { stopReason } = entry.machine.context;
  const neverReady = outcomeOf(entry) === 'bootFailed' || stopReason === 'ready-timeout' || stopReason === 'unstable';
  if (slot.next === entry.id) {
    // A rollout's replacement failed before it was ready, or its canary while on trial.
    slot.next = null;
    noteBootFailure(d, entry);
    restoreFailed(d, entry);
    const reason = matches(entry, 'disconnected') ? 'the canary lost its IPC channel while serving' : bootFailureReason(entry);
    return [{ type: 'rollout.event', event: { type: 'rollout.failed', slot: entry.slot, reason } }];
  }
  slot.worker = null;
  const intents: readonly Intent[] = entry.adopted ? [{ type: 'rollout.event', event: { type: 'rollout.failed', slot: entry.slot, reason: bootFailureReason(entry) } }] : NONE;
  slotLost(d, entry, neverReady);
  return intents;
}

/** The worker that counted for a slot is gone, unplanned. */
function slotLost(d: Draft, entry: WorkerEntry, neverReady: boolean): void {
  if (d.s.phase === 'stopping') return;
  const slot = d.mutSlot(entry.slot);
  slot.failures += 1;
  if (neverReady) noteBootFailure(d, entry);
  if (d.s.phase === 'starting') return; // judged as a whole by startup.ts
  d.counters().crashes += 1;
  if (slot.failures > d.config.maxRestarts) {
    slot.parked = true;
    d.log(
      'error',
      'ZD_CRASH_LOOP',
      `slot ${entry.slot} failed ${slot.failures} times in a row without staying up ${d.config.stableAfterMs}ms: not restarting it until the next reload`,
      { slot: entry.slot, failures: slot.failures },
      entry.id,
    );
    return;
  }
  const restartInMs = slot.next === null ? respawnDelayMs(d.config, slot.failures) : null;
  d.log(
    'warn',
    'ZD_WORKER_CRASHED',
    `worker ${entry.id} ${neverReady ? bootFailureReason(entry) : exitDescription(entry.machine.context.exit)}; ${
      restartInMs === null ? 'its rollout replacement takes over' : `restarting in ${restartInMs}ms`
    }`,
    {
      ...ids(entry),
      pid: entry.machine.context.pid,
      exitCode: entry.machine.context.exit?.code ?? null,
      signal: entry.machine.context.exit?.signal ?? null,
      restartInMs,
      failures: slot.failures,
    },
    entry.id,
  );
}

/**
 * A replacement that was to restore its slot to the serving generation failed: counted against the
 * slot like a crash, so that reconcile retries it after the slot's back-off, and gives up (keeping
 * the worker, which gets connections only when no other is ready) once it fails too often.
 */
function restoreFailed(d: Draft, entry: WorkerEntry): void {
  const stale = onAbortedCode(d.s, entry.slot);
  if (!stale || d.s.phase !== 'running') return;
  const slot = d.mutSlot(entry.slot);
  slot.failures += 1;
  const serving = servingGeneration(d.s);
  const fields = { slot: entry.slot, generation: stale.generation, serving, failures: slot.failures };
  if (slot.failures > d.config.maxRestarts) {
    d.log(
      'error',
      'ZD_RESTORE_FAILED',
      `slot ${entry.slot} keeps worker ${stale.id} of aborted generation ${stale.generation}: generation ${serving} failed to replace it ${slot.failures} times in a row (${bootFailureReason(entry)}); it serves only if no other worker can, until the next reload`,
      fields,
      entry.id,
    );
  } else {
    const retryInMs = respawnDelayMs(d.config, slot.failures);
    d.log('warn', 'ZD_RESTORE_RETRY', `slot ${entry.slot} still runs aborted generation ${stale.generation}: restoring generation ${serving} again in ${retryInMs}ms`, { ...fields, retryInMs }, entry.id);
  }
}

function noteBootFailure(d: Draft, entry: WorkerEntry): void {
  d.s.lastBootFailure = { workerId: entry.id, reason: bootFailureReason(entry) };
}

/** Reaction to a worker up long enough: its slot's back-off starts over. */
export function onStable(d: Draft, entry: WorkerEntry): readonly Intent[] {
  if (d.slot(entry.slot)?.worker === entry.id) d.mutSlot(entry.slot).failures = 0;
  return NONE;
}

/** A slot's back-off is over: its worker again. */
export function respawn(d: Draft, index: number): readonly Intent[] {
  const slot = d.slot(index);
  if (!slot || d.s.phase !== 'running' || slot.worker !== null || slot.next !== null || slot.parked) return NONE;
  // The slot's own generation, never whatever a link points at now: after an aborted rollout the
  // old code respawns. During a reload the new generation's, which the rollout then adopts.
  // Not while a canary is on trial: only the canary runs the new code until its verdict.
  const rollout = d.s.rollout?.context;
  const onTrial = d.s.rollout !== null && matchesState('canary', d.s.rollout.value);
  const generation = rollout && rollout.kind === 'reload' && !onTrial ? rollout.generation : slot.generation;
  const writable = d.mutSlot(index);
  writable.restarts += 1;
  writable.generation = generation;
  return [{ type: 'worker.fork', slot: index, generation, as: 'worker' }];
}

/**
 * Keeps every slot either served, booting, waiting on its back-off timer, or parked; stops zd when
 * every slot is parked. Derived from the state after every step that may have changed a slot, so
 * that no handler has to remember to schedule a respawn.
 */
export function reconcile(d: Draft): readonly Intent[] {
  if (d.s.phase !== 'running') return NONE;
  const { slots } = d.s;
  const rollout = d.s.rollout?.context;
  for (let index = 0; index < slots.length; index++) {
    const slot = slots[index]!;
    const timerId = respawnTimerId(index);
    // A slot a growing reload added waits for its turn in the rollout, which fills it.
    const awaitsRollout = rollout !== undefined && slot.generation === rollout.generation && rollout.pending.includes(index);
    if (slot.worker !== null || slot.next !== null || slot.parked || awaitsRollout) {
      if (d.s.timers[timerId]) d.cancelTimer(timerId);
      continue;
    }
    if (d.s.timers[timerId]) continue;
    d.startTimer(timerId, { kind: 'respawn', slot: index }, respawnDelayMs(d.config, Math.max(1, slot.failures)));
  }
  restoreAborted(d);
  if (d.s.rollout === null && slots.every((slot) => slot.parked)) {
    d.log('error', 'ZD_CRASH_LOOP', 'every worker slot is in a crash loop: stopping', { slots: slots.length });
    return [{ type: 'stop', code: EXIT.fatal }];
  }
  return NONE;
}

/**
 * Keeps every slot on an aborted reload's code on its way back to the serving generation: queued
 * for a replacement, in the running one, or waiting on its restore timer; unless it failed too
 * often. Only between rollouts: a reload replaces every slot anyway, and a replacement's end
 * brings reconcile back here.
 */
function restoreAborted(d: Draft): void {
  d.s.slots.forEach((slot, index) => {
    const timerId = restoreTimerId(index);
    const due = awaitsRestore(d.s, index);
    if (due && !d.s.timers[timerId]) d.startTimer(timerId, { kind: 'restore', slot: index }, respawnDelayMs(d.config, Math.max(1, slot.failures)));
    else if (!due && d.s.timers[timerId]) d.cancelTimer(timerId);
  });
}

/** A restore timer fired: whether its slot still runs aborted code, to be replaced now. */
export function restoreDue(d: Draft, index: number): boolean {
  return d.s.phase === 'running' && onAbortedCode(d.s, index) !== undefined;
}
