// What the keeper's reducer keeps true, in one place (docs/invariants.md, "Keeper / upgrade", says
// why each matters). The unit and property tests check them after every step. Pure: no clock, no I/O.
//
// checkKeeperInvariants(before, after, event, effects) judges one reduction and the state it left;
// it returns the broken invariants as lines "K<n> <what>: <detail>", empty when all hold. The
// run-wide half of K4 (no request left unanswered once the world is quiet) needs the whole run,
// and is checked by the property suite at quiescence.
import { matchesState } from 'xstate';
import { failures, isPlainData } from '../reducer-kit/invariants.ts';
import { alivePrimaries, isAlive, type KeeperState } from './state.ts';
import type { KeeperEffect, KeeperEvent, PrimaryId } from './types.ts';

export const KEEPER_INVARIANTS = {
  K1: 'at most two primaries are alive at any time',
  K2: 'at most one primary is starting (not ready yet); a killed one is on its way out, not starting',
  K3: 'a primary is retired only in the step its successor, now current and ready, became ready; only a ready current primary is retired',
  K4: 'every upgrade request is answered exactly once: a request is answered at once (refused) or becomes the one in flight, and the one in flight is answered in the step it ends, never twice',
  K5: 'nothing is spawned while stopping; a spawn gets a fresh id',
  K6: 'the keeper exits once, only when no primary is alive, and does nothing after',
  K7: "the keeper never lets go of its sockets while it runs: it has no effect that closes one, and only its exit (K6) releases them",
  K8: 'effects address only primaries alive when they are asked for; a kill only ever hits a candidate that never became ready',
  K9: 'current, next and the upgrade machine agree: next is the starting candidate beside the ready current primary; every other live primary is on its way out (retiring, stopping, killed); an upgrade in flight has its deadline armed; none is in flight while stopping',
  K10: 'while running (not stopping), the current primary is alive, or it crashed and its restart is pending',
  K11: 'the state is plain data: a JSON round trip changes nothing',
} as const;

export type KeeperInvariantId = keyof typeof KEEPER_INVARIANTS;

/** Every effect the keeper may ask for. None closes a socket (K7). */
const EFFECT_TYPES = new Set<string>(['spawn', 'signal', 'retire', 'promote', 'kill', 'timer', 'reply', 'log', 'exit']);
const TIMER_EVENTS = new Set<string>(['upgrade.timeout', 'restart.due', 'crash.expired']);

export function checkKeeperInvariants(before: KeeperState, after: KeeperState, event: KeeperEvent, effects: KeeperEffect[]): string[] {
  const { broken, fail } = failures(KEEPER_INVARIANTS);

  if (before.exited) {
    if (effects.length > 0) fail('K6', `${effects.length} effect(s) after the exit`);
    return broken;
  }
  const alive = alivePrimaries(after);

  // K1, K2
  if (alive.length > 2) fail('K1', `${alive.length} alive: ${alive.join(', ')}`);
  const starting = alive.filter((id) => after.primaries[id]!.status === 'starting');
  if (starting.length > 1) fail('K2', `${starting.length} starting: ${starting.join(', ')}`);

  // K3
  for (const effect of effects) {
    if (effect.type !== 'retire') continue;
    const successor = after.current;
    const readyNow = event.type === 'primary.ready' && event.id === successor && after.primaries[successor]?.status === 'ready';
    if (!readyNow || effect.id === successor) fail('K3', `retire(${effect.id}) on ${event.type}, current ${successor}`);
    if (before.current !== effect.id || before.primaries[effect.id]?.status !== 'ready') {
      fail('K3', `retire(${effect.id}), which was not the ready current primary`);
    }
  }

  // K4
  const replies = effects.filter((e) => e.type === 'reply');
  const pendingBefore = before.upgrade.context.request?.requestId ?? null;
  const pendingAfter = after.upgrade.context.request?.requestId ?? null;
  const replied = new Set<string>();
  for (const reply of replies) {
    if (replied.has(reply.requestId)) fail('K4', `request ${reply.requestId} answered twice in one step`);
    replied.add(reply.requestId);
    const asked = event.type === 'upgrade.requested' && event.request.requestId === reply.requestId;
    if (reply.requestId !== pendingBefore && !asked) fail('K4', `answer to ${reply.requestId}, neither in flight nor just asked`);
    if (reply.requestId === pendingAfter) fail('K4', `request ${reply.requestId} answered yet still in flight`);
  }
  if (event.type === 'upgrade.requested') {
    const id = event.request.requestId;
    if (replied.has(id) === (pendingAfter === id)) fail('K4', `request ${id} neither answered nor in flight (or both)`);
  }
  if (pendingBefore !== null && pendingAfter !== pendingBefore && !replied.has(pendingBefore)) {
    fail('K4', `request ${pendingBefore} left the machine unanswered`);
  }
  if (pendingAfter !== null && pendingAfter !== pendingBefore && !(event.type === 'upgrade.requested' && event.request.requestId === pendingAfter)) {
    fail('K4', `request ${pendingAfter} in flight without being asked`);
  }

  // K5
  const spawns = effects.filter((e) => e.type === 'spawn');
  if (spawns.length > 0 && (before.stopping || after.stopping)) fail('K5', `spawn(${spawns.map((e) => e.id)}) while stopping`);
  for (const spawn of spawns) {
    if (spawn.id < before.nextId || before.primaries[spawn.id] !== undefined) fail('K5', `spawn(${spawn.id}) reuses an id`);
  }

  // K6
  const exits = effects.filter((e) => e.type === 'exit');
  if (exits.length > 1) fail('K6', `${exits.length} exits in one step`);
  if (exits.length > 0) {
    if (alive.length > 0) fail('K6', `exit with ${alive.join(', ')} alive`);
    if (!after.exited || after.exitCode !== exits[0]!.code) fail('K6', 'exit not recorded in the state');
    if (effects[effects.length - 1]!.type !== 'exit') fail('K6', 'an effect after the exit');
  } else if (after.exited) {
    fail('K6', 'exited without an exit effect');
  }

  // K7
  for (const effect of effects) {
    if (!EFFECT_TYPES.has(effect.type)) fail('K7', `unknown effect ${effect.type}`);
    if (effect.type === 'timer' && !TIMER_EVENTS.has(effect.event.type)) fail('K7', `timer for ${effect.event.type}`);
  }

  // K8
  const spawned = new Set(spawns.map((e) => e.id));
  const addressable = (id: PrimaryId) => isAlive(before.primaries[id]) || spawned.has(id);
  for (const effect of effects) {
    if (effect.type === 'signal' || effect.type === 'retire' || effect.type === 'promote' || effect.type === 'kill') {
      if (!addressable(effect.id)) fail('K8', `${effect.type}(${effect.id}) to a primary not alive`);
    }
    if (effect.type === 'kill' && before.primaries[effect.id]?.status !== 'starting') {
      fail('K8', `kill(${effect.id}), which was ${before.primaries[effect.id]?.status ?? 'unknown'}`);
    }
    if (effect.type === 'promote' && (after.current !== effect.id || before.current === effect.id)) {
      fail('K8', `promote(${effect.id}) that did not make it the current primary`);
    }
  }

  // K9
  const { value, context } = after.upgrade;
  const upgrading = matchesState('upgrading', value);
  if (matchesState({ upgrading: 'beside' }, value)) {
    if (after.next !== context.candidate || after.primaries[after.next!]?.status !== 'starting') {
      fail('K9', `next ${after.next} is not the starting candidate ${context.candidate}`);
    }
    if (after.current !== context.previous || after.primaries[after.current!]?.status !== 'ready') {
      fail('K9', `the candidate boots beside ${after.current}, not the ready primary ${context.previous} it replaces`);
    }
  } else if (after.next !== null) {
    fail('K9', `next ${after.next} with no candidate booting beside the current primary`);
  }
  if (matchesState({ upgrading: 'alone' }, value) && after.current !== context.candidate) {
    fail('K9', `the candidate ${context.candidate} is alone, but ${after.current} is current`);
  }
  if (upgrading && (after.deadline === null || after.deadline.id !== context.candidate)) {
    fail('K9', `upgrade of ${context.candidate} with no deadline armed`);
  }
  if (!upgrading && (context.request !== null || after.deadline !== null)) fail('K9', 'a request or deadline left with no upgrade');
  if (upgrading && after.stopping) fail('K9', 'an upgrade in flight while stopping');
  if (after.current !== null && after.next === after.current) fail('K9', 'next is the current primary');
  for (const id of alive) {
    const status = after.primaries[id]!.status;
    const leaving = status === 'retiring' || status === 'stopping' || status === 'killed';
    if (id !== after.current && id !== after.next && !leaving) fail('K9', `primary ${id} is ${status}, neither current, next nor on its way out`);
    if (id === after.current && (status === 'retiring' || status === 'killed')) fail('K9', `the current primary ${id} is ${status}`);
  }

  // K10
  if (after.started && !after.stopping) {
    const current = after.primaries[after.current ?? -1];
    const ok = isAlive(current) ? !after.restartPending : current?.status === 'exited' && after.restartPending;
    if (!ok) fail('K10', `current ${after.current} is ${current?.status ?? 'missing'}, restart ${after.restartPending ? '' : 'not '}pending`);
  }
  // Exited primaries are forgotten, but the current one (for status and its restart).
  for (const id of Object.keys(after.primaries).map(Number)) {
    if (!isAlive(after.primaries[id]) && id !== after.current) fail('K10', `exited primary ${id} kept`);
  }

  // K11
  if (!isPlainData(after)) fail('K11', 'the state changes on a JSON round trip');

  return broken;
}
