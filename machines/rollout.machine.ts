// The rolling-restart procedure: replace every slot's worker with one of a new generation, never
// retiring an old worker before its replacement is ready.
//
// The machine works on slots, not processes. It asks for a slot to be `replace`d (the reducer
// forks the new worker, or adopts one of the new generation already booting there), hears back
// `rollout.ready` or `rollout.failed` for that slot, and answers `retire` (drain the slot's old
// worker now that the new one serves) or, on failure, aborts and asks for every replacement still
// booting to be stopped.
//
// Its shape is Kubernetes': up to `surge` replacements boot beside the old workers, and up to
// `unavailable` more slots may be worked on by retiring their old worker first (`retireFirst`),
// when the reducer finds the capacity for it. surge 1, unavailable 0 is one slot at a time, each
// replacement ready before its predecessor drains.
//
// It has no timers of its own: each replacement's boot deadline is its worker machine's.
import { setup } from 'xstate';

export interface RolloutInput {
  generation: number;
  /** Slots to replace, in order. */
  slots: number[];
  surge: number;
  unavailable: number;
  /** Why: a new generation (reload) or the same code for a worker that must go (memory, hang). */
  kind: 'reload' | 'replace';
}

export interface RolloutContext {
  generation: number;
  kind: 'reload' | 'replace';
  surge: number;
  unavailable: number;
  total: number;
  /** Slots not started yet. */
  pending: number[];
  /** Slots whose replacement is booting. */
  booting: number[];
  /** Booting slots started with `retireFirst` (at most `unavailable`). */
  early: number[];
  replaced: number;
  failure: { slot: number; reason: string } | null;
}

export type RolloutEvent =
  | { type: 'rollout.start' }
  | { type: 'rollout.ready'; slot: number }
  | { type: 'rollout.failed'; slot: number; reason: string }
  | { type: 'rollout.abort'; reason: string };

/** The effects a rollout can ask for. */
const base = setup({
  types: {
    input: {} as RolloutInput,
    context: {} as RolloutContext,
    events: {} as RolloutEvent,
  },
  actions: {
    // Named effects the reducer carries out.
    replace: (_, _params: { slot: number; retireFirst: boolean }) => {},
    retire: (_, _params: { slot: number }) => {},
    stopReplacement: (_, _params: { slot: number }) => {},
  },
  guards: {
    isBooting: ({ context, event }) =>
      (event.type === 'rollout.ready' || event.type === 'rollout.failed') &&
      context.booting.includes(event.slot),
    isLast: ({ context, event }) =>
      event.type === 'rollout.ready' &&
      context.booting.length === 1 &&
      context.booting[0] === event.slot &&
      context.pending.length === 0,
    isEmpty: ({ context }) => context.total === 0,
  },
});

export const rolloutMachine = base
  .extend({
    actions: {
      /** Start as many slots as surge and unavailability allow. */
      surge: base.enqueueActions(({ context, enqueue }) => {
        const room = Math.max(0, context.surge + context.unavailable - context.booting.length);
        const next = context.pending.slice(0, room);
        if (next.length === 0) return;
        let early = context.early.length;
        const started = next.map((slot) => {
          const retireFirst = early < context.unavailable;
          if (retireFirst) early++;
          return { slot, retireFirst };
        });
        enqueue.assign({
          pending: context.pending.slice(next.length),
          booting: [...context.booting, ...next],
          early: [...context.early, ...started.filter((s) => s.retireFirst).map((s) => s.slot)],
        });
        for (const params of started) enqueue({ type: 'replace', params });
      }),
      completeSlot: base.enqueueActions(({ context, event, enqueue }) => {
        if (event.type !== 'rollout.ready') return;
        enqueue.assign({
          booting: context.booting.filter((slot) => slot !== event.slot),
          early: context.early.filter((slot) => slot !== event.slot),
          replaced: context.replaced + 1,
        });
        enqueue({ type: 'retire', params: { slot: event.slot } });
      }),
      recordFailure: base.assign(({ context, event }) => {
        if (event.type === 'rollout.failed') {
          return {
            failure: { slot: event.slot, reason: event.reason },
            booting: context.booting.filter((slot) => slot !== event.slot),
            early: context.early.filter((slot) => slot !== event.slot),
          };
        }
        if (event.type === 'rollout.abort') return { failure: { slot: -1, reason: event.reason } };
        return {};
      }),
      stopBooting: base.enqueueActions(({ context, enqueue }) => {
        for (const slot of context.booting) enqueue({ type: 'stopReplacement', params: { slot } });
        enqueue.assign({ booting: [], early: [] });
      }),
    },
  })
  .createMachine({
  id: 'rollout',
  context: ({ input }) => ({
    generation: input.generation,
    kind: input.kind,
    // Kubernetes refuses surge 0 with unavailable 0: a rollout that can do nothing.
    surge: input.unavailable > 0 ? Math.max(0, input.surge) : Math.max(1, input.surge),
    unavailable: Math.max(0, input.unavailable),
    total: input.slots.length,
    pending: [...input.slots],
    booting: [],
    early: [],
    replaced: 0,
    failure: null,
  }),
  initial: 'idle',
  states: {
    idle: {
      on: {
        'rollout.start': [
          { guard: 'isEmpty', target: 'done' },
          { target: 'replacing' },
        ],
      },
    },
    replacing: {
      entry: 'surge',
      on: {
        'rollout.ready': [
          { guard: 'isLast', target: 'done', actions: 'completeSlot' },
          { guard: 'isBooting', actions: ['completeSlot', 'surge'] },
        ],
        'rollout.failed': { guard: 'isBooting', target: 'aborted', actions: 'recordFailure' },
        'rollout.abort': { target: 'aborted', actions: 'recordFailure' },
      },
    },
    done: { type: 'final' },
    aborted: { type: 'final', entry: 'stopBooting' },
  },
});

export type RolloutMachine = typeof rolloutMachine;
