// Who may receive a new connection: a decision of the core, derived from its state after every
// step and handed to the socket layer as data (a `route` effect), which routes only inside it.
//
// A worker is routable when zd counts it ready — it listens wherever it must, has said `ready`
// under --ready message, and has served out its min-ready period — and its generation serves:
// the serving one or older (superseded workers serve on until their turn to drain), or the
// rollout's own (its replacements, and a canary from the start of its window). A worker of a
// generation whose rollout aborted gets no other connection while it waits to drain or to be
// replaced, unless no worker of a serving generation is ready (then it serves rather than
// nobody), or zd is stopping. A worker told to drain or stop leaves the set in the step that decides it, because
// it is no longer in the `listening` state; the effect goes first in that step's effects, ahead of
// its disconnect.
//
// Warming workers (min-ready) get nothing: min-ready proves the process stays up after listening
// before any client depends on it, and a canary's share starts with its measured window, not
// before it.
import type { Draft } from './draft.ts';
import type { WorkerId } from './events.ts';
import { isReady, servingGeneration } from './queries.ts';
import type { PrimaryState, Routing } from './state.ts';

/**
 * The routable set, and for --sticky each slot's worker where it is routable (null where not), so
 * that a client keeps its slot across reloads.
 */
export function routing(state: PrimaryState): Routing {
  const workers = routableWorkers(state);
  const slots = state.slots.map((slot) => (slot.worker !== null && workers.includes(slot.worker) ? slot.worker : null));
  return { workers, slots };
}

function routableWorkers(state: PrimaryState): WorkerId[] {
  if (state.phase === 'exited' || state.ports === 'closed') return [];
  const serving = servingGeneration(state);
  // A replacement rollout (memory, heartbeat, an aborted reload's slots) runs no new generation.
  const rolling = state.rollout?.context.kind === 'reload' ? state.rollout.context.generation : null;
  const ready: WorkerId[] = [];
  const out: WorkerId[] = [];
  for (const worker of state.workers) {
    if (!isReady(worker) || !worker.machine.context.connected) continue;
    ready.push(worker.id);
    if (worker.generation <= serving || worker.generation === rolling) out.push(worker.id);
  }
  // A stop (whose rollout aborted for it, not for its code) serves with every ready worker until
  // they drain; and an aborted generation's worker serves rather than nobody, until the old
  // generation's replacements are ready.
  return state.phase === 'stopping' || out.length === 0 ? ready : out;
}

/** Ends a step: a changed set goes out first, before anything else this step decided. */
export function routeStep(d: Draft): void {
  const base = d.base;
  // Nothing it depends on changed: most frequent events (samples, heartbeats) skip the walk.
  if (d.s.workers === base.workers && d.s.slots === base.slots && d.s.rollout === base.rollout && d.s.completed === base.completed && d.s.phase === base.phase && d.s.ports === base.ports) return;
  const next = routing(d.s);
  if (sameRouting(next, d.s.routing)) return;
  d.s.routing = next;
  d.effects.unshift({ type: 'route', workers: next.workers, slots: next.slots });
  // For a journal's reader (ZD_LOG_LEVEL=debug zd replay): the live run carries it out silently.
  const who = next.workers.length === 0 ? 'no worker' : `worker${next.workers.length > 1 ? 's' : ''} ${next.workers.join(', ')}`;
  d.log('debug', 'ZD_ROUTE', `new connections go to ${who}`, { workers: next.workers, slots: next.slots });
}

export function sameRouting(a: Routing, b: Routing): boolean {
  return sameIds(a.workers, b.workers) && sameIds(a.slots, b.slots);
}

function sameIds(a: readonly (WorkerId | null)[], b: readonly (WorkerId | null)[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
