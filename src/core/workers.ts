// A worker's life, the leaf of the core: it forks a worker, applies the worker machine to what
// happens to it, and reports what that means as facts (intents.ts): ready, no longer ready, out of
// the slot that counted on it, dead with an outcome, stable. It decides nothing about the pool;
// the concerns above react to its facts (reduce.ts says which, in what order).
import { initialTransition, matchesState, transition } from 'xstate';
import { workerMachine, type WorkerEvent } from '../../machines/worker.machine.ts';
import { machineActions, type ActionHandlers, type MachineAction } from '../reducer-kit/machine-actions.ts';
import { persist, ids, type Draft } from './draft.ts';
import type { WorkerId } from './events.ts';
import { NONE, type Fact, type Intent } from './intents.ts';
import { bootFailureReason, exitDescription, isDead, isLeaving, isReady, matches, missingAddresses, outcomeOf, valueName } from './queries.ts';
import type { WorkerEntry } from './state.ts';

/**
 * Starts a worker of `generation` (its pinned release) in `slot`. A rollout's replacement must
 * listen wherever its predecessor does; one its rollout says must `warm` (the generation is not
 * proven yet) serves out the min-ready period before it counts.
 */
export function fork(d: Draft, slot: number, generation: number, replacement: boolean, warm: boolean): WorkerId {
  const id = d.s.nextWorkerId++;
  const { config } = d;
  const [snapshot, actions] = initialTransition(workerMachine, {
    id,
    slot,
    generation,
    readyOn: config.readyOn,
    minReadyMs: warm ? config.minReadyMs : 0,
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
export function listening(d: Draft, id: WorkerId, address: string | null): readonly Fact[] {
  const found = d.worker(id);
  if (!found || isDead(found)) return NO_FACTS;
  if (address !== null && !found.addresses.includes(address)) {
    const entry = d.mutWorker(id);
    entry.addresses = [...entry.addresses, address];
  }
  // Not everywhere yet: it keeps booting, and its ready deadline names what is missing.
  if (missingAddresses(d.worker(id)!).length > 0) return NO_FACTS;
  return toWorker(d, id, { type: 'worker.listening' });
}

const NO_FACTS: readonly Fact[] = Object.freeze([]);

/** Sends an event to one worker's machine: what it did, and what that means, in order. */
export function toWorker(d: Draft, id: WorkerId, event: WorkerEvent): readonly Fact[] {
  const found = d.worker(id);
  if (!found || isDead(found)) return NO_FACTS; // late news of a worker already accounted for
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
  const facts: Fact[] = [];
  if (!wasReady && isReady(entry)) {
    d.log('info', 'ZD_WORKER_READY', `worker ${entry.id} ready`, { ...ids(entry), pid: entry.machine.context.pid });
    facts.push({ type: 'ready', worker: entry });
  }
  if (wasReady && !isReady(entry)) facts.push({ type: 'unready', worker: entry });
  if (matches(entry, 'warming') && !matchesState('warming', before)) facts.push({ type: 'warming', worker: entry });
  // A worker the machine itself took out of service (it died, or missed its ready deadline)
  // stops counting for its slot at once; the ones the reducer retires leave their slot first.
  // A canary that stops serving (its channel closed) has failed its trial.
  const slot = d.slot(entry.slot);
  if (slot && (slot.worker === id || slot.next === id) && (isDead(entry) || isLeaving(entry))) {
    facts.push({ type: 'left', worker: entry });
  } else if (slot && slot.next === id && wasReady && !isReady(entry)) {
    facts.push({ type: 'left', worker: entry });
  }
  if (isDead(entry)) facts.push({ type: 'died', worker: entry, outcome: outcomeOf(entry)! });
  else if (matches(entry, 'listening.stable') && !matchesState('listening.stable', before)) facts.push({ type: 'stable', worker: entry });
  return facts;
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

/** Reaction to its death, once its slot has let it go: the entry goes, and says how it ended. */
export function bury(d: Draft, entry: WorkerEntry): readonly Intent[] {
  const outcome = outcomeOf(entry)!;
  const { pid, exit: status } = entry.machine.context;
  // Its deadlines were cancelled on the way out; anything left would fire for nobody.
  for (const timerId of Object.keys(entry.timers)) d.cancelTimer(timerId);
  d.removeWorker(entry.id);
  const unplanned = outcome === 'crashed' || outcome === 'bootFailed' || outcome === 'lost';
  // A planned exit that failed (a non-zero code, a signal) is still worth a look.
  const unclean = status !== null && (status.code !== 0 || status.signal !== null);
  d.log(
    unplanned || unclean ? 'warn' : 'info',
    'ZD_WORKER_EXITED',
    `worker ${entry.id} ${outcome}: ${outcome === 'bootFailed' ? bootFailureReason(entry) : exitDescription(status)}`,
    { ...ids(entry), pid, exitCode: status?.code ?? null, signal: status?.signal ?? null, outcome },
  );
  return NONE;
}
