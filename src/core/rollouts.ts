// Rollouts: reloads (every slot to a new generation) and replacements (one slot's worker, same
// code), both by the rollout machine's ready-before-drain procedure (a reload's canary is judged
// in canary-judging.ts).
// What the machine asks for becomes intents (fork a replacement, retire the worker it supersedes);
// the retiring itself is retirements.ts's, the pool's size pool.ts's.
import { initialTransition, transition } from 'xstate';
import { rolloutMachine, type RolloutContext, type RolloutEvent } from '../../machines/rollout.machine.ts';
import { machineAction, type ActionHandlers, type MachineAction } from '../reducer-kit/machine-actions.ts';
import { noteSilentCanary } from './canary-judging.ts';
import type { CoreConfig } from './config.ts';
import { persist, type Draft } from './draft.ts';
import type { Release, ReleaseProblem } from './events.ts';
import { NONE, type Intent } from './intents.ts';
import { growSlots, shrinkSlots } from './pool.ts';
import { capacityFloor, isBooting, isDead, isReady, replacementUnderway, rollbackTarget, servingCapacity, servingGeneration, servingRelease, valueName } from './queries.ts';
import type { WorkerEntry } from './state.ts';
import { respawnTimerId } from './timers.ts';

const RUN: Intent = { type: 'rollout.run' };

/**
 * A reload asked for by a signal or `zd reload`, with the release the shell resolved for it (none:
 * the serving generation's, as when files are edited in place).
 */
export function requestReload(d: Draft, source: string, asked?: Release | ReleaseProblem, config?: CoreConfig): readonly Intent[] {
  const counters = d.counters();
  counters.reloadsRequested += 1;
  if (d.s.phase === 'stopping') {
    counters.reloadsRefused += 1;
    d.log('warn', 'ZD_RELOAD_REFUSED', `reload (${source}) refused: zd is shutting down`, { source });
    return NONE;
  }
  if (asked && 'problem' in asked) {
    counters.reloadsRefused += 1;
    d.log('error', 'ZD_RELOAD_REFUSED', `reload (${source}) refused: ${asked.problem}${asked.problem.includes('\n') ? '\n' : '; '}the running generation serves on`, {
      source,
      reason: asked.problem,
      // What was asked for cannot run (a bad config or env file, a broken link): not a state of zd's.
      invalid: true,
    });
    return NONE;
  }
  const release = asked ?? null;
  if (d.s.phase === 'starting' || d.s.rollout !== null) {
    const why = d.s.phase === 'starting' ? 'no worker is ready yet' : 'a rollout is running';
    if (d.s.reloadQueued) {
      counters.reloadsCoalesced += 1;
      d.log('info', 'ZD_RELOAD_QUEUED', `reload (${source}) coalesced into the one already queued (${why})`, {
        source,
        coalesced: true,
      });
      // The newest ask wins.
      if (release) d.s.queuedRelease = release;
      if (config) d.s.queuedConfig = config;
    } else {
      d.s.reloadQueued = true;
      d.s.queuedRelease = release;
      d.s.queuedConfig = config ?? null;
      d.log('info', 'ZD_RELOAD_QUEUED', `reload (${source}) queued: it runs when the current one ends (${why})`, {
        source,
        coalesced: false,
      });
    }
    return NONE;
  }
  startReload(d, { release, config: config ?? null });
  return NONE;
}

/** `zd rollback`: a reload back to the previous completed generation's release; never queued. */
export function requestRollback(d: Draft): readonly Intent[] {
  const counters = d.counters();
  counters.reloadsRequested += 1;
  const target = rollbackTarget(d.s);
  if ('refused' in target) {
    counters.reloadsRefused += 1;
    d.log('warn', 'ZD_ROLLBACK_REFUSED', `rollback refused: ${target.refused}`, { reason: target.refused });
    return NONE;
  }
  startReload(d, { release: target.release, config: null, rollbackOf: target.generation });
  return NONE;
}

interface ReloadAsk {
  release: Release | null;
  config: CoreConfig | null;
  rollbackOf?: number;
}

/**
 * A rolling restart of every slot to a new generation, pinned to its release, with the settings
 * it was asked with: a changed worker count is part of it (new slots boot first and are filled
 * before anything drains; surplus slots drain last, once the rollout is done).
 */
export function startReload(d: Draft, ask: ReloadAsk = { release: d.s.queuedRelease, config: d.s.queuedConfig }): void {
  const generation = ++d.s.generation;
  const was = servingRelease(d.s);
  const release = ask.release ?? was;
  const rollbackOf = ask.rollbackOf ?? null;
  d.s.queuedRelease = null;
  d.s.queuedConfig = null;
  d.s.releases = { ...d.s.releases, [generation]: release };
  d.counters().rolloutsStarted += 1;
  d.s.replaceQueue = []; // the reload replaces every slot anyway
  const changed = ask.config ? configChanges(d.config, ask.config) : [];
  if (ask.config && changed.length > 0) {
    d.s.previousConfig = d.config;
    d.s.config = ask.config;
  }
  const before = d.s.slots.length;
  growSlots(d, d.config.workers, generation);
  const moved = release.cwd !== was.cwd || release.app !== was.app;
  const what = rollbackOf !== null ? `rolling back to generation ${rollbackOf}'s release` : 'rolling restart';
  const notes = [moved ? `release ${release.cwd} (was ${was.cwd})` : null, changed.length > 0 ? `settings: ${changed.join(', ')}` : null].filter(Boolean);
  d.log('info', 'ZD_RELOAD_STARTED', `${what} to generation ${generation}${notes.length > 0 ? `: ${notes.join('; ')}` : ''}`, {
    generation,
    workers: d.config.workers,
    release: release.cwd,
    app: release.app,
    ...(moved ? { previousRelease: was.cwd } : {}),
    ...(rollbackOf !== null ? { rollbackOf } : {}),
    ...(changed.length > 0 ? { changed } : {}),
  });
  // New slots first (capacity grows before anything drains); slots beyond the new count are
  // not replaced: they serve on and drain last. A canary goes first in a slot that serves now, so
  // that it is compared beside its predecessor, and a failed one gives back no capacity.
  const fresh = range(before, d.s.slots.length);
  const kept = range(0, Math.min(before, d.config.workers));
  const slots = d.config.canaryMs > 0 && kept.length > 0 ? [kept[0]!, ...fresh, ...kept.slice(1)] : [...fresh, ...kept];
  startRollout(d, 'reload', generation, slots, d.config.maxSurge, d.config.maxUnavailable, d.config.canaryMs);
  d.s.canaryEvidence = null;
  if (d.config.canaryMs > 0) {
    d.log('info', 'ZD_CANARY_STARTED', `generation ${generation} starts with a canary: its first worker serves beside the old ones for ${d.config.canaryMs}ms, then is compared with them`, {
      generation,
      canaryMs: d.config.canaryMs,
    });
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** The settings a reload changes, as `name old→new`, for the log line. */
function configChanges(from: CoreConfig, to: CoreConfig): string[] {
  return (Object.keys(to) as Array<keyof CoreConfig>).filter((key) => from[key] !== to[key]).map((key) => `${key} ${from[key]}→${to[key]}`);
}

/** Replaces some slots' workers with the same code, one at a time, each ready before its predecessor drains. */
function startReplacement(d: Draft, slots: number[]): void {
  d.counters().replacementsStarted += 1;
  d.log('info', 'ZD_REPLACE_STARTED', `replacing the worker of slot ${slots.join(', ')}`, { slots });
  startRollout(d, 'replace', d.s.generation, slots, 1, 0);
}

function startRollout(d: Draft, kind: 'reload' | 'replace', generation: number, slots: number[], surge: number, unavailable: number, canaryMs = 0): void {
  const [initial] = initialTransition(rolloutMachine, { generation, slots, surge, unavailable, kind, canaryMs, canaryInconclusive: d.config.canaryInconclusive });
  d.s.rollout = persist(initial);
  d.rolloutQueue.push({ type: 'rollout.start' });
}

/** Memory or heartbeat: this slot's worker must go, by the ready-before-drain path. */
export function requestReplace(d: Draft, slot: number): readonly Intent[] {
  if (d.s.phase !== 'running') return NONE;
  if (d.s.rollout) {
    if (!replacementUnderway(d.s, slot)) d.s.replaceQueue = [...d.s.replaceQueue, slot];
    return NONE;
  }
  startReplacement(d, [slot]);
  return NONE;
}

/**
 * Runs the next queued rollout event through the rollout machine. Its actions follow as intents,
 * each carried out before the next is looked at, then what ends the step, then the next event.
 */
export function runNext(d: Draft): readonly Intent[] {
  const event = d.rolloutQueue.shift();
  if (event === undefined) return NONE;
  if (d.s.rollout === null) return [RUN]; // it ended; late news of its workers
  const from = d.s.rollout.value;
  const [next, actions] = transition(rolloutMachine, rolloutMachine.resolveState(d.s.rollout), event);
  d.s.rollout = persist(next);
  d.transitions.push({
    machine: 'rollout',
    id: next.context.generation,
    from: valueName(from),
    event: event.type,
    to: valueName(next.value),
  });
  const generation = next.context.generation;
  const intents: Intent[] = actions.map((action): Intent => ({ type: 'rollout.action', generation, action }));
  const ended = next.status !== 'done' ? null : next.value === 'done' ? 'done' : 'aborted';
  intents.push({ type: 'rollout.stepped', event: event.type, context: next.context, ended }, RUN);
  return intents;
}

/** One action the rollout machine asked for. */
export function act(d: Draft, generation: number, action: MachineAction): readonly Intent[] {
  return machineAction(action, ROLLOUT_ACTIONS, { d, generation }) ?? NONE;
}

/** The machine's actions are carried out: a canary judged on no figures is noted, a rollout that finished ends. */
export function stepped(d: Draft, event: string, context: RolloutContext, ended: 'done' | 'aborted' | null): readonly Intent[] {
  if (event.startsWith('xstate.after.canaryJudge')) noteSilentCanary(d, context);
  return ended === null ? NONE : endRollout(d, context, ended === 'done');
}

const ROLLOUT_ACTIONS: ActionHandlers<{ d: Draft; generation: number }, readonly Intent[]> = {
  named: {
    replace: ({ d }, params) => replaceSlot(d, params.slot as number, params.retireFirst === true, params.warm === true),
    retire: ({ d }, params) => retireSlot(d, params.slot as number),
    release: ({ d }, params) => releaseReplacement(d, params.slot as number),
    stopReplacement: ({ d }, params) => stopReplacement(d, params.slot as number),
    measureStart: ({ d }) => {
      d.effects.push({ type: 'measure.start', workerIds: servingIds(d) });
      return NONE;
    },
    measureCollect: ({ d, generation }) => {
      d.effects.push({ type: 'measure.collect', workerIds: servingIds(d), requestId: generation });
      return NONE;
    },
  },
  // The canary's window and the wait for its figures: named by generation, so a late firing is known.
  delayed: ({ d, generation }, { id, event, delay }) => {
    d.startTimer(`rollout:${generation}:${id}`, { kind: 'rollout', generation, event }, delay);
    return NONE;
  },
  cancelled: ({ d, generation }, id) => {
    d.cancelTimer(`rollout:${generation}:${id}`);
    return NONE;
  },
};

/**
 * Reaction to a ready worker: a replacement (or a worker the rollout adopted) is ready for its slot.
 * A replacement that had a min-ready period to serve has served it out: that proves its generation.
 */
export function onReady(d: Draft, entry: WorkerEntry): readonly Intent[] {
  const slot = d.slot(entry.slot);
  if (slot && slot.next === entry.id) {
    d.rolloutQueue.push({ type: 'rollout.ready', slot: entry.slot, warmed: entry.machine.context.minReadyMs > 0 });
  } else if (slot && slot.worker === entry.id && entry.adopted) {
    d.rolloutQueue.push({ type: 'rollout.ready', slot: entry.slot });
  }
  return NONE;
}

/** Reaction to a worker that listens and serves out --min-ready: a replacement's leaves room for the next boot. */
export function onWarming(d: Draft, entry: WorkerEntry): readonly Intent[] {
  const slot = d.slot(entry.slot);
  if (slot && slot.next === entry.id) d.rolloutQueue.push({ type: 'rollout.warming', slot: entry.slot });
  return NONE;
}

/** The generation is proven: the slot's replacement, booting or warming, counts once it is ready. */
function releaseReplacement(d: Draft, index: number): readonly Intent[] {
  const entry = d.worker(d.slot(index)!.next);
  return entry && isBooting(entry) ? [{ type: 'worker.event', workerId: entry.id, event: { type: 'proven' } }] : NONE;
}

/** Every worker serving now: the old generation's and the canary. */
function servingIds(d: Draft): number[] {
  return d.s.workers.filter(isReady).map((w) => w.id);
}

/** A rollout machine's delay fired: its event, if that rollout still runs. */
export function rolloutTimer(d: Draft, generation: number, event: { type: string }): void {
  if (d.s.rollout?.context.generation !== generation) return;
  d.rolloutQueue.push(event as RolloutEvent);
}

function replaceSlot(d: Draft, index: number, retireFirst: boolean, warm: boolean): readonly Intent[] {
  const { generation, kind } = d.s.rollout!.context;
  const current = d.worker(d.slot(index)!.worker);
  if (kind === 'reload' && current && current.generation === generation && !isDead(current)) {
    // Already running the new code (a crash respawn during this rollout): adopt it.
    if (isReady(current)) d.rolloutQueue.push({ type: 'rollout.ready', slot: index });
    else d.mutWorker(current.id).adopted = true;
    return NONE;
  }
  d.cancelTimer(respawnTimerId(index));
  // A replacement (memory, heartbeat) runs the code its slot runs; a reload's, its new generation.
  const fork: Intent = { type: 'worker.fork', slot: index, generation: kind === 'replace' ? d.slot(index)!.generation : generation, as: 'next', warm };
  // maxUnavailable: the old worker may go first, if the pool keeps its floor without it.
  if (retireFirst && current && isReady(current) && servingCapacity(d.s) - 1 >= capacityFloor(d.s)) {
    d.mutSlot(index).worker = null;
    return [{ type: 'worker.retire', workerId: current.id, reason: 'superseded' }, fork];
  }
  return [fork];
}

function retireSlot(d: Draft, index: number): readonly Intent[] {
  const current = d.slot(index)!.worker;
  if (d.worker(current)) d.mutWorker(current!).adopted = false;
  if (d.slot(index)!.next === null) return NONE; // an adopted worker: nothing older to retire
  const old = d.worker(current);
  const slot = d.mutSlot(index);
  slot.worker = slot.next;
  slot.generation = d.worker(slot.next)?.generation ?? slot.generation;
  slot.next = null;
  slot.failures = 0;
  slot.parked = false;
  return old ? [{ type: 'worker.retire', workerId: old.id, reason: 'superseded' }] : NONE;
}

function stopReplacement(d: Draft, index: number): readonly Intent[] {
  const replacement = d.slot(index)!.next;
  d.mutSlot(index).next = null;
  const adopted = d.slot(index)!.worker;
  if (d.worker(adopted)) d.mutWorker(adopted!).adopted = false;
  const entry = d.worker(replacement);
  // A canary already serves: it drains like any serving worker (once the pool is covered without
  // it: its predecessor may have crashed meanwhile); anything else is stopped.
  if (entry && isReady(entry)) {
    const slot = d.slot(index)!;
    if (slot.parked && !d.worker(slot.worker)) {
      // Its predecessor crash-looped and left the slot parked: nothing would ever cover the canary,
      // and draining it would leave the slot serving no one. It serves on in the slot, on code the
      // slot does not run, so the restore after the abort (restoreSlots) replaces it with the
      // serving generation, ready first.
      const s = d.mutSlot(index);
      s.worker = entry.id;
      s.parked = false;
      s.failures = 0;
      return NONE;
    }
    return [{ type: 'worker.retireWhenCovered', workerId: entry.id }];
  }
  if (entry) return [{ type: 'worker.event', workerId: entry.id, event: { type: 'stop', reason: 'aborted' } }];
  return NONE;
}

/** Completed generations remembered (the serving one, and what a rollback returns to). */
const KEEP_COMPLETED = 5;

/** Forgets the releases no worker runs and no rollback can return to. */
function pruneReleases(d: Draft): void {
  const keep = new Set<number>([d.s.generation, ...d.s.completed]);
  for (const w of d.s.workers) keep.add(w.generation);
  for (const slot of d.s.slots) keep.add(slot.generation);
  const releases: Record<string, Release> = {};
  for (const [generation, release] of Object.entries(d.s.releases)) if (keep.has(Number(generation))) releases[generation] = release;
  d.s.releases = releases;
}

/**
 * A reload aborted after some slots had taken its new generation (a canary that passed, then a
 * replacement that failed): the aborted generation gets no new connection (routing.ts), so those
 * slots go back to the serving generation's code, replaced the ready-first way, and the old
 * generation is back at full capacity.
 */
function restoreSlots(d: Draft): void {
  // Every aborted generation, not only this one: a reload queued behind an aborted one may have
  // started, and aborted too, before the first one's slots were restored.
  const serving = servingGeneration(d.s);
  d.s.slots.forEach((slot, index) => {
    if (slot.generation > serving) d.mutSlot(index).generation = serving;
    const worker = d.worker(slot.worker);
    if (worker && worker.generation > serving && !d.s.replaceQueue.includes(index)) d.s.replaceQueue = [...d.s.replaceQueue, index];
  });
}

/** A rollout finished or aborted: it is recorded, and the slots beyond the count now in force go. */
function endRollout(d: Draft, context: RolloutContext, done: boolean): readonly Intent[] {
  d.s.rollout = null;
  const reason = context.failure?.reason ?? null;
  const { generation, kind } = context;
  d.s.lastRollout = { generation, outcome: done ? 'done' : 'aborted', reason, kind };
  const ended: Intent = { type: 'rollout.ended', context, done };
  if (kind !== 'reload') return [ended];
  d.s.lastReload = d.s.lastRollout;
  if (done) {
    d.s.completed = [...d.s.completed, generation].slice(-KEEP_COMPLETED);
  } else if (d.s.previousConfig) {
    d.s.config = d.s.previousConfig; // the old generation serves on, as it was configured
  }
  d.s.previousConfig = null;
  // Slots beyond the count now in force: the surplus old workers (a shrink, done) or the
  // added ones (a growth, aborted) drain last; unless a queued reload, starting now, brings
  // its own count (draining what it may need again would only cost capacity).
  if (d.s.phase !== 'running' || d.s.reloadQueued) return [ended];
  return [...shrinkSlots(d, d.config.workers), ended];
}

/** After a rollout's end (and its surplus slots'): an aborted reload's slots go back, it is told, and what waited for it starts. */
export function ended(d: Draft, context: RolloutContext, done: boolean): readonly Intent[] {
  const reason = context.failure?.reason ?? null;
  const { generation, kind } = context;
  if (kind === 'reload') {
    if (!done && d.s.phase === 'running') restoreSlots(d);
    pruneReleases(d);
  }
  const failed = context.failure && context.failure.slot >= 0 ? d.s.lastBootFailure : null;
  if (kind === 'replace') {
    if (done) d.log('info', 'ZD_REPLACE_DONE', `replaced ${context.replaced} worker(s)`, { replaced: context.replaced });
    else d.log('error', 'ZD_REPLACE_ABORTED', `replacement aborted: ${reason}; the worker it was to replace keeps serving`, { reason }, failed?.workerId);
  } else if (done) {
    d.log('info', 'ZD_RELOAD_DONE', `generation ${generation} serving on all ${context.total} slot(s)`, {
      generation,
      replaced: context.replaced,
    });
  } else {
    d.log(
      'error',
      'ZD_RELOAD_ABORTED',
      `rollout to generation ${generation} aborted: ${reason}; the previous workers keep serving`,
      { generation, reason, slot: context.failure?.slot ?? null },
      failed?.workerId,
    );
  }
  if (d.s.phase !== 'running') return NONE;
  if (d.s.reloadQueued) {
    d.s.reloadQueued = false;
    startReload(d);
  } else if (d.s.replaceQueue.length > 0) {
    const slots = d.s.replaceQueue;
    d.s.replaceQueue = [];
    startReplacement(d, slots);
  }
  return NONE;
}
