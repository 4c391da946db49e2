// The rollout machine, driven only through xstate's pure `initialTransition` / `transition`. It has
// no timers of its own, so each step's named actions (replace, retire, stopReplacement) are the
// whole of what it asks for. After every step the driver checks that at most `surge` replacements
// are booting and that every slot is accounted for exactly once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initialTransition, transition } from 'xstate';
import { getShortestPaths, getStateNodes } from 'xstate/graph';
import { rolloutMachine, type RolloutEvent, type RolloutInput } from '../../machines/rollout.machine.ts';

type Snapshot = ReturnType<typeof initialTransition<typeof rolloutMachine>>[0];
interface Action {
  type: string;
  params?: unknown;
}

class Driver {
  snapshot: Snapshot;
  actions: Action[] = [];
  /** Every replace / retire / stopReplacement asked for so far, in order. */
  readonly log: Action[] = [];

  constructor(readonly input: RolloutInput = { generation: 2, slots: [0, 1, 2], surge: 1, unavailable: 0, kind: 'reload' as const }) {
    const [snapshot, actions] = initialTransition(rolloutMachine, input);
    this.snapshot = snapshot;
    this.apply(actions as Action[]);
  }

  get state(): string {
    const value = this.snapshot.value as string | Record<string, string>;
    return typeof value === 'string' ? value : Object.entries(value).map(([k, v]) => `${k}.${v}`).join();
  }

  send(event: RolloutEvent): this {
    const [snapshot, actions] = transition(rolloutMachine, this.snapshot, event);
    this.snapshot = snapshot;
    this.apply(actions as Action[]);
    return this;
  }

  /** The named effects of the last step, in order. */
  effects(): Action[] {
    return this.actions.filter((a) => !a.type.startsWith('xstate.')).map((a) => ({ type: a.type, params: a.params }));
  }

  private apply(actions: Action[]): void {
    this.actions = actions;
    this.log.push(...this.effects());
    const { context } = this.snapshot;
    // Until a reload's generation is proven, a warming replacement leaves room for one more boot (issue #22).
    const proving = context.kind === 'reload' && !context.proven && context.warming.length > 0 ? 1 : 0;
    assert.ok(context.booting.length <= context.surge + context.unavailable + proving, `booting ${context.booting} over surge + unavailable${proving ? ' + 1 while proving' : ''}`);
    for (const slot of context.warming) assert.ok(context.booting.includes(slot), `slot ${slot} warming but not booting`);
    assert.ok(context.early.length <= context.unavailable, `${context.early.length} slots retiring first, over ${context.unavailable}`);
    if (this.state === 'replacing') assert.ok(context.booting.length > 0, 'replacing with nothing booting is stuck');
    // On trial, only the canary's slot is worked on.
    if (this.state.startsWith('canary')) assert.ok(context.booting.length <= 1, `a canary with ${context.booting} booting`);
    const accounted = [...context.pending, ...context.booting];
    assert.equal(new Set(accounted).size, accounted.length, 'a slot is both pending and booting');
    // Every replace is answered by exactly one retire or stopReplacement, or is still booting.
    const replaced = this.log.filter((a) => a.type === 'replace').map(slotOf);
    const answered = this.log.filter((a) => a.type === 'retire' || a.type === 'stopReplacement').map(slotOf);
    for (const slot of answered) assert.ok(replaced.includes(slot), `slot ${slot} answered but never replaced`);
  }
}

const slotOf = (action: Action): number => (action.params as { slot: number }).slot;
const replace = (slot: number, retireFirst = false, warm = true) => ({ type: 'replace', params: { slot, retireFirst, warm } });
const retire = (slot: number) => ({ type: 'retire', params: { slot } });
const stop = (slot: number) => ({ type: 'stopReplacement', params: { slot } });
const release = (slot: number) => ({ type: 'release', params: { slot } });

describe('rollout machine: surge 1', () => {
  it('waits in idle for the start, asking for nothing', () => {
    const r = new Driver();
    assert.equal(r.state, 'idle');
    assert.deepEqual(r.effects(), []);
    assert.deepEqual(r.snapshot.context.pending, [0, 1, 2]);
  });

  it('start replaces the first slot only', () => {
    const r = new Driver().send({ type: 'rollout.start' });
    assert.equal(r.state, 'replacing');
    assert.deepEqual(r.effects(), [replace(0)]);
    assert.deepEqual(r.snapshot.context.booting, [0]);
  });

  it('a ready replacement retires its slot’s old worker, then starts the next slot', () => {
    const r = new Driver().send({ type: 'rollout.start' }).send({ type: 'rollout.ready', slot: 0 });
    assert.equal(r.state, 'replacing');
    assert.deepEqual(r.effects(), [retire(0), replace(1)]);
    assert.equal(r.snapshot.context.replaced, 1);
  });

  it('the last ready retires and finishes the rollout', () => {
    const r = new Driver()
      .send({ type: 'rollout.start' })
      .send({ type: 'rollout.ready', slot: 0 })
      .send({ type: 'rollout.ready', slot: 1 })
      .send({ type: 'rollout.ready', slot: 2 });
    assert.equal(r.state, 'done');
    assert.equal(r.snapshot.status, 'done');
    assert.deepEqual(r.effects(), [retire(2)]);
    assert.equal(r.snapshot.context.replaced, 3);
    assert.equal(r.snapshot.context.failure, null);
    assert.deepEqual(r.log, [replace(0), retire(0), replace(1), retire(1), replace(2), retire(2)]);
  });

  it('a failed boot aborts, recording which slot failed and why', () => {
    const r = new Driver().send({ type: 'rollout.start' }).send({ type: 'rollout.ready', slot: 0 });
    r.send({ type: 'rollout.failed', slot: 1, reason: 'exited with code 1' });
    assert.equal(r.state, 'aborted');
    assert.equal(r.snapshot.status, 'done');
    assert.deepEqual(r.snapshot.context.failure, { slot: 1, reason: 'exited with code 1' });
    assert.deepEqual(r.effects(), [], 'the failed slot is not stopped again, and nothing else was booting');
    assert.deepEqual(r.snapshot.context.pending, [2], 'slot 2 was never started');
  });

  it('ready or failed for a slot that is not booting is ignored', () => {
    const r = new Driver().send({ type: 'rollout.start' });
    const before = r.snapshot;
    for (const event of [
      { type: 'rollout.ready', slot: 1 },
      { type: 'rollout.ready', slot: 9 },
      { type: 'rollout.failed', slot: 2, reason: 'not mine' },
    ] as RolloutEvent[]) {
      r.send(event);
      assert.equal(r.state, 'replacing');
      assert.deepEqual(r.effects(), []);
      assert.deepEqual(r.snapshot.context, before.context);
    }
    // A slot already replaced is no longer booting either.
    r.send({ type: 'rollout.ready', slot: 0 }).send({ type: 'rollout.ready', slot: 0 });
    assert.deepEqual(r.effects(), []);
    assert.equal(r.snapshot.context.replaced, 1);
  });

  it('rollout.abort aborts, stopping the replacement still booting', () => {
    const r = new Driver().send({ type: 'rollout.start' }).send({ type: 'rollout.abort', reason: 'shutdown' });
    assert.equal(r.state, 'aborted');
    assert.equal(r.snapshot.status, 'done');
    assert.deepEqual(r.effects(), [stop(0)]);
    assert.deepEqual(r.snapshot.context.failure, { slot: -1, reason: 'shutdown' });
    assert.deepEqual(r.snapshot.context.booting, []);
  });

  it('a finished rollout ignores everything', () => {
    const r = new Driver({ generation: 2, slots: [0], surge: 1, unavailable: 0, kind: 'reload' as const }).send({ type: 'rollout.start' }).send({ type: 'rollout.ready', slot: 0 });
    assert.equal(r.state, 'done');
    for (const event of [{ type: 'rollout.abort', reason: 'late' }, { type: 'rollout.start' }] as RolloutEvent[]) {
      r.send(event);
      assert.equal(r.state, 'done');
      assert.deepEqual(r.effects(), []);
    }
  });
});

describe('rollout machine: surge 2', () => {
  const input = { generation: 3, slots: [0, 1, 2], surge: 2, unavailable: 0, kind: 'reload' as const };

  it('start replaces two slots at once', () => {
    const r = new Driver(input).send({ type: 'rollout.start' });
    assert.deepEqual(r.effects(), [replace(0), replace(1)]);
    assert.deepEqual(r.snapshot.context.booting, [0, 1]);
  });

  it('readiness out of order still retires the right slot and refills the surge', () => {
    const r = new Driver(input).send({ type: 'rollout.start' }).send({ type: 'rollout.ready', slot: 1 });
    assert.deepEqual(r.effects(), [retire(1), replace(2)]);
    assert.deepEqual(r.snapshot.context.booting, [0, 2]);
    r.send({ type: 'rollout.ready', slot: 2 });
    assert.equal(r.state, 'replacing');
    assert.deepEqual(r.effects(), [retire(2)]);
    r.send({ type: 'rollout.ready', slot: 0 });
    assert.equal(r.state, 'done');
    assert.deepEqual(r.effects(), [retire(0)]);
  });

  it('a failure stops every replacement still booting, but not the failed one', () => {
    const r = new Driver(input).send({ type: 'rollout.start' }).send({ type: 'rollout.failed', slot: 0, reason: 'ready timeout' });
    assert.equal(r.state, 'aborted');
    assert.deepEqual(r.effects(), [stop(1)]);
    assert.deepEqual(r.snapshot.context.failure, { slot: 0, reason: 'ready timeout' });
  });

  it('abort stops every replacement still booting', () => {
    const r = new Driver(input).send({ type: 'rollout.start' }).send({ type: 'rollout.abort', reason: 'superseded' });
    assert.equal(r.state, 'aborted');
    assert.deepEqual(r.effects(), [stop(0), stop(1)]);
  });

  it('a surge wider than the slots replaces them all at once', () => {
    const r = new Driver({ generation: 3, slots: [4, 5], surge: 5, unavailable: 0, kind: 'reload' as const }).send({ type: 'rollout.start' });
    assert.deepEqual(r.effects(), [replace(4), replace(5)]);
  });

  it('a surge below 1 is taken as 1', () => {
    const r = new Driver({ generation: 3, slots: [0, 1], surge: 0, unavailable: 0, kind: 'reload' as const }).send({ type: 'rollout.start' });
    assert.deepEqual(r.effects(), [replace(0)]);
  });
});

describe('rollout machine: no slots', () => {
  it('start goes straight to done, asking for nothing', () => {
    const r = new Driver({ generation: 2, slots: [], surge: 1, unavailable: 0, kind: 'reload' as const }).send({ type: 'rollout.start' });
    assert.equal(r.state, 'done');
    assert.equal(r.snapshot.status, 'done');
    assert.deepEqual(r.effects(), []);
  });
});

describe('rollout machine: maxUnavailable', () => {
  it('works on surge + unavailable slots at once, the first `unavailable` of them retiring first', () => {
    const r = new Driver({ generation: 2, slots: [0, 1, 2, 3], surge: 1, unavailable: 2, kind: 'reload' as const }).send({ type: 'rollout.start' });
    assert.deepEqual(r.effects(), [replace(0, true), replace(1, true), replace(2, false)]);
    r.send({ type: 'rollout.ready', slot: 0 });
    assert.deepEqual(r.effects(), [{ type: 'retire', params: { slot: 0 } }, replace(3, true)]);
  });

  it('surge 0 is allowed only with unavailability: then every slot retires first', () => {
    const r = new Driver({ generation: 2, slots: [0, 1], surge: 0, unavailable: 1, kind: 'reload' as const }).send({ type: 'rollout.start' });
    assert.deepEqual(r.effects(), [replace(0, true)]);
  });
});

// Issue #22: --min-ready proves the generation, not each worker.
describe('rollout machine: min-ready proves the generation', () => {
  it('a reload warms its replacements until one served out min-ready; the later ones do not warm', () => {
    const r = new Driver().send({ type: 'rollout.start' });
    assert.deepEqual(r.effects(), [replace(0, false, true)]);
    r.send({ type: 'rollout.ready', slot: 0, warmed: true });
    assert.equal(r.snapshot.context.proven, true);
    assert.deepEqual(r.effects(), [retire(0), replace(1, false, false)]);
    r.send({ type: 'rollout.ready', slot: 1 });
    assert.deepEqual(r.effects(), [retire(1), replace(2, false, false)]);
  });

  it('a ready replacement that served no min-ready period (an adopted respawn) proves nothing', () => {
    const r = new Driver().send({ type: 'rollout.start' }).send({ type: 'rollout.ready', slot: 0 });
    assert.equal(r.snapshot.context.proven, false);
    assert.deepEqual(r.effects(), [retire(0), replace(1, false, true)]);
  });

  it('with surge 2 both first replacements warm; the first to serve it out proves the rest', () => {
    const r = new Driver({ generation: 3, slots: [0, 1, 2, 3], surge: 2, unavailable: 0, kind: 'reload' }).send({ type: 'rollout.start' });
    assert.deepEqual(r.effects(), [replace(0, false, true), replace(1, false, true)]);
    r.send({ type: 'rollout.ready', slot: 1, warmed: true });
    // Slot 0's replacement was started before the proof: it need not serve out its own period now,
    // but it is not counted until it is ready, and failing its boot still aborts.
    assert.deepEqual(r.effects(), [release(0), retire(1), replace(2, false, false)]);
    r.send({ type: 'rollout.failed', slot: 0, reason: 'exited with code 1' });
    assert.equal(r.state, 'aborted');
    assert.deepEqual(r.effects(), [stop(2)]);
  });

  // Issue #22 part 3: the proof overlaps the next boot.
  it('while the first replacement warms, the next slot’s boots beside it; nothing is retired before the proof', () => {
    const r = new Driver().send({ type: 'rollout.start' });
    assert.deepEqual(r.effects(), [replace(0, false, true)]);
    r.send({ type: 'rollout.warming', slot: 0 });
    assert.deepEqual(r.effects(), [replace(1, false, true)], 'a warming replacement leaves room for one more');
    assert.deepEqual(r.snapshot.context.booting, [0, 1]);
    r.send({ type: 'rollout.warming', slot: 1 });
    assert.deepEqual(r.effects(), [], 'at most one more while the generation is unproven');
    r.send({ type: 'rollout.ready', slot: 0, warmed: true });
    assert.equal(r.snapshot.context.proven, true);
    assert.deepEqual(r.effects(), [release(1), retire(0)], 'proven: the one beside it counts once ready, and no third boots yet');
    r.send({ type: 'rollout.ready', slot: 1 });
    assert.deepEqual(r.effects(), [retire(1), replace(2, false, false)]);
    r.send({ type: 'rollout.warming', slot: 2 });
    assert.deepEqual(r.effects(), [], 'proven: a warming replacement (none should) makes no room');
  });

  it('the first replacement dying within its period aborts and stops the one booting beside it; nothing was retired', () => {
    const r = new Driver().send({ type: 'rollout.start' }).send({ type: 'rollout.warming', slot: 0 });
    assert.deepEqual(r.effects(), [replace(1, false, true)]);
    r.send({ type: 'rollout.failed', slot: 0, reason: 'exited with code 0 within its 1000ms min-ready period' });
    assert.equal(r.state, 'aborted');
    assert.deepEqual(r.effects(), [stop(1)]);
    assert.deepEqual(r.log.filter((a) => a.type === 'retire'), []);
  });

  it('a replace rollout never warms, so it never boots beyond its room', () => {
    const r = new Driver({ generation: 1, slots: [0, 1], surge: 1, unavailable: 0, kind: 'replace' }).send({ type: 'rollout.start' });
    r.send({ type: 'rollout.warming', slot: 0 });
    assert.deepEqual(r.effects(), []);
  });

  it('a canary that served out min-ready proves the generation for the slots after it', () => {
    const r = new Driver({ generation: 2, slots: [0, 1], surge: 1, unavailable: 0, kind: 'reload', canaryMs: 500 }).send({ type: 'rollout.start' });
    assert.deepEqual(r.effects(), [replace(0, false, true)]);
    r.send({ type: 'rollout.ready', slot: 0, warmed: true });
    assert.equal(r.state, 'canary.serving');
    r.send({ type: 'xstate.after.canaryWindow.rollout.canary.serving' } as unknown as RolloutEvent);
    r.send({ type: 'rollout.verdict', pass: true, reason: 'fine' });
    assert.equal(r.state, 'replacing');
    assert.deepEqual(r.effects(), [retire(0), replace(1, false, false)]);
  });

  it('a replace rollout runs code its slot already serves: nothing warms', () => {
    const r = new Driver({ generation: 1, slots: [2], surge: 1, unavailable: 0, kind: 'replace' }).send({ type: 'rollout.start' });
    assert.deepEqual(r.effects(), [replace(2, false, false)]);
  });
});

describe('rollout machine: graph', () => {
  // Every state node of the machine, written out: a new state must be added here on purpose.
  const EXPECTED = [
    'rollout.idle',
    'rollout.canary',
    'rollout.canary.booting',
    'rollout.canary.serving',
    'rollout.canary.judging',
    'rollout.replacing',
    'rollout.done',
    'rollout.aborted',
  ];
  const withCanary = process.env.ZD_NO_CANARY_GRAPH ? 0 : 500;
  const input = { generation: 2, slots: [0, 1, 2], surge: 2, unavailable: 0, kind: 'reload' as const, canaryMs: withCanary };
  const EVENTS: RolloutEvent[] = [
    { type: 'rollout.verdict', pass: true, reason: 'fine' },
    { type: 'rollout.verdict', pass: false, reason: 'canary failed: 5xx' },
    { type: 'xstate.after.canaryWindow.rollout.canary.serving' } as unknown as RolloutEvent,
    { type: 'xstate.after.canaryJudge.rollout.canary.judging' } as unknown as RolloutEvent,
    { type: 'rollout.start' },
    ...input.slots.flatMap((slot): RolloutEvent[] => [
      { type: 'rollout.warming', slot },
      { type: 'rollout.ready', slot },
      { type: 'rollout.ready', slot, warmed: true },
      { type: 'rollout.failed', slot, reason: 'boot failed' },
    ]),
    { type: 'rollout.abort', reason: 'shutdown' },
  ];
  const paths = () => getShortestPaths(rolloutMachine, { input, events: EVENTS });

  it('the expected list is exactly the machine’s state nodes', () => {
    assert.deepEqual(getStateNodes(rolloutMachine).map((n) => n.id).sort(), [...EXPECTED].sort());
  });

  it('every state is reachable', () => {
    const reached = new Set<string>();
    for (const p of paths()) {
      const value = p.state.value as string | Record<string, string>;
      if (typeof value === 'string') reached.add(`rollout.${value}`);
      else for (const [parent, child] of Object.entries(value)) reached.add(`rollout.${parent}`).add(`rollout.${parent}.${child}`);
    }
    assert.deepEqual(EXPECTED.filter((id) => !reached.has(id)), []);
  });

  it('every shortest path keeps the surge and slot invariants when replayed', () => {
    const all = paths();
    assert.ok(all.length > 10, `only ${all.length} paths`);
    for (const path of all) {
      const r = new Driver(input);
      // The first step is xstate's own init event; the machine's event types do not name it.
      for (const { event } of path.steps) if ((event.type as string) !== 'xstate.init') r.send(event);
      assert.deepEqual(r.snapshot.value, path.state.value);
      if (r.state === 'done') {
        // A finished rollout replaced and retired every slot exactly once.
        assert.deepEqual(r.log.filter((a) => a.type === 'retire').map(slotOf).sort(), input.slots);
        assert.deepEqual(r.log.filter((a) => a.type === 'replace').map(slotOf).sort(), input.slots);
      }
      if (r.state === 'aborted') {
        // Nothing is left booting: every replacement was retired, failed, or stopped.
        const { failure } = r.snapshot.context;
        assert.ok(failure);
        const settled = r.log.filter((a) => a.type === 'retire' || a.type === 'stopReplacement').map(slotOf);
        if (failure.slot >= 0) settled.push(failure.slot);
        assert.deepEqual(settled.sort(), r.log.filter((a) => a.type === 'replace').map(slotOf).sort());
      }
    }
  });
});
