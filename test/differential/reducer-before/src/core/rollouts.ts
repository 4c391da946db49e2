// Rollouts: reloads (every slot to a new generation) and replacements (one slot's worker, same
// code), both by the rollout machine's ready-before-drain procedure; and retiring the workers they
// supersede, staggered when asked.
import { initialTransition, transition } from 'xstate';
import { CANARY_EXTENSIONS, CANARY_JUDGE_MS, rolloutMachine, type RolloutContext, type RolloutEvent } from '../../machines/rollout.machine.ts';
import { matchesState } from 'xstate';
import type { Figures } from './canary-figures.ts';
import { sum, verdict } from './canary.ts';
import type { StopReason } from '../../machines/worker.machine.ts';
import { ids, persist, type Draft } from './draft.ts';
import type { CoreConfig } from './config.ts';
import type { Release, ReleaseProblem } from './events.ts';
import { growSlots, shrinkSlots } from './scale.ts';
import { capacityFloor, isBooting, isDead, isReady, readyCount, rollbackTarget, servingCapacity, servingRelease, valueName } from './queries.ts';
import type { CanaryRecord, WorkerEntry } from './state.ts';
import { respawnTimerId, STAGGER_TIMER } from './timers.ts';
import { fork, toWorker } from './workers.ts';

/**
 * A reload asked for by a signal or `zd reload`, with the release the shell resolved for it (none:
 * the serving generation's, as when files are edited in place).
 */
export function requestReload(d: Draft, source: string, asked?: Release | ReleaseProblem, config?: CoreConfig): void {
  const counters = d.counters();
  counters.reloadsRequested += 1;
  if (d.s.phase === 'stopping') {
    counters.reloadsRefused += 1;
    d.log('warn', 'ZD_RELOAD_REFUSED', `reload (${source}) refused: zd is shutting down`, { source });
    return;
  }
  if (asked && 'problem' in asked) {
    counters.reloadsRefused += 1;
    d.log('error', 'ZD_RELOAD_REFUSED', `reload (${source}) refused: ${asked.problem}${asked.problem.includes('\n') ? '\n' : '; '}the running generation serves on`, {
      source,
      reason: asked.problem,
      // What was asked for cannot run (a bad config or env file, a broken link): not a state of zd's.
      invalid: true,
    });
    return;
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
    return;
  }
  startReload(d, { release, config: config ?? null });
}

/** `zd rollback`: a reload back to the previous completed generation's release; never queued. */
export function requestRollback(d: Draft): void {
  const counters = d.counters();
  counters.reloadsRequested += 1;
  const target = rollbackTarget(d.s);
  if ('refused' in target) {
    counters.reloadsRefused += 1;
    d.log('warn', 'ZD_ROLLBACK_REFUSED', `rollback refused: ${target.refused}`, { reason: target.refused });
    return;
  }
  startReload(d, { release: target.release, config: null, rollbackOf: target.generation });
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

/** Whether a slot is already on its way to a new worker: in the running rollout, or queued for one. */
export function replacementUnderway(d: Draft, slot: number): boolean {
  const rollout = d.s.rollout?.context;
  return d.s.replaceQueue.includes(slot) || rollout?.pending.includes(slot) === true || rollout?.booting.includes(slot) === true;
}

/** Memory or heartbeat: this slot's worker must go, by the ready-before-drain path. */
export function requestReplace(d: Draft, slot: number): void {
  if (d.s.phase !== 'running') return;
  if (d.s.rollout) {
    if (!replacementUnderway(d, slot)) d.s.replaceQueue = [...d.s.replaceQueue, slot];
    return;
  }
  startReplacement(d, [slot]);
}

export function drainRolloutQueue(d: Draft): void {
  while (d.rolloutQueue.length > 0) {
    const event = d.rolloutQueue.shift()!;
    if (d.s.rollout === null) continue; // it ended; late news of its workers
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
    for (const action of actions) {
      const params = action.params as { slot?: number; retireFirst?: boolean; id?: string; sendId?: string; delay?: number; event?: { type: string } } | undefined;
      const slot = params?.slot;
      if (action.type === 'replace') replaceSlot(d, slot!, params?.retireFirst === true);
      else if (action.type === 'retire') retireSlot(d, slot!);
      else if (action.type === 'stopReplacement') stopReplacement(d, slot!);
      else if (action.type === 'measureStart') d.effects.push({ type: 'measure.start', workerIds: servingIds(d) });
      else if (action.type === 'measureCollect') d.effects.push({ type: 'measure.collect', workerIds: servingIds(d), requestId: generation });
      else if (action.type === 'xstate.raise') {
        d.startTimer(`rollout:${generation}:${params!.id}`, { kind: 'rollout', generation, event: params!.event! }, params!.delay!);
      } else if ((action.type as string) === 'xstate.cancel') d.cancelTimer(`rollout:${generation}:${params!.sendId}`);
    }
    if (event.type.startsWith('xstate.after.canaryJudge')) {
      noteCanary(d, generation, { outcome: 'inconclusive', reason: `no figures within ${CANARY_JUDGE_MS}ms of the window's end`, canary: null, baseline: null }, next.context.canaryInconclusive === 'proceed' ? 'proceeds' : 'aborts');
    }
    if (next.status === 'done') endRollout(d, next.context, next.value === 'done');
  }
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

/** The canary's figures arrived: the new generation against the old, over the same window. */
export function judgeCanary(d: Draft, requestId: number, figures: Array<{ workerId: number; figures: Figures | null }>): void {
  const rollout = d.s.rollout;
  if (!rollout || rollout.context.generation !== requestId || !matchesState({ canary: 'judging' }, rollout.value)) return; // late
  const byGeneration = (mine: boolean) =>
    figures.flatMap(({ workerId, figures: f }) => {
      const worker = d.worker(workerId);
      return f && worker && (worker.generation === requestId) === mine ? [f] : [];
    });
  // Each window adds to the ones before: an extension gathers more evidence, it does not start over.
  const before = d.s.canaryEvidence?.generation === requestId ? d.s.canaryEvidence : null;
  const canary = sum([...(before ? [before.canary] : []), ...byGeneration(true)]);
  const baseline = sum([...(before ? [before.baseline] : []), ...byGeneration(false)]);
  const windows = rollout.context.canaryWindows;
  const judged = verdict(d.config, canary, baseline);
  const silent = figures.filter((f) => f.figures === null).length;
  const reason = silent > 0 ? `${judged.reason} (${silent} worker(s) did not answer)` : judged.reason;
  if (judged.outcome === 'inconclusive' && windows <= CANARY_EXTENSIONS) {
    d.s.canaryEvidence = { generation: requestId, canary, baseline };
    d.log('info', 'ZD_CANARY_EXTENDED', `canary of generation ${requestId} has too little evidence after ${windows} window(s): its window is extended by ${d.config.canaryMs}ms (${reason})`, {
      generation: requestId,
      windows,
      canaryMs: d.config.canaryMs,
    });
    d.rolloutQueue.push({ type: 'rollout.verdict', pass: false, extend: true, reason });
    return;
  }
  d.s.canaryEvidence = null;
  const proceed = judged.outcome === 'pass' || (judged.outcome === 'inconclusive' && d.config.canaryInconclusive === 'proceed');
  noteCanary(d, requestId, { ...judged, reason }, proceed ? 'proceeds' : 'aborts');
  const why = judged.outcome === 'fail' ? `canary failed: ${reason}` : `canary inconclusive after ${windows} window(s): ${reason}`;
  d.rolloutQueue.push({ type: 'rollout.verdict', pass: proceed, reason: why });
}


function noteCanary(d: Draft, generation: number, judged: Omit<CanaryRecord, 'generation' | 'canary' | 'baseline'> & { canary: CanaryRecord['canary'] | null; baseline: CanaryRecord['baseline'] | null }, then: 'proceeds' | 'aborts'): void {
  const none = { requests: 0, errors: 0, errorRate: 0, p99Ms: null };
  d.s.canary = { generation, outcome: judged.outcome, reason: judged.reason, canary: judged.canary ?? none, baseline: judged.baseline ?? none };
  const fields = { generation, outcome: judged.outcome, canary: d.s.canary.canary, baseline: d.s.canary.baseline };
  if (judged.outcome === 'pass') d.log('info', 'ZD_CANARY_PASSED', `canary of generation ${generation} passed: ${judged.reason}`, fields);
  else if (judged.outcome === 'fail') d.log('warn', 'ZD_CANARY_FAILED', `canary of generation ${generation} failed: ${judged.reason}`, fields);
  else d.log('warn', 'ZD_CANARY_INCONCLUSIVE', `canary of generation ${generation} inconclusive, the rollout ${then}${then === 'proceeds' ? ' (--canary-inconclusive proceed)' : ''}: ${judged.reason}`, fields);
}

function replaceSlot(d: Draft, index: number, retireFirst: boolean): void {
  const { generation, kind } = d.s.rollout!.context;
  const current = d.worker(d.slot(index)!.worker);
  if (kind === 'reload' && current && current.generation === generation && !isDead(current)) {
    // Already running the new code (a crash respawn during this rollout): adopt it.
    if (isReady(current)) d.rolloutQueue.push({ type: 'rollout.ready', slot: index });
    else d.mutWorker(current.id).adopted = true;
    return;
  }
  d.cancelTimer(respawnTimerId(index));
  // maxUnavailable: the old worker may go first, if the pool keeps its floor without it.
  if (retireFirst && current && isReady(current) && servingCapacity(d.s) - 1 >= capacityFloor(d.s)) {
    d.mutSlot(index).worker = null;
    retire(d, current, 'superseded');
  }
  // A replacement (memory, heartbeat) runs the code its slot runs; a reload's, its new generation.
  const id = fork(d, index, kind === 'replace' ? d.slot(index)!.generation : generation, true);
  d.mutSlot(index).next = id;
}

function retireSlot(d: Draft, index: number): void {
  const current = d.slot(index)!.worker;
  if (d.worker(current)) d.mutWorker(current!).adopted = false;
  if (d.slot(index)!.next === null) return; // an adopted worker: nothing older to retire
  const old = d.worker(current);
  const slot = d.mutSlot(index);
  slot.worker = slot.next;
  slot.generation = d.worker(slot.next)?.generation ?? slot.generation;
  slot.next = null;
  slot.failures = 0;
  slot.parked = false;
  if (old) retire(d, old, 'superseded');
}

function stopReplacement(d: Draft, index: number): void {
  const replacement = d.slot(index)!.next;
  d.mutSlot(index).next = null;
  const entry = d.worker(replacement);
  // A canary already serves: it drains like any serving worker (once the pool is covered without
  // it: its predecessor may have crashed meanwhile); anything else is stopped.
  if (entry && isReady(entry)) retireWhenCovered(d, entry);
  else if (entry) toWorker(d, entry.id, { type: 'stop', reason: 'aborted' });
  const adopted = d.slot(index)!.worker;
  if (d.worker(adopted)) d.mutWorker(adopted!).adopted = false;
}

/**
 * Takes a worker out of service: a serving one drains (after its staggered turn, when
 * retirements are staggered), a booting one is stopped.
 */
export function retire(d: Draft, entry: WorkerEntry, reason: StopReason): void {
  if (isBooting(entry)) {
    toWorker(d, entry.id, { type: 'stop', reason });
    return;
  }
  if (!isReady(entry)) return;
  const staggered = d.config.retireStaggerMs > 0 && d.s.phase !== 'stopping';
  if (staggered && (d.s.timers[STAGGER_TIMER] || d.s.retiring.length > 0)) {
    d.s.retiring = [...d.s.retiring, entry.id]; // serves on until its turn
    return;
  }
  drain(d, entry);
  if (staggered) d.startTimer(STAGGER_TIMER, { kind: 'stagger' }, d.config.retireStaggerMs);
}

function drain(d: Draft, entry: WorkerEntry): void {
  d.log('info', 'ZD_WORKER_DRAINING', `worker ${entry.id} draining`, {
    ...ids(entry),
    pid: entry.machine.context.pid,
    drainTimeoutMs: d.config.drainTimeoutMs,
  });
  toWorker(d, entry.id, { type: 'drain' });
}

/**
 * The stagger interval passed: the next superseded worker starts draining, unless a crash has
 * left the pool short, in which case it keeps serving until capacity is back.
 */
export function nextRetirement(d: Draft): void {
  const next = d.worker(d.s.retiring[0] ?? null);
  if (!next) return;
  if (servingCapacity(d.s) - 1 >= capacityFloor(d.s)) {
    d.s.retiring = d.s.retiring.slice(1);
    drain(d, next);
  }
  d.startTimer(STAGGER_TIMER, { kind: 'stagger' }, d.config.retireStaggerMs);
}

function retireWhenCovered(d: Draft, entry: WorkerEntry): void {
  // Judged by the settings the abort restores: the old generation's worker count.
  const restored = d.s.previousConfig ? { ...d.s, config: d.s.previousConfig } : d.s;
  if (servingCapacity(d.s) - 1 >= capacityFloor(restored)) {
    drain(d, entry);
    return;
  }
  if (!d.s.retiring.includes(entry.id)) d.s.retiring = [...d.s.retiring, entry.id];
}

/**
 * Workers waiting to retire with no stagger timer running wait for cover, not for their turn:
 * each drains once the pool keeps its floor without it (a respawn became ready, a slot was parked).
 */
export function drainCovered(d: Draft): void {
  while (d.s.retiring.length > 0 && !d.s.timers[STAGGER_TIMER]) {
    const next = d.worker(d.s.retiring[0]!);
    if (next && isReady(next) && servingCapacity(d.s) - 1 < capacityFloor(d.s)) return;
    d.s.retiring = d.s.retiring.slice(1);
    if (next && isReady(next)) drain(d, next);
  }
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
  const serving = d.s.completed[d.s.completed.length - 1] ?? 1;
  d.s.slots.forEach((slot, index) => {
    if (slot.generation > serving) d.mutSlot(index).generation = serving;
    const worker = d.worker(slot.worker);
    if (worker && worker.generation > serving && !d.s.replaceQueue.includes(index)) d.s.replaceQueue = [...d.s.replaceQueue, index];
  });
}

function endRollout(d: Draft, context: RolloutContext, done: boolean): void {
  d.s.rollout = null;
  const reason = context.failure?.reason ?? null;
  const { generation, kind } = context;
  d.s.lastRollout = { generation, outcome: done ? 'done' : 'aborted', reason, kind };
  if (kind === 'reload') {
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
    if (d.s.phase === 'running' && !d.s.reloadQueued) shrinkSlots(d, d.config.workers);
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
  if (d.s.phase !== 'running') return;
  if (d.s.reloadQueued) {
    d.s.reloadQueued = false;
    startReload(d);
  } else if (d.s.replaceQueue.length > 0) {
    const slots = d.s.replaceQueue;
    d.s.replaceQueue = [];
    startReplacement(d, slots);
  }
}
