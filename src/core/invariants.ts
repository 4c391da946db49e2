// What the primary's reducer keeps true, in one place. docs/invariants.md says why each matters;
// the scenario and property tests check them after every step. Pure: no clock, no I/O.
//
// `checkState` looks at one state; `checkStep` at one reduction (state before, event, result).
// Each returns the broken invariants as lines "I<n> <what>", empty when all hold.
import { matchesState } from 'xstate';
import { failures, isPlainData } from '../reducer-kit/invariants.ts';
import { addressedWorker, type Effect, type LogEffect } from './effects.ts';
import type { PrimaryEvent } from './events.ts';
import { UNSETTLED } from './intents.ts';
import { allTimers, awaitsRestore, servingCapacity, capacityFloor, getWorker, hasTimer, isBooting, isDead, isLeaving, isReady, liveWorkers, matches, missingAddresses, onAbortedCode, readyCount } from './queries.ts';
import { routing, sameRouting } from './routing.ts';
import { PORTS_TIMER, pingTimerId, pongTimerId, restoreTimerId, STAGGER_TIMER, STOP_DELAY_TIMER } from './timers.ts';
import type { PrimaryState, WorkerEntry } from './state.ts';

export const INVARIANTS = {
  I1: 'a rollout never takes ready capacity below N − maxUnavailable (nor lowers it when already below): only a worker exiting or losing its channel, or a stop, does',
  I2: 'live workers ≤ N + surge + maxUnavailable + those leaving or awaiting their staggered drain; replacements booting ≤ surge + maxUnavailable; while a reload\'s generation is unproven and one of its replacements warms, one more of each',
  I3: 'no effect addresses a dead worker; nothing is sent or disconnected on a closed channel',
  I4: 'every wait has a pending deadline, and every pending timer has an owner',
  I5: 'at most one rollout; every reload request is started, coalesced, queued, refused or dropped',
  I6: 'once stopping, nothing is forked; once exited, nothing is done',
  I7: 'slots point at live workers of their own slot, each worker from at most one pointer',
  I8: 'the state is plain data: a JSON round trip changes nothing',
  I9: 'a worker counts as ready (or starts its min-ready period) only once it listens on every address the workers it replaces listen on',
  I10: 'only a ready, connected worker of a serving generation (or the rollout\'s own) is routable; the socket layer\'s set is the state\'s, and a worker leaves it first in the step that takes it out of service',
  I11: 'the ports close only for a stop, once, and never reopen; a stop drains its workers only once every zd process has stopped accepting (or the deadline passed)',
  I12: 'every step settles: the intents its concerns ask for, and the work the new state implies, run out within the coordinator\'s bound',
  I13: 'min-ready proves a reload\'s generation: until one of its replacements has served it out, each replacement it starts warms and (with maxUnavailable 0) no older worker is retired; from then on none of its replacements warms or will (each counts once ready); nothing else ever warms',
} as const;

export type InvariantId = keyof typeof INVARIANTS;

/** Deadline-carrying `after` delays of each waiting worker state. */
const WAITS: Array<[state: string, delay: string]> = [
  ['booting', 'readyTimeout'],
  ['warming', 'minReady'],
  ['draining', 'drainTimeout'],
  ['disconnected', 'drainTimeout'],
  ['stopping', 'drainTimeout'],
  ['terminating', 'killTimeout'],
  ['killing', 'killTimeout'],
];

export function checkState(state: PrimaryState): string[] {
  const { broken, fail } = failures(INVARIANTS);
  const live = liveWorkers(state);
  const { config } = state;

  // I2
  // A worker that lost its channel is on its way out too, under its own deadline.
  const goingAway = (w: WorkerEntry) => isLeaving(w) || matches(w, 'disconnected');
  const leaving = live.filter(goingAway).length;
  // Retiring first is done only when capacity allows (I1 comes first); otherwise the replacement
  // boots beside its predecessor, spending the unavailability budget as surge.
  // While a reload shrinks the pool, the surplus old workers serve on until it is done.
  const slots = Math.max(config.workers, state.slots.length);
  // The proof overlaps the next boot (rollout.machine.ts): until a reload's generation is proven, a
  // replacement that warms has shown that it boots and listens, and leaves room for one more.
  const rolling = state.rollout?.context;
  const warming = state.slots.some((slot) => {
    const next = slot.next === null ? undefined : getWorker(state, slot.next);
    return next !== undefined && matches(next, 'warming');
  });
  const proving = rolling?.kind === 'reload' && !rolling.proven && warming ? 1 : 0;
  const limit = slots + config.maxSurge + config.maxUnavailable + proving + leaving + state.retiring.length;
  if (live.length > limit) fail('I2', `${live.length} live workers > ${limit}`);
  const replacements = state.slots.filter((slot) => slot.next !== null).length;
  const room = Math.max(1, config.maxSurge + config.maxUnavailable) + proving;
  if (replacements > room) fail('I2', `${replacements} replacements booting > surge + unavailable${proving ? ' + 1 while the generation is unproven' : ''} ${room}`);

  // I4: every waiting worker has its deadline, every empty slot its respawn timer, every slot left
  // on an aborted reload's code its restore.
  if (state.phase !== 'exited') {
    for (const worker of live) {
      for (const [waiting, delay] of WAITS) {
        if (matches(worker, waiting) && !hasTimerPrefix(worker, `w${worker.id}:xstate.after.${delay}.`)) {
          fail('I4', `worker ${worker.id} is ${waiting} with no ${delay} deadline`);
        }
      }
    }
    if (state.phase === 'running') {
      const rollout = state.rollout?.context;
      state.slots.forEach((slot, index) => {
        // A slot a growing reload added is filled by the rollout, in its turn.
        const awaitsRollout = rollout !== undefined && slot.generation === rollout.generation && rollout.pending.includes(index);
        if (slot.worker === null && slot.next === null && !slot.parked && !awaitsRollout && !hasTimer(state, `respawn:${index}`)) {
          fail('I4', `slot ${index} is empty with no respawn pending`);
        }
        // A slot left on an aborted reload's code is on its way back, or has failed too often.
        if (awaitsRestore(state, index) && !hasTimer(state, restoreTimerId(index))) {
          const stale = onAbortedCode(state, index)!;
          fail('I4', `slot ${index}'s worker ${stale.id} runs aborted generation ${stale.generation} with no restore pending`);
        }
      });
    }
    // Without a stagger timer, a worker waits only for cover: it drains as soon as the pool keeps
    // its floor without it (a failed canary whose predecessor crashed meanwhile).
    if (state.retiring.length > 0 && !hasTimer(state, STAGGER_TIMER) && servingCapacity(state) - 1 >= capacityFloor(state)) {
      fail('I4', `${state.retiring.length} worker(s) await a drain with neither a stagger timer nor a reason to wait`);
    }
    if (state.phase === 'stopping' && !state.draining && !hasTimer(state, STOP_DELAY_TIMER) && !(state.ports === 'closing' && hasTimer(state, PORTS_TIMER))) {
      fail('I4', 'stopping, not draining yet, and neither a shutdown-delay nor a ports-close deadline');
    }
    if (config.heartbeatTimeoutMs > 0) {
      for (const worker of live) {
        if (isReady(worker) && !hasTimer(state, pingTimerId(worker.id)) && !hasTimer(state, pongTimerId(worker.id))) {
          fail('I4', `ready worker ${worker.id} has no heartbeat pending`);
        }
      }
    }
  }
  for (const [timerId, owner] of allTimers(state)) {
    if ((owner.kind === 'worker' || owner.kind === 'ping' || owner.kind === 'pong') && !getWorker(state, owner.workerId)) {
      fail('I4', `timer ${timerId} belongs to a worker that is gone`);
    }
  }
  for (let i = 1; i < state.workers.length; i++) {
    if (state.workers[i - 1]!.id >= state.workers[i]!.id) fail('I7', `the worker list is not sorted by id at ${i}`);
  }

  // I5
  const c = state.counters;
  const accounted = c.rolloutsStarted + c.reloadsCoalesced + c.reloadsRefused + c.reloadsDropped + (state.reloadQueued ? 1 : 0);
  if (c.reloadsRequested !== accounted) {
    fail('I5', `${c.reloadsRequested} reloads requested but ${accounted} accounted for`);
  }
  if (state.reloadQueued && state.rollout === null && state.phase !== 'starting') {
    fail('I5', 'a reload is queued with no rollout running to wait for');
  }

  // I7
  const pointed = new Map<number, string>();
  state.slots.forEach((slot, index) => {
    for (const [name, id] of [['worker', slot.worker], ['next', slot.next]] as const) {
      if (id === null) continue;
      const worker = getWorker(state, id);
      if (!worker || isDead(worker)) fail('I7', `slot ${index}.${name} points at worker ${id}, which is gone`);
      else if (worker.slot !== index) fail('I7', `slot ${index}.${name} points at worker ${id} of slot ${worker.slot}`);
      else if (isLeaving(worker)) fail('I7', `slot ${index}.${name} points at worker ${id}, which is leaving`);
      if (pointed.has(id)) fail('I7', `worker ${id} is pointed at twice (${pointed.get(id)}, slot ${index}.${name})`);
      pointed.set(id, `slot ${index}.${name}`);
    }
    const next = slot.next === null ? undefined : getWorker(state, slot.next);
    // The one exception: a canary, which serves beside its predecessor until its verdict.
    const canary = state.rollout !== null && state.rollout.context.canarySlot === index && matchesState('canary', state.rollout.value);
    if (next && !isBooting(next) && !canary) fail('I7', `slot ${index}.next is worker ${next.id}, which is not booting`);
  });
  if (state.phase === 'running' || state.phase === 'starting') {
    for (const worker of live) {
      if (!pointed.has(worker.id) && !isLeaving(worker) && !matches(worker, 'disconnected') && !state.retiring.includes(worker.id)) {
        fail('I7', `worker ${worker.id} is live, not leaving, awaiting no drain, and in no slot`);
      }
    }
  }
  for (const id of state.retiring) {
    const worker = getWorker(state, id);
    if (!worker || !isReady(worker)) fail('I7', `worker ${id} awaits a staggered drain but is not ready`);
    if (pointed.has(id)) fail('I7', `worker ${id} awaits a staggered drain yet ${pointed.get(id)} points at it`);
  }

  // I10
  const derived = routing(state);
  if (!sameRouting(derived, state.routing)) fail('I10', `routing ${JSON.stringify(state.routing)} but the state says ${JSON.stringify(derived)}`);
  for (const id of state.routing.workers) {
    const worker = getWorker(state, id);
    if (!worker || !isReady(worker) || !worker.machine.context.connected) fail('I10', `worker ${id} is routable but not ready and connected`);
  }

  // I11
  if (state.ports !== 'open' && state.phase !== 'stopping' && state.phase !== 'exited') fail('I11', `ports ${state.ports} while ${state.phase}`);
  if (state.draining && state.ports !== 'closed') fail('I11', `draining for a stop while the ports are ${state.ports}`);

  // I8
  if (!isPlainData(state)) fail('I8', 'a JSON round trip changes the state');

  return broken;
}

export function checkStep(before: PrimaryState, event: PrimaryEvent | null, after: PrimaryState, effects: Effect[]): string[] {
  const { broken, fail } = failures(INVARIANTS, checkState(after));

  // I1: a worker's exit (a crash) lowers the ready count by one; a stop may lower it to zero;
  // anything else may only use the room maxUnavailable gives, down to N − maxUnavailable.
  if (event !== null) {
    const was = servingCapacity(before);
    const now = servingCapacity(after);
    const stopping = after.phase === 'stopping' || after.phase === 'exited';
    // The floor in force when the step decided: a reload that starts in the same step (one queued
    // behind the rollout that just ended) may raise N, but only for what comes after it; and a
    // reload aborted in the step gives back the settings it replaced, under which its canary goes.
    const restored = before.previousConfig && after.lastReload !== before.lastReload ? capacityFloor({ ...before, config: before.previousConfig }) : Infinity;
    const floor = Math.min(was, capacityFloor(before), capacityFloor(after), restored);
    // A worker that exits, or whose channel closes, stops serving: one fewer.
    const crash = (event.type === 'worker.exit' || event.type === 'worker.disconnect') && now >= Math.min(was - 1, floor);
    if (now < was && now < floor && !stopping && !crash) {
      fail('I1', `${event.type} lowered ready workers from ${was} to ${now} (floor ${floor})`);
    }
  }

  // I3
  const exiting = event?.type === 'worker.exit' ? event.workerId : null;
  const disconnected = event?.type === 'worker.disconnect' || event?.type === 'worker.exit' ? event.workerId : null;
  const disconnectedNow = new Set<number>();
  for (const effect of effects) {
    const id = addressedWorker(effect);
    if (id === undefined) continue;
    const known: WorkerEntry | undefined = getWorker(before, id) ?? getWorker(after, id);
    if (!known || isDead(known) || id === exiting) {
      fail('I3', `${effect.type} addressed to worker ${id}, which is dead`);
      continue;
    }
    if (effect.type === 'send' || effect.type === 'disconnect') {
      const open = (getWorker(before, id)?.machine.context.connected ?? true) && id !== disconnected && !disconnectedNow.has(id);
      if (!open) fail('I3', `${effect.type} on worker ${id}'s closed channel`);
      if (effect.type === 'disconnect') disconnectedNow.add(id);
    }
  }

  // I9
  for (const worker of after.workers) {
    const was = getWorker(before, worker.id);
    const arrived = (isReady(worker) || matches(worker, 'warming')) && (!was || matches(was, 'booting'));
    if (arrived && missingAddresses(worker).length > 0) {
      fail('I9', `worker ${worker.id} left booting without listening on ${missingAddresses(worker).join(', ')}`);
    }
  }

  // I13: who warms is decided at the fork, by whether the reload's generation is proven yet.
  const rollout = after.rollout?.context;
  for (const worker of after.workers) {
    if (getWorker(before, worker.id)) continue;
    const slot = after.slots[worker.slot];
    // A replacement stopped in the step that forked it (its rollout aborted) is no slot's: unjudged.
    const asNext = slot?.next === worker.id;
    if (!asNext && slot?.worker !== worker.id) continue;
    const must = asNext && rollout?.kind === 'reload' && !rollout.proven ? after.config.minReadyMs : 0;
    const has = worker.machine.context.minReadyMs;
    if (has !== must) {
      fail('I13', `worker ${worker.id} forked with a ${has}ms min-ready period, not ${must}ms (${asNext ? `a ${rollout?.kind ?? 'finished rollout'}'s replacement, generation ${rollout?.proven ? '' : 'not '}proven` : 'its slot\'s worker'})`);
    }
  }
  // The protection it buys: a version that dies within the period aborts before anything it replaces drains.
  const sameReload = rollout?.kind === 'reload' && before.rollout?.context.generation === rollout.generation;
  // And only a period served out proves: a replacement of the generation went from warming to ready in this step.
  if (sameReload && rollout.proven && !before.rollout!.context.proven) {
    const warmed = after.workers.some((w) => w.generation === rollout.generation && isReady(w) && matches(getWorker(before, w.id) ?? w, 'warming'));
    if (!warmed) fail('I13', `generation ${rollout.generation} counted as proven, yet none of its replacements served out a min-ready period in this step`);
  }
  // Once proven, no replacement has a period left to serve: the ones booting beside the proof count once ready.
  if (rollout?.kind === 'reload' && rollout.proven) {
    for (const slot of after.slots) {
      const next = slot.next === null ? undefined : getWorker(after, slot.next);
      if (next && (matches(next, 'warming') || (isBooting(next) && next.machine.context.minReadyMs > 0))) {
        fail('I13', `worker ${next.id} still has a min-ready period to serve, yet generation ${rollout.generation} is proven`);
      }
    }
  }
  if (sameReload && !rollout.proven && after.phase === 'running' && after.config.minReadyMs > 0 && after.config.maxUnavailable === 0) {
    for (const worker of after.workers) {
      const was = getWorker(before, worker.id);
      // Retirements queued by an earlier rollout (--retire-stagger) drain in their turn.
      if (!was || worker.generation >= rollout.generation || before.retiring.includes(worker.id)) continue;
      if ((matches(worker, 'draining') && !matches(was, 'draining')) || after.retiring.includes(worker.id)) {
        fail('I13', `worker ${worker.id} of generation ${worker.generation} retired before generation ${rollout.generation} served out its min-ready period`);
      }
    }
  }

  // I10: what the socket layer was told, in order, ends at the state's set; and a change comes first.
  let told = before.routing;
  effects.forEach((effect, index) => {
    if (effect.type !== 'route') return;
    if (index !== 0) fail('I10', `a route effect at position ${index}, after ${effects[0]!.type}`);
    told = { workers: effect.workers, slots: effect.slots };
  });
  if (!sameRouting(told, after.routing)) fail('I10', `the socket layer routes by ${JSON.stringify(told)}, the state says ${JSON.stringify(after.routing)}`);
  for (const effect of effects) {
    if ((effect.type === 'disconnect' || effect.type === 'kill') && told.workers.includes(effect.workerId)) {
      fail('I10', `${effect.type} of worker ${effect.workerId}, which stays routable`);
    }
  }

  // I11
  const closes = effects.filter((e) => e.type === 'ports.close').length;
  if (before.ports !== 'open' && after.ports === 'open') fail('I11', `the ports reopened (${before.ports} → open)`);
  if (before.ports === 'closed' && after.ports !== 'closed') fail('I11', `closed ports went ${after.ports}`);
  if (closes !== (before.ports === 'open' && after.ports !== 'open' ? 1 : 0)) fail('I11', `${closes} ports.close effect(s) as the ports went ${before.ports} → ${after.ports}`);

  // I5: a second rollout never starts while one runs.
  const started = after.counters.rolloutsStarted - before.counters.rolloutsStarted;
  if (started > 1) fail('I5', `${started} rollouts started in one step`);

  // I12
  const unsettled = effects.find((e) => e.type === 'log' && e.code === UNSETTLED);
  if (unsettled) fail('I12', (unsettled as LogEffect).msg);

  // I6
  const forks = effects.filter((e) => e.type === 'fork').length;
  if (forks > 0 && (before.phase === 'stopping' || before.phase === 'exited' || after.phase === 'stopping' || after.phase === 'exited')) {
    fail('I6', `${forks} fork(s) while stopping`);
  }
  if (before.phase === 'exited' && effects.length > 0) fail('I6', `${effects.length} effect(s) after exit`);
  if (effects.filter((e) => e.type === 'exit').length > 1) fail('I6', 'more than one exit');

  return broken;
}

function hasTimerPrefix(worker: WorkerEntry, prefix: string): boolean {
  return Object.keys(worker.timers).some((id) => id.startsWith(prefix));
}
