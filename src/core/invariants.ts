// What the primary's reducer keeps true, in one place. docs/invariants.md says why each matters;
// the scenario and property tests check them after every step. Pure: no clock, no I/O.
//
// `checkState` looks at one state; `checkStep` at one reduction (state before, event, result).
// Each returns the broken invariants as lines "I<n> <what>", empty when all hold.
import { addressedWorker, type Effect } from './effects.ts';
import type { PrimaryEvent } from './events.ts';
import { isBooting, isDead, isLeaving, liveWorkers, matches, readyCount } from './queries.ts';
import type { PrimaryState, WorkerEntry } from './state.ts';

export const INVARIANTS = {
  I1: 'a reload never lowers ready capacity: only a worker exit or a stop does',
  I2: 'live workers ≤ N + surge + those leaving; rollout replacements booting ≤ surge',
  I3: 'no effect addresses a dead worker; nothing is sent or disconnected on a closed channel',
  I4: 'every wait has a pending deadline, and every pending timer has an owner',
  I5: 'at most one rollout; every reload request is started, coalesced, queued, refused or dropped',
  I6: 'once stopping, nothing is forked; once exited, nothing is done',
  I7: 'slots point at live workers of their own slot, each worker from at most one pointer',
  I8: 'the state is plain data: a JSON round trip changes nothing',
} as const;

export type InvariantId = keyof typeof INVARIANTS;

/** Deadline-carrying `after` delays of each waiting worker state. */
const WAITS: Array<[state: string, delay: string]> = [
  ['booting', 'readyTimeout'],
  ['draining', 'drainTimeout'],
  ['stopping', 'killTimeout'],
  ['terminating', 'killTimeout'],
  ['killing', 'killTimeout'],
];

export function checkState(state: PrimaryState): string[] {
  const broken: string[] = [];
  const fail = (id: InvariantId, detail: string) => broken.push(`${id} ${INVARIANTS[id]}: ${detail}`);
  const live = liveWorkers(state);
  const { config } = state;

  // I2
  const leaving = live.filter(isLeaving).length;
  const limit = config.workers + config.maxSurge + leaving;
  if (live.length > limit) fail('I2', `${live.length} live workers > ${limit}`);
  const replacements = state.slots.filter((slot) => slot.next !== null).length;
  if (replacements > config.maxSurge) fail('I2', `${replacements} replacements booting > surge ${config.maxSurge}`);

  // I4: every waiting worker has its deadline, every empty slot its respawn timer.
  if (state.phase !== 'exited') {
    for (const worker of live) {
      for (const [waiting, delay] of WAITS) {
        if (matches(worker, waiting) && !hasTimer(state, `w${worker.id}:xstate.after.${delay}.`)) {
          fail('I4', `worker ${worker.id} is ${waiting} with no ${delay} deadline`);
        }
      }
    }
    if (state.phase === 'running') {
      state.slots.forEach((slot, index) => {
        if (slot.worker === null && slot.next === null && !slot.parked && !state.timers[`respawn:${index}`]) {
          fail('I4', `slot ${index} is empty with no respawn pending`);
        }
      });
    }
  }
  for (const [timerId, owner] of Object.entries(state.timers)) {
    if (owner.kind === 'worker' && !state.workers[String(owner.workerId)]) {
      fail('I4', `timer ${timerId} belongs to a worker that is gone`);
    }
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
      const worker = state.workers[String(id)];
      if (!worker || isDead(worker)) fail('I7', `slot ${index}.${name} points at worker ${id}, which is gone`);
      else if (worker.slot !== index) fail('I7', `slot ${index}.${name} points at worker ${id} of slot ${worker.slot}`);
      else if (isLeaving(worker)) fail('I7', `slot ${index}.${name} points at worker ${id}, which is leaving`);
      if (pointed.has(id)) fail('I7', `worker ${id} is pointed at twice (${pointed.get(id)}, slot ${index}.${name})`);
      pointed.set(id, `slot ${index}.${name}`);
    }
    const next = slot.next === null ? undefined : state.workers[String(slot.next)];
    if (next && !isBooting(next)) fail('I7', `slot ${index}.next is worker ${next.id}, which is not booting`);
  });
  if (state.phase === 'running' || state.phase === 'starting') {
    for (const worker of live) {
      if (!pointed.has(worker.id) && !isLeaving(worker)) {
        fail('I7', `worker ${worker.id} is live, not leaving, and in no slot`);
      }
    }
  }

  // I8
  const copy = JSON.parse(JSON.stringify(state)) as unknown;
  if (!deepEqual(copy, state)) fail('I8', 'a JSON round trip changes the state');

  return broken;
}

export function checkStep(before: PrimaryState, event: PrimaryEvent | null, after: PrimaryState, effects: Effect[]): string[] {
  const broken = checkState(after);
  const fail = (id: InvariantId, detail: string) => broken.push(`${id} ${INVARIANTS[id]}: ${detail}`);

  // I1: only a worker's exit (a crash) or a stop lowers the count of ready workers, by one at most.
  if (event !== null) {
    const lost = readyCount(before) - readyCount(after);
    const stopping = after.phase === 'stopping' || after.phase === 'exited';
    if (lost > 0 && !stopping && !(event.type === 'worker.exit' && lost === 1)) {
      fail('I1', `${event.type} lowered ready workers from ${readyCount(before)} to ${readyCount(after)}`);
    }
  }

  // I3
  const exiting = event?.type === 'worker.exit' ? event.workerId : null;
  const disconnected = event?.type === 'worker.disconnect' || event?.type === 'worker.exit' ? event.workerId : null;
  const disconnectedNow = new Set<number>();
  for (const effect of effects) {
    const id = addressedWorker(effect);
    if (id === undefined) continue;
    const known: WorkerEntry | undefined = before.workers[String(id)] ?? after.workers[String(id)];
    if (!known || isDead(known) || id === exiting) {
      fail('I3', `${effect.type} addressed to worker ${id}, which is dead`);
      continue;
    }
    if (effect.type === 'send' || effect.type === 'disconnect') {
      const open = (before.workers[String(id)]?.machine.context.connected ?? true) && id !== disconnected && !disconnectedNow.has(id);
      if (!open) fail('I3', `${effect.type} on worker ${id}'s closed channel`);
      if (effect.type === 'disconnect') disconnectedNow.add(id);
    }
  }

  // I5: a second rollout never starts while one runs.
  const started = after.counters.rolloutsStarted - before.counters.rolloutsStarted;
  if (started > 1) fail('I5', `${started} rollouts started in one step`);

  // I6
  const forks = effects.filter((e) => e.type === 'fork').length;
  if (forks > 0 && (before.phase === 'stopping' || before.phase === 'exited' || after.phase === 'stopping' || after.phase === 'exited')) {
    fail('I6', `${forks} fork(s) while stopping`);
  }
  if (before.phase === 'exited' && effects.length > 0) fail('I6', `${effects.length} effect(s) after exit`);
  if (effects.filter((e) => e.type === 'exit').length > 1) fail('I6', 'more than one exit');

  return broken;
}

function hasTimer(state: PrimaryState, prefix: string): boolean {
  return Object.keys(state.timers).some((id) => id.startsWith(prefix));
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

