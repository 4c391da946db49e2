// A worker's life as the primary sees it: forking, readiness, death, and the slot it counts for.
// Respawns and the fatal cases are decided in reconcile(), after every event.
import { initialTransition, matchesState, transition } from 'xstate';
import { workerMachine, type WorkerEvent } from '../../machines/worker.machine.ts';
import { respawnDelayMs } from './config.ts';
import { machineActions, type ActionHandlers, type MachineAction } from '../reducer-kit/machine-actions.ts';
import { persist, ids, type Draft } from './draft.ts';
import type { WorkerId } from './events.ts';
import {
  bootFailureReason,
  exitDescription,
  isBooting,
  isDead,
  isLeaving,
  isReady,
  liveWorkers,
  matches,
  missingAddresses,
  outcomeOf,
  readyCount,
  valueName,
} from './queries.ts';
import { startReload } from './rollouts.ts';
import { stopHeartbeat, startHeartbeat } from './health.ts';
import type { WorkerEntry } from './state.ts';
import { beginStop, EXIT, exit } from './stopping.ts';
import { respawnTimerId } from './timers.ts';

/**
 * Starts a worker of `generation` (its pinned release) in `slot`. A rollout's replacement serves
 * out the min-ready period before it counts, and must listen wherever its predecessor does.
 */
export function fork(d: Draft, slot: number, generation: number, replacement: boolean): WorkerId {
  const id = d.s.nextWorkerId++;
  const { config } = d;
  const [snapshot, actions] = initialTransition(workerMachine, {
    id,
    slot,
    generation,
    readyOn: config.readyOn,
    minReadyMs: replacement ? config.minReadyMs : 0,
    timeouts: {
      readyMs: config.readyTimeoutMs,
      drainMs: config.drainTimeoutMs,
      killMs: config.killTimeoutMs,
      stableMs: config.stableAfterMs,
    },
  });
  d.addWorker({
    id,
    slot,
    generation,
    machine: persist(snapshot),
    adopted: false,
    pingSeq: 0,
    timers: {},
    addresses: [],
    expects: config.readyOn === 'listening' ? expectedAddresses(d, slot, replacement) : null,
  });
  d.effects.push({ type: 'fork', workerId: id, slot, generation, release: d.s.releases[String(generation)]! });
  workerActions(d, id, actions);
  return id;
}

/**
 * Where a new worker must listen before it counts as ready. zd cannot know which ports the app is
 * meant to use, but it knows where the workers already serving listen: a replacement must serve
 * wherever its predecessor does (an app may open its public port after an admin one, in either
 * order, so its first `listening` proves little); a respawn wherever the others do. With nothing
 * serving yet (the first generation), its first `listening` will do.
 */
function expectedAddresses(d: Draft, slot: number, replacement: boolean): string[] | null {
  const predecessor = replacement ? d.worker(d.slot(slot)?.worker ?? null) : undefined;
  if (predecessor && isReady(predecessor) && predecessor.addresses.length > 0) return predecessor.addresses;
  const serving = d.s.workers.find((w) => isReady(w) && w.addresses.length > 0);
  return serving ? serving.addresses : null;
}

/** A worker listens on one more address; it is ready once it listens on every one it must. */
export function listening(d: Draft, id: WorkerId, address: string | null): void {
  const found = d.worker(id);
  if (!found || isDead(found)) return;
  if (address !== null && !found.addresses.includes(address)) {
    const entry = d.mutWorker(id);
    entry.addresses = [...entry.addresses, address];
  }
  // Not everywhere yet: it keeps booting, and its ready deadline names what is missing.
  if (missingAddresses(d.worker(id)!).length > 0) return;
  toWorker(d, id, { type: 'worker.listening' });
}

/** Sends an event to one worker's machine and reacts to where it lands. */
export function toWorker(d: Draft, id: WorkerId, event: WorkerEvent): void {
  const found = d.worker(id);
  if (!found || isDead(found)) return; // late news of a worker already accounted for
  const entry = d.mutWorker(id);
  const before = entry.machine.value;
  const wasReady = isReady(entry);
  const [next, actions] = transition(workerMachine, workerMachine.resolveState(entry.machine), event);
  entry.machine = persist(next);
  d.transitions.push({ machine: 'worker', id, from: valueName(before), event: event.type, to: valueName(next.value) });
  if (event.type === 'worker.forked') {
    d.log('info', 'ZD_WORKER_FORKED', `worker ${id} forked`, { ...ids(entry), pid: event.pid });
  }
  workerActions(d, id, actions);
  if (!wasReady && isReady(entry)) onReady(d, entry);
  if (wasReady && !isReady(entry)) {
    stopHeartbeat(d, id);
    if (d.s.retiring.includes(id)) d.s.retiring = d.s.retiring.filter((queued) => queued !== id); // going away already
  }
  // A worker the machine itself took out of service (it died, or missed its ready deadline)
  // stops counting for its slot at once; the ones the reducer retires leave their slot first.
  const slot = d.slot(entry.slot);
  if (slot && (slot.worker === id || slot.next === id) && (isDead(entry) || isLeaving(entry))) {
    releaseSlot(d, entry);
  } else if (slot && slot.next === id && wasReady && !isReady(entry)) {
    // A canary that stops serving (its channel closed) has failed its trial.
    releaseSlot(d, entry);
  }
  if (isDead(entry)) onDead(d, entry);
  else if (matches(entry, 'listening.stable') && !matchesState('listening.stable', before)) {
    onStable(d, entry);
  }
}

function workerActions(d: Draft, id: WorkerId, actions: readonly MachineAction[]): void {
  machineActions(actions, WORKER_ACTIONS, { d, id });
}

const WORKER_ACTIONS: ActionHandlers<{ d: Draft; id: WorkerId }> = {
  named: {
    sendShutdown: ({ d, id }) => void d.effects.push({ type: 'send', workerId: id, message: { type: 'zd:shutdown' } }),
    disconnect: ({ d, id }) => void d.effects.push({ type: 'disconnect', workerId: id }),
    kill: ({ d, id }, params) => void d.effects.push({ type: 'kill', workerId: id, signal: params.signal as 'SIGTERM' | 'SIGKILL' }),
  },
  // Its deadlines live in its entry, under ids `w<id>:…`, and go with it.
  delayed: ({ d, id }, delayed) => d.startTimer(`w${id}:${delayed.id}`, { kind: 'worker', workerId: id, event: delayed.event }, delayed.delay),
  cancelled: ({ d, id }, sendId) => d.cancelTimer(`w${id}:${sendId}`),
};

function onReady(d: Draft, entry: WorkerEntry): void {
  d.log('info', 'ZD_WORKER_READY', `worker ${entry.id} ready`, { ...ids(entry), pid: entry.machine.context.pid });
  startHeartbeat(d, entry.id);
  const slot = d.slot(entry.slot);
  if (slot && (slot.next === entry.id || (slot.worker === entry.id && entry.adopted))) {
    d.rolloutQueue.push({ type: 'rollout.ready', slot: entry.slot });
  }
  if (d.s.phase === 'starting') {
    d.s.phase = 'running';
    d.s.completed = [entry.generation]; // the first generation serves: what a rollback may return to
    if (d.s.reloadQueued) {
      d.s.reloadQueued = false;
      startReload(d);
    }
  }
  if (!d.s.allReadyAnnounced && readyCount(d.s) >= d.config.workers) {
    d.s.allReadyAnnounced = true;
    d.log('info', 'ZD_READY', `all ${d.config.workers} worker(s) ready`, { workers: d.config.workers });
  }
}

function onStable(d: Draft, entry: WorkerEntry): void {
  if (d.slot(entry.slot)?.worker === entry.id) d.mutSlot(entry.slot).failures = 0;
}

function onDead(d: Draft, entry: WorkerEntry): void {
  const outcome = outcomeOf(entry)!;
  const { pid, exit: status } = entry.machine.context;
  // Its deadlines were cancelled on the way out; anything left would fire for nobody.
  for (const timerId of Object.keys(entry.timers)) d.cancelTimer(timerId);
  d.removeWorker(entry.id);
  if (d.s.retiring.includes(entry.id)) d.s.retiring = d.s.retiring.filter((id) => id !== entry.id);
  const unplanned = outcome === 'crashed' || outcome === 'bootFailed' || outcome === 'lost';
  // A planned exit that failed (a non-zero code, a signal) is still worth a look.
  const unclean = status !== null && (status.code !== 0 || status.signal !== null);
  d.log(
    unplanned || unclean ? 'warn' : 'info',
    'ZD_WORKER_EXITED',
    `worker ${entry.id} ${outcome}: ${outcome === 'bootFailed' ? bootFailureReason(entry) : exitDescription(status)}`,
    { ...ids(entry), pid, exitCode: status?.code ?? null, signal: status?.signal ?? null, outcome },
  );

  // Unless releaseSlot() already counted it, it was draining or being stopped: planned.

  if (d.s.phase === 'stopping' && liveWorkers(d.s).length === 0) exit(d);
}

/** A worker a slot points at stopped counting without the reducer retiring it. */
function releaseSlot(d: Draft, entry: WorkerEntry): void {
  const slot = d.mutSlot(entry.slot);
  const { stopReason } = entry.machine.context;
  const neverReady = outcomeOf(entry) === 'bootFailed' || stopReason === 'ready-timeout' || stopReason === 'unstable';
  if (slot.next === entry.id) {
    // A rollout's replacement failed before it was ready, or its canary while on trial.
    slot.next = null;
    noteBootFailure(d, entry);
    const reason = matches(entry, 'disconnected') ? 'the canary lost its IPC channel while serving' : bootFailureReason(entry);
    d.rolloutQueue.push({ type: 'rollout.failed', slot: entry.slot, reason });
    return;
  }
  slot.worker = null;
  if (entry.adopted) {
    d.rolloutQueue.push({ type: 'rollout.failed', slot: entry.slot, reason: bootFailureReason(entry) });
  }
  slotLost(d, entry, neverReady);
}

/** The worker that counted for a slot is gone, unplanned. */
function slotLost(d: Draft, entry: WorkerEntry, neverReady: boolean): void {
  if (d.s.phase === 'stopping') return;
  const slot = d.mutSlot(entry.slot);
  slot.failures += 1;
  if (neverReady) noteBootFailure(d, entry);
  if (d.s.phase === 'starting') return; // judged as a whole in reconcile()
  d.counters().crashes += 1;
  if (slot.failures > d.config.maxRestarts) {
    slot.parked = true;
    d.log(
      'error',
      'ZD_CRASH_LOOP',
      `slot ${entry.slot} failed ${slot.failures} times in a row without staying up ${d.config.stableAfterMs}ms: not restarting it until the next reload`,
      { slot: entry.slot, failures: slot.failures },
      entry.id,
    );
    return;
  }
  const restartInMs = slot.next === null ? respawnDelayMs(d.config, slot.failures) : null;
  d.log(
    'warn',
    'ZD_WORKER_CRASHED',
    `worker ${entry.id} ${neverReady ? bootFailureReason(entry) : exitDescription(entry.machine.context.exit)}; ${
      restartInMs === null ? 'its rollout replacement takes over' : `restarting in ${restartInMs}ms`
    }`,
    {
      ...ids(entry),
      pid: entry.machine.context.pid,
      exitCode: entry.machine.context.exit?.code ?? null,
      signal: entry.machine.context.exit?.signal ?? null,
      restartInMs,
      failures: slot.failures,
    },
    entry.id,
  );
}

export function noteBootFailure(d: Draft, entry: WorkerEntry): void {
  d.s.lastBootFailure = { workerId: entry.id, reason: bootFailureReason(entry) };
}

export function respawn(d: Draft, index: number): void {
  const slot = d.slot(index);
  if (!slot || d.s.phase !== 'running' || slot.worker !== null || slot.next !== null || slot.parked) return;
  // The slot's own generation, never whatever a link points at now: after an aborted rollout the
  // old code respawns. During a reload the new generation's, which the rollout then adopts.
  // Not while a canary is on trial: only the canary runs the new code until its verdict.
  const rollout = d.s.rollout?.context;
  const onTrial = d.s.rollout !== null && matchesState('canary', d.s.rollout.value);
  const generation = rollout && rollout.kind === 'reload' && !onTrial ? rollout.generation : slot.generation;
  const id = fork(d, index, generation, false);
  const writable = d.mutSlot(index);
  writable.restarts += 1;
  writable.worker = id;
  writable.generation = generation;
}

/**
 * Keeps every slot either served, booting, waiting on its backoff timer, or parked; decides the
 * fatal cases. Runs after every event, so no handler has to remember to schedule a respawn.
 */
export function reconcile(d: Draft): void {
  const { slots } = d.s;
  if (d.s.phase === 'starting') {
    if (slots.every((slot) => slot.worker === null)) {
      const failure = d.s.lastBootFailure;
      d.log(
        'error',
        'ZD_BOOT_FAILED',
        `no worker became ready: ${failure?.reason ?? 'unknown'}`,
        { reason: failure?.reason ?? null },
        failure?.workerId,
      );
      beginStop(d, EXIT.fatal);
    }
    return;
  }
  if (d.s.phase !== 'running') return;
  const rollout = d.s.rollout?.context;
  for (let index = 0; index < slots.length; index++) {
    const slot = slots[index]!;
    const timerId = respawnTimerId(index);
    // A slot a growing reload added waits for its turn in the rollout, which fills it.
    const awaitsRollout = rollout !== undefined && slot.generation === rollout.generation && rollout.pending.includes(index);
    if (slot.worker !== null || slot.next !== null || slot.parked || awaitsRollout) {
      if (d.s.timers[timerId]) d.cancelTimer(timerId);
      continue;
    }
    if (d.s.timers[timerId]) continue;
    d.startTimer(timerId, { kind: 'respawn', slot: index }, respawnDelayMs(d.config, Math.max(1, slot.failures)));
  }
  if (d.s.rollout === null && slots.every((slot) => slot.parked)) {
    d.log('error', 'ZD_CRASH_LOOP', 'every worker slot is in a crash loop: stopping', { slots: slots.length });
    beginStop(d, EXIT.fatal);
  }
}

