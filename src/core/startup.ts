// Starting: zd runs once its first worker is ready (a reload asked for before that starts then),
// says so once all N are, and stops when no worker could ever get ready.
import type { Draft } from './draft.ts';
import { EXIT } from './exit-codes.ts';
import { NONE, type Intent } from './intents.ts';
import { readyCount } from './queries.ts';
import type { WorkerEntry } from './state.ts';

/** Reaction to a ready worker: the first makes zd run. */
export function onReady(d: Draft, entry: WorkerEntry): readonly Intent[] {
  if (d.s.phase !== 'starting') return NONE;
  d.s.phase = 'running';
  d.s.completed = [entry.generation]; // the first generation serves: what a rollback may return to
  if (!d.s.reloadQueued) return NONE;
  d.s.reloadQueued = false;
  return [{ type: 'reload.start' }];
}

/** Reaction to a ready worker: all N ready, announced once. */
export function onAllReady(d: Draft): readonly Intent[] {
  if (!d.s.allReadyAnnounced && readyCount(d.s) >= d.config.workers) {
    d.s.allReadyAnnounced = true;
    d.log('info', 'ZD_READY', `all ${d.config.workers} worker(s) ready`, { workers: d.config.workers });
  }
  return NONE;
}

/** Derived after a step that may have changed a slot: still starting, and no slot has a worker left to try. */
export function bootFailed(d: Draft): readonly Intent[] {
  if (d.s.phase !== 'starting' || !d.s.slots.every((slot) => slot.worker === null)) return NONE;
  const failure = d.s.lastBootFailure;
  d.log('error', 'ZD_BOOT_FAILED', `no worker became ready: ${failure?.reason ?? 'unknown'}`, { reason: failure?.reason ?? null }, failure?.workerId);
  return [{ type: 'stop', code: EXIT.fatal }];
}
