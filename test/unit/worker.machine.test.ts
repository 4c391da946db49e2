// The worker machine, driven only through xstate's pure `initialTransition` / `transition`: no actor
// and no real timer. A delayed transition comes back as an `xstate.raise` action with a `delay`; the
// driver below keeps those as pending timers (as the runtime would), drops them on `xstate.cancel`,
// and fires them by hand. After every step it checks the machine's deadline invariant: a worker that
// is waiting for something always has exactly one deadline pending, and a dead one has none.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { initialTransition, transition } from 'xstate';
import { getShortestPaths, getStateNodes } from 'xstate/graph';
import {
  WORKER_OUTCOMES,
  workerMachine,
  type WorkerEvent,
  type WorkerInput,
} from '../../machines/worker.machine.ts';

type Snapshot = ReturnType<typeof initialTransition<typeof workerMachine>>[0];
type Delay = 'readyTimeout' | 'drainTimeout' | 'killTimeout' | 'stableAfter' | 'minReady';
interface Action {
  type: string;
  params?: unknown;
}
interface Raise {
  event: { type: string };
  id: string;
  delay?: number;
}

// Distinct values, so each deadline's delay says which timeout it came from.
const timeouts = { readyMs: 1000, drainMs: 2000, killMs: 300, stableMs: 4000 };
const input = (overrides: Partial<WorkerInput> = {}): WorkerInput => ({
  id: 7,
  slot: 0,
  generation: 1,
  readyOn: 'listening',
  minReadyMs: 0,
  timeouts,
  ...overrides,
});

/** 'booting.forking', 'stopping', 'dead.lost': the active leaf, as a dotted path. */
function leaf(value: unknown): string {
  if (typeof value === 'string') return value;
  const [key, child] = Object.entries(value as Record<string, unknown>)[0]!;
  return `${key}.${leaf(child)}`;
}

/** How many deadlines a worker in this state must have pending. */
function expectedDeadlines(snapshot: Snapshot): number {
  if (snapshot.matches('dead')) return 0;
  const state = leaf(snapshot.value);
  if (state === 'listening.stable') return 0;
  // listening.fresh waits for stability, not for the process: still exactly one timer.
  return 1;
}

class Driver {
  snapshot: Snapshot;
  /** The actions of the last step, xstate's own included. */
  actions: Action[] = [];
  readonly pending = new Map<string, Raise>();
  readonly trail: string[] = [];

  constructor(workerInput: WorkerInput = input()) {
    const [snapshot, actions] = initialTransition(workerMachine, workerInput);
    this.snapshot = snapshot;
    this.apply('init', actions as Action[]);
  }

  get state(): string {
    return leaf(this.snapshot.value);
  }

  send(event: WorkerEvent | { type: string }): this {
    const [snapshot, actions] = transition(workerMachine, this.snapshot, event as WorkerEvent);
    this.snapshot = snapshot;
    this.apply(event.type, actions as Action[]);
    return this;
  }

  /** Fires the one pending timer of this delay, as the runtime would when it expires. */
  fire(delay: Delay): this {
    const due = [...this.pending.values()].filter((r) => r.id.startsWith(`xstate.after.${delay}.`));
    assert.equal(due.length, 1, `one pending ${delay} in ${this.state}, got ${due.length}`);
    return this.fireEvent(due[0]!.event);
  }

  fireEvent(event: { type: string }): this {
    assert.ok(this.pending.has(event.type), `${event.type} fired in ${this.state} but is not pending`);
    this.pending.delete(event.type);
    return this.send(event);
  }

  /** The named effects of the last step (kill, sendShutdown, disconnect), in order. */
  effects(): Action[] {
    return this.actions
      .filter((a) => !a.type.startsWith('xstate.'))
      .map((a) => (a.params === undefined ? { type: a.type } : { type: a.type, params: a.params }));
  }

  raises(): Raise[] {
    return this.actions.filter((a) => a.type === 'xstate.raise').map((a) => a.params as Raise);
  }

  private apply(label: string, actions: Action[]): void {
    this.actions = actions;
    this.trail.push(`${label} → ${this.state}`);
    for (const action of actions) {
      if (action.type === 'xstate.raise') {
        const raise = action.params as Raise;
        if (raise.delay !== undefined) this.pending.set(raise.id, raise);
      } else if (action.type === 'xstate.cancel') {
        this.pending.delete((action.params as { sendId: string }).sendId);
      }
    }
    assert.equal(
      this.pending.size,
      expectedDeadlines(this.snapshot),
      `pending deadlines in ${this.state}: [${[...this.pending.keys()].join(', ')}]\n${this.trail.join('\n')}`,
    );
  }
}

const exit = (code: number | null, signal: string | null = null): WorkerEvent => ({ type: 'worker.exit', code, signal });

function listeningWorker(): Driver {
  return new Driver().send({ type: 'worker.forked', pid: 4242 }).send({ type: 'worker.online' }).send({ type: 'worker.listening' });
}

describe('worker machine: booting', () => {
  it('starts in booting.forking with one ready deadline of readyMs', () => {
    const w = new Driver();
    assert.equal(w.state, 'booting.forking');
    const raises = w.raises();
    assert.equal(raises.length, 1);
    assert.equal(raises[0]!.delay, timeouts.readyMs);
    assert.match(raises[0]!.id, /^xstate\.after\.readyTimeout\./);
    assert.equal(raises[0]!.event.type, raises[0]!.id);
    assert.deepEqual(w.effects(), []);
    assert.equal(w.snapshot.context.pid, null);
    assert.equal(w.snapshot.context.connected, true);
  });

  it('records the pid, and online keeps the same ready deadline running', () => {
    const w = new Driver().send({ type: 'worker.forked', pid: 4242 });
    assert.equal(w.snapshot.context.pid, 4242);
    w.send({ type: 'worker.online' });
    assert.equal(w.state, 'booting.online');
    assert.deepEqual(w.actions, [], 'the deadline is booting’s, not restarted by online');
    assert.equal(w.pending.size, 1);
  });

  it("readyOn 'listening': the first listening makes it ready and swaps the ready deadline for stableAfter", () => {
    const w = new Driver().send({ type: 'worker.online' }).send({ type: 'worker.listening' });
    assert.equal(w.state, 'listening.fresh');
    const cancels = w.actions.filter((a) => a.type === 'xstate.cancel');
    assert.equal(cancels.length, 1);
    assert.match((cancels[0]!.params as { sendId: string }).sendId, /^xstate\.after\.readyTimeout\./);
    assert.deepEqual(w.raises().map((r) => r.delay), [timeouts.stableMs]);
  });

  it("readyOn 'listening': worker.ready is not readiness", () => {
    const w = new Driver().send({ type: 'worker.online' }).send({ type: 'worker.ready' });
    assert.equal(w.state, 'booting.online');
    assert.deepEqual(w.actions, []);
  });

  it("readyOn 'message': listening is not ready, only worker.ready is", () => {
    const w = new Driver(input({ readyOn: 'message' })).send({ type: 'worker.online' });
    w.send({ type: 'worker.listening' });
    assert.equal(w.state, 'booting.online');
    assert.deepEqual(w.actions, []);
    w.send({ type: 'worker.ready' });
    assert.equal(w.state, 'listening.fresh');
  });

  it('ready deadline: disconnected in stopping, SIGTERM at the drain deadline, SIGKILL after, exit is a failed boot', () => {
    const w = new Driver().send({ type: 'worker.online' }).fire('readyTimeout');
    assert.equal(w.state, 'stopping');
    assert.equal(w.snapshot.context.stopReason, 'ready-timeout');
    assert.deepEqual(w.effects(), [{ type: 'sendShutdown' }, { type: 'disconnect' }], 'disconnected first: cluster may already route to it');
    assert.deepEqual(w.raises().map((r) => r.delay), [timeouts.drainMs]);

    w.fire('drainTimeout');
    assert.equal(w.state, 'terminating');
    assert.deepEqual(w.effects(), [{ type: 'kill', params: { signal: 'SIGTERM' } }]);
    w.fire('killTimeout');
    assert.equal(w.state, 'killing');
    assert.deepEqual(w.effects(), [{ type: 'kill', params: { signal: 'SIGKILL' } }]);
    assert.deepEqual(w.raises().map((r) => r.delay), [timeouts.killMs]);

    w.send(exit(null, 'SIGKILL'));
    assert.equal(w.state, 'dead.bootFailed');
    assert.equal(w.pending.size, 0);
    assert.deepEqual(w.snapshot.context.exit, { code: null, signal: 'SIGKILL' });
  });

  it('ready deadline, then an exit on SIGTERM: still a failed boot, not a planned exit', () => {
    const w = new Driver().fire('readyTimeout').send(exit(null, 'SIGTERM'));
    assert.equal(w.state, 'dead.bootFailed');
  });

  it('exit while booting is a failed boot, with the exit recorded', () => {
    for (const w of [new Driver(), new Driver().send({ type: 'worker.online' })]) {
      w.send(exit(1));
      assert.equal(w.state, 'dead.bootFailed');
      assert.equal(w.pending.size, 0, 'the ready deadline is cancelled');
      assert.deepEqual(w.snapshot.context.exit, { code: 1, signal: null });
      assert.equal(w.snapshot.context.connected, false);
    }
  });

  it("stop (aborted) while booting: disconnected, and its exit is a planned one", () => {
    const w = new Driver().send({ type: 'worker.online' }).send({ type: 'stop', reason: 'aborted' });
    assert.equal(w.state, 'stopping');
    assert.equal(w.snapshot.context.stopReason, 'aborted');
    assert.deepEqual(w.effects(), [{ type: 'sendShutdown' }, { type: 'disconnect' }]);
    w.send(exit(0, null));
    assert.equal(w.state, 'dead.exited');
    assert.deepEqual(w.snapshot.context.exit, { code: 0, signal: null });
  });

  it('stop (aborted) that outlives its deadlines: SIGTERM, then SIGKILL, and its exit is a kill', () => {
    const w = new Driver().send({ type: 'stop', reason: 'aborted' }).fire('drainTimeout');
    assert.equal(w.state, 'terminating');
    w.fire('killTimeout');
    assert.equal(w.state, 'killing');
    w.send(exit(null, 'SIGKILL'));
    assert.equal(w.state, 'dead.killed');
  });

  it('kill is not for a booting worker: the first stop signal stops it before a second can force', () => {
    const w = new Driver().send({ type: 'kill' });
    assert.equal(w.state, 'booting.forking');
    assert.deepEqual(w.effects(), []);
  });
});

// Issue #10: a rollout's replacement serves out a min-ready period before it counts.
describe('worker machine: min-ready', () => {
  const warmInput = () => input({ minReadyMs: 600 });
  const listening = () => new Driver(warmInput()).send({ type: 'worker.online' }).send({ type: 'worker.listening' });

  it('listening starts the min-ready period instead of counting at once, and the ready deadline is cancelled', () => {
    const w = listening();
    assert.equal(w.state, 'warming');
    assert.deepEqual([...w.pending.values()].map((r) => r.id.split('.').slice(0, 3).join('.')), ['xstate.after.minReady']);
  });

  it('counts as listening once the period is over', () => {
    assert.equal(listening().fire('minReady').state, 'listening.fresh');
  });

  it('on a ready message too, with --ready message', () => {
    const w = new Driver(input({ minReadyMs: 600, readyOn: 'message' })).send({ type: 'worker.ready' });
    assert.equal(w.state, 'warming');
  });

  it('an exit within the period is a failed boot, even with code 0', () => {
    const w = listening().send({ type: 'worker.exit', code: 0, signal: null });
    assert.equal(w.state, 'dead.bootFailed');
    assert.equal(w.snapshot.context.diedWarming, true);
  });

  it('a channel lost within the period stops it as a failed boot, with the drain deadline', () => {
    const w = listening().send({ type: 'worker.disconnect' });
    assert.equal(w.state, 'stopping');
    assert.deepEqual(w.effects(), [], 'nothing is sent on the closed channel');
    assert.equal(w.send({ type: 'worker.exit', code: 0, signal: null }).state, 'dead.bootFailed');
  });

  it('stopped within the period (an aborted rollout, a shutdown) it drains like a booting worker', () => {
    const w = listening().send({ type: 'stop', reason: 'aborted' });
    assert.equal(w.state, 'stopping');
    assert.deepEqual(w.effects().map((a) => a.type), ['sendShutdown', 'disconnect']);
    assert.equal(w.send({ type: 'worker.exit', code: 0, signal: null }).state, 'dead.exited');
  });
});

describe('worker machine: serving', () => {
  it('stableAfter: listening.fresh becomes listening.stable with no timer left', () => {
    const w = listeningWorker().fire('stableAfter');
    assert.equal(w.state, 'listening.stable');
    assert.equal(w.pending.size, 0);
  });

  it('exit while listening is a crash, not a planned exit', () => {
    for (const w of [listeningWorker(), listeningWorker().fire('stableAfter')]) {
      w.send(exit(1));
      assert.equal(w.state, 'dead.crashed');
      assert.deepEqual(w.snapshot.context.exit, { code: 1, signal: null });
    }
  });

  it('kill is not for a serving worker: only workers already leaving are forced', () => {
    const w = listeningWorker().send({ type: 'kill' });
    assert.equal(w.state, 'listening.fresh');
    assert.deepEqual(w.effects(), []);
  });
});

describe('worker machine: draining', () => {
  it('drain sends shutdown, then disconnects, then starts the drain deadline', () => {
    const w = listeningWorker().send({ type: 'drain' });
    assert.equal(w.state, 'draining');
    assert.deepEqual(w.effects(), [{ type: 'sendShutdown' }, { type: 'disconnect' }]);
    const types = w.actions.map((a) => a.type);
    assert.ok(types.indexOf('disconnect') < types.indexOf('xstate.raise'));
    assert.deepEqual(w.raises().map((r) => r.delay), [timeouts.drainMs]);
    assert.match(w.raises()[0]!.id, /^xstate\.after\.drainTimeout\./);
    assert.equal(w.snapshot.context.connected, false);
  });

  it('drain from listening.stable behaves the same', () => {
    const w = listeningWorker().fire('stableAfter').send({ type: 'drain' });
    assert.equal(w.state, 'draining');
    assert.deepEqual(w.effects(), [{ type: 'sendShutdown' }, { type: 'disconnect' }]);
  });

  it('a serving worker whose channel closes is disconnected: not ready, under the drain deadline, a crash when it exits', () => {
    const w = listeningWorker().send({ type: 'worker.disconnect' });
    assert.equal(w.snapshot.context.connected, false);
    assert.equal(w.state, 'disconnected');
    assert.deepEqual(w.effects(), [], 'nothing can be sent on a closed channel');
    assert.deepEqual(w.raises().map((r) => r.delay), [timeouts.drainMs]);
    w.send({ type: 'drain' });
    assert.equal(w.state, 'disconnected', 'there is nothing left to drain');
    w.send(exit(0));
    assert.equal(w.state, 'dead.crashed', 'zd did not plan it: an exit after losing the channel is a crash');
  });

  it('a disconnected worker that lingers gets SIGTERM at the drain deadline, then SIGKILL', () => {
    const w = listeningWorker().send({ type: 'worker.disconnect' }).fire('drainTimeout');
    assert.equal(w.state, 'terminating');
    assert.deepEqual(w.effects(), [{ type: 'kill', params: { signal: 'SIGTERM' } }]);
    w.fire('killTimeout');
    assert.equal(w.state, 'killing');
  });

  it('a booting worker whose channel closed can no longer become ready', () => {
    const w = new Driver().send({ type: 'worker.online' }).send({ type: 'worker.disconnect' }).send({ type: 'worker.listening' });
    assert.equal(w.state, 'booting.online');
  });

  it('exit while draining is a planned, clean exit', () => {
    const w = listeningWorker().send({ type: 'drain' }).send(exit(0));
    assert.equal(w.state, 'dead.exited');
    assert.equal(w.pending.size, 0, 'the drain deadline is cancelled');
  });

  it('drain deadline: SIGTERM in terminating; its exit is a kill', () => {
    const w = listeningWorker().send({ type: 'drain' }).fire('drainTimeout');
    assert.equal(w.state, 'terminating');
    assert.deepEqual(w.effects(), [{ type: 'kill', params: { signal: 'SIGTERM' } }]);
    assert.deepEqual(w.raises().map((r) => r.delay), [timeouts.killMs]);
    w.send(exit(null, 'SIGTERM'));
    assert.equal(w.state, 'dead.killed');
  });

  it('terminating that outlives the kill deadline: SIGKILL in killing; its exit is a kill', () => {
    const w = listeningWorker().send({ type: 'drain' }).fire('drainTimeout').fire('killTimeout');
    assert.equal(w.state, 'killing');
    assert.deepEqual(w.effects(), [{ type: 'kill', params: { signal: 'SIGKILL' } }]);
    w.send(exit(null, 'SIGKILL'));
    assert.equal(w.state, 'dead.killed');
  });

  it('kill from draining or terminating: SIGKILL at once', () => {
    for (const w of [
      listeningWorker().send({ type: 'drain' }),
      listeningWorker().send({ type: 'drain' }).fire('drainTimeout'),
    ]) {
      w.send({ type: 'kill' });
      assert.equal(w.state, 'killing');
      assert.deepEqual(w.effects(), [{ type: 'kill', params: { signal: 'SIGKILL' } }]);
    }
  });

  it('a process not reaped a kill deadline after SIGKILL is given up as lost', () => {
    const w = listeningWorker().send({ type: 'drain' }).send({ type: 'kill' }).fire('killTimeout');
    assert.equal(w.state, 'dead.lost');
    assert.equal(w.snapshot.context.exit, null);
    assert.equal(w.pending.size, 0);
  });
});

describe('worker machine: deadlines', () => {
  // Each waiting state, how to get there, and the delay its entry must schedule.
  const waits: Array<[state: string, reach: () => Driver, delay: number]> = [
    ['booting.forking', () => new Driver(), timeouts.readyMs],
    ['stopping', () => new Driver().send({ type: 'stop', reason: 'shutdown' }), timeouts.drainMs],
    ['draining', () => listeningWorker().send({ type: 'drain' }), timeouts.drainMs],
    ['terminating', () => listeningWorker().send({ type: 'drain' }).fire('drainTimeout'), timeouts.killMs],
    ['killing', () => listeningWorker().send({ type: 'drain' }).send({ type: 'kill' }), timeouts.killMs],
    ['listening.fresh', () => listeningWorker(), timeouts.stableMs],
  ];
  for (const [state, reach, delay] of waits) {
    it(`entering ${state} schedules exactly one deadline of ${delay}ms`, () => {
      const w = reach();
      assert.equal(w.state, state);
      assert.deepEqual(w.raises().map((r) => r.delay), [delay]);
      assert.equal(w.pending.size, 1);
    });
  }

  it('booting.online has no deadline of its own: booting’s is still the one pending', () => {
    const w = new Driver();
    const [readyDeadline] = w.pending.keys();
    w.send({ type: 'worker.online' });
    assert.deepEqual([...w.pending.keys()], [readyDeadline]);
  });

  it('a dead worker stays dead and asks for nothing', () => {
    const w = new Driver().send(exit(1));
    for (const event of [exit(0), { type: 'kill' }, { type: 'drain' }, { type: 'stop', reason: 'shutdown' }] as WorkerEvent[]) {
      w.send(event);
      assert.equal(w.state, 'dead.bootFailed');
      assert.deepEqual(w.effects(), []);
      assert.deepEqual(w.snapshot.context.exit, { code: 1, signal: null }, 'the first exit is the one recorded');
    }
  });

  // The dead.* children are final, inside a `dead` that shadows the root-level handlers: a dead
  // worker is terminal, whatever arrives late.
  it('a dead worker is terminal: no event changes its state or context', () => {
    const events = [
      { type: 'worker.forked', pid: 99999 },
      { type: 'worker.online' },
      { type: 'worker.listening' },
      { type: 'worker.ready' },
      { type: 'worker.disconnect' },
      exit(9),
      { type: 'drain' },
      { type: 'stop', reason: 'shutdown' },
      { type: 'kill' },
    ] as const;
    for (const w of [
      new Driver().send(exit(1)),
      listeningWorker().send(exit(1)),
      listeningWorker().send({ type: 'drain' }).send(exit(0)),
      listeningWorker().send({ type: 'drain' }).fire('drainTimeout').fire('killTimeout').fire('killTimeout'),
    ]) {
      const before = JSON.stringify({ value: w.snapshot.value, context: w.snapshot.context });
      for (const event of events) {
        w.send(event as never);
        assert.deepEqual(w.effects(), [], `${event.type} on ${w.state}`);
      }
      assert.equal(JSON.stringify({ value: w.snapshot.value, context: w.snapshot.context }), before, w.state);
    }
  });
});

describe('worker machine: graph', () => {
  // Every state node of the machine, written out: a new state must be added here on purpose.
  const EXPECTED = [
    'worker.booting',
    'worker.booting.forking',
    'worker.booting.online',
    'worker.warming',
    'worker.listening',
    'worker.listening.fresh',
    'worker.listening.stable',
    'worker.disconnected',
    'worker.draining',
    'worker.stopping',
    'worker.terminating',
    'worker.killing',
    'worker.dead',
    'worker.dead.exited',
    'worker.dead.killed',
    'worker.dead.crashed',
    'worker.dead.bootFailed',
    'worker.dead.lost',
  ];
  // Delayed transitions' events are named by xstate (`xstate.after.<delay>.<state id>`). The graph
  // traversal only sends events it is given, so the timers are listed alongside the real events.
  const TIMERS = [
    'xstate.after.readyTimeout.worker.booting',
    'xstate.after.minReady.worker.warming',
    'xstate.after.stableAfter.worker.listening.fresh',
    'xstate.after.drainTimeout.worker.disconnected',
    'xstate.after.drainTimeout.worker.draining',
    'xstate.after.drainTimeout.worker.stopping',
    'xstate.after.killTimeout.worker.terminating',
    'xstate.after.killTimeout.worker.killing',
  ];
  const EVENTS: Array<WorkerEvent | { type: string }> = [
    { type: 'worker.forked', pid: 4242 },
    { type: 'worker.online' },
    { type: 'worker.listening' },
    { type: 'worker.ready' },
    { type: 'worker.disconnect' },
    { type: 'worker.exit', code: 0, signal: null },
    { type: 'worker.exit', code: null, signal: 'SIGKILL' },
    { type: 'drain' },
    { type: 'stop', reason: 'ready-timeout' },
    { type: 'stop', reason: 'aborted' },
    { type: 'stop', reason: 'shutdown' },
    { type: 'stop', reason: 'superseded' },
    { type: 'kill' },
    ...TIMERS.map((type) => ({ type })),
  ];

  const pathsFor = (readyOn: WorkerInput['readyOn']) =>
    getShortestPaths(workerMachine, {
      // With a min-ready period, so that warming is on the way to listening.
      input: input({ readyOn, minReadyMs: 500 }),
      events: (snapshot) => EVENTS.filter((e) => snapshot.can(e as WorkerEvent)) as WorkerEvent[],
    });

  const reachedIds = (paths: ReturnType<typeof pathsFor>): Set<string> => {
    const ids = new Set<string>();
    for (const path of paths) {
      const parts = leaf(path.state.value).split('.');
      for (let i = 1; i <= parts.length; i++) ids.add(['worker', ...parts.slice(0, i)].join('.'));
    }
    return ids;
  };

  it('the expected list is exactly the machine’s state nodes', () => {
    assert.deepEqual(getStateNodes(workerMachine).map((n) => n.id).sort(), [...EXPECTED].sort());
    assert.deepEqual([...WORKER_OUTCOMES].sort(), EXPECTED.filter((id) => id.startsWith('worker.dead.')).map((id) => id.slice('worker.dead.'.length)).sort());
  });

  it('the timer list is exactly the machine’s delayed transitions', () => {
    const delayed = getStateNodes(workerMachine).flatMap((n) => n.after.map((t) => t.eventType));
    assert.deepEqual([...new Set(delayed)].sort(), [...TIMERS].sort());
  });

  for (const readyOn of ['listening', 'message'] as const) {
    it(`every state is reachable (readyOn '${readyOn}')`, () => {
      const reached = reachedIds(pathsFor(readyOn));
      assert.deepEqual(EXPECTED.filter((id) => !reached.has(id)), []);
      assert.deepEqual([...reached].filter((id) => !EXPECTED.includes(id)), []);
    });

    it(`every shortest path keeps the deadline invariant when replayed (readyOn '${readyOn}')`, () => {
      const paths = pathsFor(readyOn);
      assert.ok(paths.length > 20, `only ${paths.length} paths`);
      for (const path of paths) {
        const w = new Driver(input({ readyOn, minReadyMs: 500 }));
        for (const { event } of path.steps) {
          // The first step is xstate's own init event; the machine's event types do not name it.
          const type: string = event.type;
          if (type === 'xstate.init') continue;
          if (type.startsWith('xstate.after.')) w.fireEvent(event);
          else w.send(event);
        }
        assert.deepEqual(w.snapshot.value, path.state.value, w.trail.join('\n'));
      }
    });
  }
});
