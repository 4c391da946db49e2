// The primary, as a pure reducer over cluster events: reduce(state, event) → { state, effects }.
//
// It advances the worker and rollout machines with xstate's pure `transition()`, turns their
// named actions and delayed events into effects, and keeps the slots filled. It imports no
// `node:*` module, reads no clock and draws no random number: the runtime feeds it everything,
// including timer firings, so the same events always give the same effects.
//
// This file only wires the concerns, each in a file of its own: workers.ts (a worker's life and
// its slot), rollouts.ts (reloads and replacements), health.ts (heartbeat and memory),
// stopping.ts (graceful and forced stops). draft.ts is the copy-on-write state they share.
import type { CoreConfig } from './config.ts';
import { Draft, type Step } from './draft.ts';
import { isReadyMessage, pongSeq, type PrimaryEvent, type Release } from './events.ts';
import { memorySample, ping, pong, pongOverdue } from './health.ts';
import { STAGGER_TIMER } from './timers.ts';
import { drainCovered, drainRolloutQueue, judgeCanary, nextRetirement, requestReload, requestRollback, rolloutTimer } from './rollouts.ts';
import type { PrimaryState } from './state.ts';
import { drainAll, portsClosed, terminate } from './stopping.ts';
import { routeStep } from './routing.ts';
import { requestScale } from './scale.ts';
import { fork, listening, reconcile, respawn, toWorker } from './workers.ts';
import type { WorkerEvent } from '../../machines/worker.machine.ts';

export type { MachineTransition, Step } from './draft.ts';
export { EXIT } from './stopping.ts';

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
  for (let slot = 0; slot < config.workers; slot++) {
    const id = fork(d, slot, 1, false);
    d.mutSlot(slot).worker = id;
  }
  return finish(d);
}

export function reduce(state: PrimaryState, event: PrimaryEvent): Step {
  if (state.phase === 'exited') return { state, effects: [], transitions: [] };
  const d = new Draft(state);
  handle(d, event);
  return finish(d);
}

function finish(d: Draft): Step {
  drainRolloutQueue(d);
  if (d.slotsMayNeedWork) reconcile(d);
  if (d.s.retiring.length > 0 && !d.s.timers[STAGGER_TIMER]) drainCovered(d);
  routeStep(d);
  return { state: d.s, effects: d.effects, transitions: d.transitions };
}

function handle(d: Draft, event: PrimaryEvent): void {
  switch (event.type) {
    case 'worker.forked':
      return toWorker(d, event.workerId, { type: 'worker.forked', pid: event.pid });
    case 'worker.online':
      return toWorker(d, event.workerId, { type: 'worker.online' });
    case 'worker.listening':
      return listening(d, event.workerId, event.address ?? null);
    case 'worker.message': {
      // Other messages are the app's own business; readiness and heartbeats concern the primary.
      if (isReadyMessage(event.message)) toWorker(d, event.workerId, { type: 'worker.ready' });
      const seq = pongSeq(event.message);
      if (seq !== null) pong(d, event.workerId, seq);
      return;
    }
    case 'worker.memory':
      return memorySample(d, event.workerId, event.rssBytes);
    case 'worker.disconnect':
      return toWorker(d, event.workerId, { type: 'worker.disconnect' });
    case 'worker.exit':
      return toWorker(d, event.workerId, { type: 'worker.exit', code: event.code, signal: event.signal });
    case 'signal.hup':
    case 'control.reload':
      return requestReload(d, event.type === 'signal.hup' ? event.signal : 'control', event.release, event.config);
    case 'control.scale':
      return requestScale(d, event.workers);
    case 'control.rollback':
      return requestRollback(d);
    case 'signal.term':
      return terminate(d, event.signal, event.signal);
    case 'control.stop':
      return terminate(d, 'SIGTERM', 'zd stop');
    case 'timer.fired':
      return timerFired(d, event.timerId);
    case 'canary.figures':
      return judgeCanary(d, event.requestId, event.figures);
    case 'ports.closed':
      return portsClosed(d, false);
  }
}

function timerFired(d: Draft, timerId: string): void {
  const owner = d.timer(timerId);
  if (!owner) return; // cancelled after it was queued: stale
  d.forgetTimer(timerId);
  switch (owner.kind) {
    case 'worker':
      return toWorker(d, owner.workerId, owner.event as WorkerEvent);
    case 'respawn':
      return respawn(d, owner.slot);
    case 'stagger':
      return nextRetirement(d);
    case 'stop-delay':
      return drainAll(d);
    case 'ports':
      return portsClosed(d, true);
    case 'ping':
      return ping(d, owner.workerId);
    case 'pong':
      return pongOverdue(d, owner.workerId, owner.seq);
    case 'rollout':
      return rolloutTimer(d, owner.generation, owner.event);
  }
}
