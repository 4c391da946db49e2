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
// A reload may start with a canary (`canaryMs` > 0): its first replacement boots alone and, once
// ready, serves its share of real traffic beside every old worker (its predecessor does not drain)
// for the canary window; then the reducer compares the new generation's figures with the old
// one's and answers `rollout.verdict`. A pass goes on as a rollout without a canary; a fail
// aborts, and the old generation serves on at full capacity. Too few requests to judge extend
// the window (at most CANARY_EXTENSIONS times); still too few, or no figures at all, is
// "inconclusive", which aborts unless the rollout was told to proceed on no evidence. Every canary
// wait has a deadline: each window, then a bounded wait for the figures.
//
// --min-ready proves the generation, not each worker: a reload's replacements serve out the
// min-ready period (`warm`) until one of them has (`rollout.ready` with `warmed`: the generation is
// `proven`). Then every replacement still booting or warming is `release`d: it counts as soon as it
// is ready, and so do the ones started after. With maxUnavailable 0 no old worker is retired before
// that proof, so a version that dies right after it starts listening still aborts before any old
// worker drains, for one min-ready period per reload rather than one per slot.
//
// The proof overlaps the next boot: while the generation is unproven, a replacement that warms
// (`rollout.warming`: it has booted and listens) does not count against the room, so one more
// slot's replacement may boot beside it; at most one such extra process, and only until the proof.
// That one warms too until the proof (it is not counted, nothing it replaces drains), then counts
// once ready. A 2-slot reload costs about max(boot, min-ready) + boot rather than boot + min-ready
// + boot. Should the warming one die, the rollout aborts and stops both. A `replace` rollout
// (memory, heartbeat, an aborted reload's slots put back) runs the code its slot already serves,
// proven when it rolled out: its replacements never warm.
//
// Apart from the canary's, it has no timers of its own: each replacement's boot deadline is its
// worker machine's.
import { and, setup } from 'xstate';

export interface RolloutInput {
  generation: number;
  /** Slots to replace, in order. */
  slots: number[];
  surge: number;
  unavailable: number;
  /** Why: a new generation (reload) or the same code for a worker that must go (memory, hang). */
  kind: 'reload' | 'replace';
  /** Canary window (0: no canary). */
  canaryMs?: number;
  /** What a canary judged on too little evidence does: abort (the default) or proceed. */
  canaryInconclusive?: 'abort' | 'proceed';
}

/** How long the figures may take to arrive once the window is over. */
export const CANARY_JUDGE_MS = 5_000;
/** How many times a canary's window may be extended for want of requests before it is judged as it stands. */
export const CANARY_EXTENSIONS = 3;

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
  /** Booting slots whose replacement listens and serves out --min-ready. */
  warming: number[];
  replaced: number;
  failure: { slot: number; reason: string } | null;
  canaryMs: number;
  /** The canary's slot, once one is started. */
  canarySlot: number | null;
  /** Canary windows opened so far (1 + extensions). */
  canaryWindows: number;
  canaryInconclusive: 'abort' | 'proceed';
  /** One of its replacements has served out --min-ready: the ones started from now on need not. */
  proven: boolean;
}

export type RolloutEvent =
  | { type: 'rollout.start' }
  /** The slot's replacement is ready; `warmed`: it served out a min-ready period to get there. */
  | { type: 'rollout.ready'; slot: number; warmed?: boolean }
  /** The slot's replacement listens and has begun its min-ready period. */
  | { type: 'rollout.warming'; slot: number }
  | { type: 'rollout.failed'; slot: number; reason: string }
  | { type: 'rollout.abort'; reason: string }
  /**
   * The reducer's judgement of the canary's figures. `extend`: too few requests to judge yet, and
   * another window may be opened (the machine bounds how many).
   */
  | { type: 'rollout.verdict'; pass: boolean; reason: string; extend?: boolean };

/** Whether a replacement started now must serve out --min-ready: a reload's, until its generation is proven. */
function mustWarm(context: RolloutContext): boolean {
  return context.kind === 'reload' && !context.proven;
}

/**
 * Replacements that may boot now. A warming one has shown that it boots and listens: until the
 * proof, it leaves room for one more beside it, so that the next boot overlaps the proof.
 */
export function rolloutRoom(context: RolloutContext): number {
  const proving = mustWarm(context) && context.warming.length > 0 ? 1 : 0;
  return Math.max(0, context.surge + context.unavailable + proving - context.booting.length);
}

/** The effects a rollout can ask for. */
const base = setup({
  types: {
    input: {} as RolloutInput,
    context: {} as RolloutContext,
    events: {} as RolloutEvent,
  },
  actions: {
    // Named effects the reducer carries out.
    replace: (_, _params: { slot: number; retireFirst: boolean; warm: boolean }) => {},
    /** The generation is proven: the slot's replacement need not serve out its period. */
    release: (_, _params: { slot: number }) => {},
    retire: (_, _params: { slot: number }) => {},
    stopReplacement: (_, _params: { slot: number }) => {},
    // Canary measurements: switched on in every serving worker for the window, then collected.
    measureStart: () => {},
    measureCollect: () => {},
  },
  guards: {
    isBooting: ({ context, event }) =>
      (event.type === 'rollout.ready' || event.type === 'rollout.failed' || event.type === 'rollout.warming') &&
      context.booting.includes(event.slot),
    isLast: ({ context, event }) =>
      event.type === 'rollout.ready' &&
      context.booting.length === 1 &&
      context.booting[0] === event.slot &&
      context.pending.length === 0,
    isEmpty: ({ context }) => context.total === 0,
    hasCanary: ({ context }) => context.canaryMs > 0,
    isCanary: ({ context, event }) =>
      (event.type === 'rollout.ready' || event.type === 'rollout.failed') && event.slot === context.canarySlot,
    canaryWasLast: ({ context }) => context.pending.length === 0,
    passed: ({ event }) => event.type === 'rollout.verdict' && event.pass,
    mayExtend: ({ context, event }) => event.type === 'rollout.verdict' && event.extend === true && context.canaryWindows <= CANARY_EXTENSIONS,
    proceedsInconclusive: ({ context }) => context.canaryInconclusive === 'proceed',
  },
  delays: {
    canaryWindow: ({ context }) => context.canaryMs,
    canaryJudge: CANARY_JUDGE_MS,
  },
});

export const rolloutMachine = base
  .extend({
    actions: {
      /** Start as many slots as surge and unavailability allow. */
      surge: base.enqueueActions(({ context, enqueue }) => {
        const room = rolloutRoom(context);
        const next = context.pending.slice(0, room);
        if (next.length === 0) return;
        let early = context.early.length;
        const warm = mustWarm(context);
        const started = next.map((slot) => {
          const retireFirst = early < context.unavailable;
          if (retireFirst) early++;
          return { slot, retireFirst, warm };
        });
        enqueue.assign({
          pending: context.pending.slice(next.length),
          booting: [...context.booting, ...next],
          early: [...context.early, ...started.filter((s) => s.retireFirst).map((s) => s.slot)],
        });
        for (const params of started) enqueue({ type: 'replace', params });
      }),
      /** A replacement that served out min-ready proves its generation for the rest of the rollout. */
      noteProof: base.enqueueActions(({ context, event, enqueue }) => {
        if (context.proven || event.type !== 'rollout.ready' || event.warmed !== true) return;
        enqueue.assign({ proven: true, warming: [] });
        for (const slot of context.booting) if (slot !== event.slot) enqueue({ type: 'release', params: { slot } });
      }),
      noteWarming: base.assign({
        warming: ({ context, event }) =>
          event.type === 'rollout.warming' && !context.warming.includes(event.slot) ? [...context.warming, event.slot] : context.warming,
      }),
      completeSlot: base.enqueueActions(({ context, event, enqueue }) => {
        if (event.type !== 'rollout.ready') return;
        enqueue.assign({
          booting: context.booting.filter((slot) => slot !== event.slot),
          early: context.early.filter((slot) => slot !== event.slot),
          warming: context.warming.filter((slot) => slot !== event.slot),
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
            warming: context.warming.filter((slot) => slot !== event.slot),
          };
        }
        if (event.type === 'rollout.abort') return { failure: { slot: -1, reason: event.reason } };
        return {};
      }),
      /** The canary: the first pending slot's replacement, alone, its predecessor kept. */
      startCanary: base.enqueueActions(({ context, enqueue }) => {
        const slot = context.pending[0]!;
        enqueue.assign({ pending: context.pending.slice(1), booting: [slot], canarySlot: slot });
        enqueue({ type: 'replace', params: { slot, retireFirst: false, warm: mustWarm(context) } });
      }),
      /** The canary passed: it takes its slot, and its predecessor drains. */
      completeCanary: base.enqueueActions(({ context, enqueue }) => {
        const slot = context.canarySlot!;
        enqueue.assign({ booting: context.booting.filter((s) => s !== slot), replaced: context.replaced + 1 });
        enqueue({ type: 'retire', params: { slot } });
      }),
      recordVerdict: base.assign(({ event }) =>
        event.type === 'rollout.verdict' && !event.pass ? { failure: { slot: -2, reason: event.reason } } : {},
      ),
      recordNoFigures: base.assign({
        failure: { slot: -2, reason: `canary inconclusive: no figures within ${CANARY_JUDGE_MS}ms of the window's end` },
      }),
      stopBooting: base.enqueueActions(({ context, enqueue }) => {
        for (const slot of context.booting) enqueue({ type: 'stopReplacement', params: { slot } });
        enqueue.assign({ booting: [], early: [], warming: [] });
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
    warming: [],
    replaced: 0,
    failure: null,
    canaryMs: input.kind === 'reload' ? Math.max(0, input.canaryMs ?? 0) : 0,
    canarySlot: null,
    canaryWindows: 0,
    canaryInconclusive: input.canaryInconclusive ?? 'abort',
    proven: false,
  }),
  initial: 'idle',
  states: {
    idle: {
      on: {
        'rollout.start': [
          { guard: 'isEmpty', target: 'done' },
          { guard: 'hasCanary', target: 'canary' },
          { target: 'replacing' },
        ],
      },
    },
    replacing: {
      entry: 'surge',
      on: {
        'rollout.ready': [
          { guard: 'isLast', target: 'done', actions: ['noteProof', 'completeSlot'] },
          { guard: 'isBooting', actions: ['noteProof', 'completeSlot', 'surge'] },
        ],
        'rollout.warming': { guard: 'isBooting', actions: ['noteWarming', 'surge'] },
        'rollout.failed': { guard: 'isBooting', target: 'aborted', actions: 'recordFailure' },
        'rollout.abort': { target: 'aborted', actions: 'recordFailure' },
      },
    },
    canary: {
      initial: 'booting',
      on: {
        'rollout.failed': { guard: 'isCanary', target: 'aborted', actions: 'recordFailure' },
        'rollout.abort': { target: 'aborted', actions: 'recordFailure' },
      },
      states: {
        booting: {
          entry: 'startCanary',
          on: { 'rollout.ready': { guard: 'isCanary', target: 'serving', actions: 'noteProof' } },
        },
        // Beside every old worker, measured with them (again, for each extension).
        serving: {
          entry: ['measureStart', base.assign({ canaryWindows: ({ context }) => context.canaryWindows + 1 })],
          after: { canaryWindow: 'judging' },
        },
        judging: {
          entry: 'measureCollect',
          on: {
            'rollout.verdict': [
              // Too few requests yet: another window, measured on top of the ones before.
              { guard: 'mayExtend', target: 'serving' },
              { guard: and(['passed', 'canaryWasLast']), target: '#rollout.done', actions: 'completeCanary' },
              { guard: 'passed', target: '#rollout.replacing', actions: 'completeCanary' },
              { target: '#rollout.aborted', actions: 'recordVerdict' },
            ],
          },
          // The figures never came: inconclusive, and no evidence lets a rollout proceed only
          // when told to (--canary-inconclusive proceed).
          after: {
            canaryJudge: [
              { guard: and(['proceedsInconclusive', 'canaryWasLast']), target: '#rollout.done', actions: 'completeCanary' },
              { guard: 'proceedsInconclusive', target: '#rollout.replacing', actions: 'completeCanary' },
              { target: '#rollout.aborted', actions: 'recordNoFigures' },
            ],
          },
        },
      },
    },
    done: { type: 'final' },
    aborted: { type: 'final', entry: 'stopBooting' },
  },
});

export type RolloutMachine = typeof rolloutMachine;
