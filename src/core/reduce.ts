// The primary, as a pure reducer over cluster events: reduce(state, event) → { state, effects }.
//
// It advances the worker and rollout machines with xstate's pure `transition()`, turns their
// named actions and delayed events into effects, and keeps the slots filled. It imports no
// `node:*` module, reads no clock and draws no random number: the runtime feeds it everything,
// including timer firings, so the same events always give the same effects.
//
// This file is the coordinator; the core below it is in layers (intents.ts says what they hand
// each other). The worker's life (workers.ts) applies the worker machine and reports facts. The
// concerns turn events and facts into intents, and never call each other: startup.ts (the first
// ready worker, nothing ever ready), slots.ts (a slot's worker lost, respawns, crash loops),
// health.ts (heartbeats, memory), rollouts.ts (reloads, replacements; canary-judging.ts), scale.ts
// (`zd scale`), stopping.ts (graceful and forced stops), over two shared services, pool.ts (the
// pool's size) and retirements.ts (draining superseded workers). Here each event goes to the
// concern that answers it, its intents are run depth first until none is left, and then the work
// the new state implies (the rollout's queued events, the slots, the retirements waiting for
// cover) until a pass finds none, all within a bound (invariant I12); last, routing.ts derives
// who may receive a connection. draft.ts is the copy-on-write state they share.
import type { WorkerEvent } from '../../machines/worker.machine.ts';
import { IntentRunner } from '../reducer-kit/intents.ts';
import { judgeCanary } from './canary-judging.ts';
import type { CoreConfig } from './config.ts';
import { Draft, type Step } from './draft.ts';
import { isReadyMessage, pongSeq, type PrimaryEvent, type Release } from './events.ts';
import * as health from './health.ts';
import { NONE, UNSETTLED, type Fact, type Intent } from './intents.ts';
import * as retirements from './retirements.ts';
import * as rollouts from './rollouts.ts';
import { routeStep } from './routing.ts';
import { requestScale } from './scale.ts';
import * as slots from './slots.ts';
import * as startup from './startup.ts';
import type { PrimaryState, WorkerEntry } from './state.ts';
import * as stopping from './stopping.ts';
import * as workers from './workers.ts';

export type { MachineTransition, Step } from './draft.ts';
export { EXIT } from './exit-codes.ts';

/** Where the tests and benchmarks run: no file is ever loaded from it. */
const NO_RELEASE: Release = { app: 'app.js', cwd: '.', args: [] };

export function init(config: CoreConfig, release: Release = NO_RELEASE): Step {
  const d = new Draft({
    config,
    phase: 'starting',
    exitCode: null,
    generation: 1,
    nextWorkerId: 1,
    workers: [],
    slots: Array.from({ length: config.workers }, () => ({
      worker: null,
      next: null,
      failures: 0,
      restarts: 0,
      parked: false,
      generation: 1,
    })),
    rollout: null,
    canary: null,
    canaryEvidence: null,
    lastRollout: null,
    lastReload: null,
    reloadQueued: false,
    queuedRelease: null,
    queuedConfig: null,
    previousConfig: null,
    releases: { '1': release },
    completed: [],
    replaceQueue: [],
    retiring: [],
    draining: false,
    routing: { workers: [], slots: Array.from({ length: config.workers }, () => null) },
    ports: 'open',
    timers: {},
    allReadyAnnounced: false,
    lastBootFailure: null,
    counters: {
      reloadsRequested: 0,
      rolloutsStarted: 0,
      replacementsStarted: 0,
      reloadsCoalesced: 0,
      reloadsRefused: 0,
      reloadsDropped: 0,
      crashes: 0,
    },
  });
  d.log('info', 'ZD_STARTING', `starting ${config.workers} worker(s)`, { workers: config.workers });
  return finish(d, Array.from({ length: config.workers }, (_, slot): Intent => ({ type: 'worker.fork', slot, generation: 1, as: 'worker' })));
}

export function reduce(state: PrimaryState, event: PrimaryEvent): Step {
  if (state.phase === 'exited') return { state, effects: [], transitions: [] };
  const d = new Draft(state);
  return finish(d, handle(d, event));
}

/**
 * Runs the event's intents, then what the new state implies, until a pass finds nothing; then
 * derives who may receive a connection.
 */
function finish(d: Draft, intents: readonly Intent[]): Step {
  let runner: IntentRunner<Intent> | null = null;
  for (let work = intents.length > 0 ? intents : implied(d); work.length > 0; work = implied(d)) {
    runner ??= new IntentRunner((intent) => execute(d, intent), () => BOUND_BASE + BOUND_PER_WORKER * (d.s.workers.length + d.s.slots.length));
    if (runner.run(work)) continue;
    const bound = runner.bound();
    d.log('error', UNSETTLED, `internal error: the core did not settle within ${bound} intents (the next was ${runner.unsettled!.type}); please report it`, { bound, next: runner.unsettled!.type });
    break;
  }
  routeStep(d);
  return { state: d.s, effects: d.effects, transitions: d.transitions };
}

const RUN_ROLLOUT: readonly Intent[] = [{ type: 'rollout.run' }];

/** The first derived work still to do, in this order; none once the state is settled. */
function implied(d: Draft): readonly Intent[] {
  if (d.rolloutQueue.length > 0) return RUN_ROLLOUT;
  // Most frequent events (samples, heartbeats) change no slot, phase or rollout, and skip these.
  if (d.slotsMayNeedWork) {
    const failed = startup.bootFailed(d);
    if (failed.length > 0) return failed;
    const reconciled = slots.reconcile(d);
    if (reconciled.length > 0) return reconciled;
  }
  return retirements.drainCovered(d);
}

/**
 * Intents in one step, at most: a base, and so many per worker and slot; far more than any step
 * takes. Reaching it means the concerns keep asking each other for work: the step ends there (I12).
 */
const BOUND_BASE = 1_000;
const BOUND_PER_WORKER = 100;

type Reaction = (d: Draft, worker: WorkerEntry) => readonly Intent[];

/** Who reacts to each fact, in this order, each once the intents of the one before have run. */
const REACTIONS: Readonly<Record<Fact['type'], readonly Reaction[]>> = {
  ready: [health.onReady, rollouts.onReady, startup.onReady, startup.onAllReady],
  warming: [rollouts.onWarming],
  unready: [health.onUnready, retirements.forget],
  left: [slots.onLeft],
  died: [workers.bury, retirements.forget, stopping.onDied],
  stable: [slots.onStable],
};

/** The facts a worker's machine reported, for their reactions. */
function happened(facts: readonly Fact[]): readonly Intent[] {
  return facts.length === 0 ? NONE : facts.map((fact): Intent => ({ type: 'fact', fact, reaction: 0 }));
}

function execute(d: Draft, intent: Intent): readonly Intent[] {
  switch (intent.type) {
    case 'fact': {
      const { fact, reaction } = intent;
      const reactions = REACTIONS[fact.type];
      const intents = reactions[reaction]!(d, fact.worker);
      return reaction + 1 < reactions.length ? [...intents, { type: 'fact', fact, reaction: reaction + 1 }] : intents;
    }
    case 'worker.fork': {
      const id = workers.fork(d, intent.slot, intent.generation, intent.as === 'next', intent.as === 'next' && intent.warm);
      d.mutSlot(intent.slot)[intent.as] = id;
      return NONE;
    }
    case 'worker.event':
      return happened(workers.toWorker(d, intent.workerId, intent.event));
    case 'worker.retire': {
      const entry = d.worker(intent.workerId);
      return entry ? retirements.retire(d, entry, intent.reason) : NONE;
    }
    case 'worker.retireWhenCovered': {
      const entry = d.worker(intent.workerId);
      return entry ? retirements.retireWhenCovered(d, entry) : NONE;
    }
    case 'retirements.stagger':
      return retirements.stagger(d);
    case 'retirements.covered':
      return retirements.drainCovered(d);
    case 'timer.cancel':
      d.cancelTimer(intent.timerId);
      return NONE;
    case 'rollout.event':
      d.rolloutQueue.push(intent.event);
      return NONE;
    case 'rollout.run':
      return rollouts.runNext(d);
    case 'rollout.action':
      return rollouts.act(d, intent.generation, intent.action);
    case 'rollout.stepped':
      return rollouts.stepped(d, intent.event, intent.context, intent.ended);
    case 'rollout.ended':
      return rollouts.ended(d, intent.context, intent.done);
    case 'reload.start':
      rollouts.startReload(d);
      return NONE;
    case 'replace':
      return rollouts.requestReplace(d, intent.slot);
    case 'stop':
      return stopping.beginStop(d, intent.code);
    case 'stop.clear':
      return stopping.clear(d, intent.code);
    case 'stop.drain':
      return stopping.drainOrDelay(d, intent.code);
    case 'stop.ifIdle':
      return stopping.exitIfIdle(d);
    case 'exit':
      return stopping.exit(d);
  }
}

/** Each event to the concern that answers it. */
function handle(d: Draft, event: PrimaryEvent): readonly Intent[] {
  switch (event.type) {
    case 'worker.forked':
      return happened(workers.toWorker(d, event.workerId, { type: 'worker.forked', pid: event.pid }));
    case 'worker.online':
      return happened(workers.toWorker(d, event.workerId, { type: 'worker.online' }));
    case 'worker.listening':
      return happened(workers.listening(d, event.workerId, event.address ?? null));
    case 'worker.message': {
      // Other messages are the app's own business; readiness and heartbeats concern the primary.
      if (isReadyMessage(event.message)) return happened(workers.toWorker(d, event.workerId, { type: 'worker.ready' }));
      const seq = pongSeq(event.message);
      if (seq !== null) health.pong(d, event.workerId, seq);
      return NONE;
    }
    case 'worker.memory':
      return health.memorySample(d, event.workerId, event.rssBytes);
    case 'worker.disconnect':
      return happened(workers.toWorker(d, event.workerId, { type: 'worker.disconnect' }));
    case 'worker.exit':
      return happened(workers.toWorker(d, event.workerId, { type: 'worker.exit', code: event.code, signal: event.signal }));
    case 'signal.hup':
    case 'control.reload':
      return rollouts.requestReload(d, event.type === 'signal.hup' ? event.signal : 'control', event.release, event.config);
    case 'control.scale':
      return requestScale(d, event.workers);
    case 'control.rollback':
      return rollouts.requestRollback(d);
    case 'signal.term':
      return stopping.terminate(d, event.signal, event.signal);
    case 'control.stop':
      return stopping.terminate(d, 'SIGTERM', 'zd stop');
    case 'timer.fired':
      return timerFired(d, event.timerId);
    case 'canary.figures':
      judgeCanary(d, event.requestId, event.figures);
      return NONE;
    case 'ports.closed':
      return stopping.portsClosed(d, false);
  }
}

function timerFired(d: Draft, timerId: string): readonly Intent[] {
  const owner = d.timer(timerId);
  if (!owner) return NONE; // cancelled after it was queued: stale
  d.forgetTimer(timerId);
  switch (owner.kind) {
    case 'worker':
      return happened(workers.toWorker(d, owner.workerId, owner.event as WorkerEvent));
    case 'respawn':
      return slots.respawn(d, owner.slot);
    case 'restore':
      return slots.restoreDue(d, owner.slot) ? rollouts.requestReplace(d, owner.slot) : NONE;
    case 'stagger':
      return retirements.nextRetirement(d);
    case 'stop-delay':
      return stopping.drainAll(d);
    case 'ports':
      return stopping.portsClosed(d, true);
    case 'ping':
      health.ping(d, owner.workerId);
      return NONE;
    case 'pong':
      return health.pongOverdue(d, owner.workerId, owner.seq);
    case 'rollout':
      rollouts.rolloutTimer(d, owner.generation, owner.event);
      return NONE;
  }
}
