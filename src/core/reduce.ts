// The primary, as a pure reducer over cluster events: reduce(state, event) → { state, effects }.
//
// It advances the worker and rollout machines with xstate's pure `transition()`, turns their
// named actions and delayed events into effects, and keeps the slots filled. It imports no
// `node:*` module, reads no clock and draws no random number: the runtime feeds it everything,
// including timer firings, so the same events always give the same effects.
import { initialTransition, matchesState, transition } from 'xstate';
import {
  rolloutMachine,
  type RolloutContext,
  type RolloutEvent,
} from '../../machines/rollout.machine.ts';
import {
  workerMachine,
  type StopReason,
  type WorkerEvent,
} from '../../machines/worker.machine.ts';
import { backoffMs, type CoreConfig } from './config.ts';
import type { Effect, LogEffect } from './effects.ts';
import { isReadyMessage, pongSeq, type PrimaryEvent, type WorkerId } from './events.ts';
import {
  bootFailureReason,
  exitDescription,
  getWorker,
  isBooting,
  isDead,
  isLeaving,
  isReady,
  liveWorkers,
  matches,
  outcomeOf,
  capacityFloor,
  readyCount,
  valueName,
  workerList,
} from './queries.ts';
import type { PrimaryState, SlotState, StoredSnapshot, TimerOwner, WorkerEntry } from './state.ts';
import { pingTimerId, pongTimerId, respawnTimerId, STAGGER_TIMER, STOP_DELAY_TIMER } from './timers.ts';

export interface Step {
  state: PrimaryState;
  effects: Effect[];
  /** Every machine transition this step took, in order: for inspection and coverage. */
  transitions: MachineTransition[];
}

export interface MachineTransition {
  machine: 'worker' | 'rollout';
  /** Worker id, or the rollout's generation. */
  id: number;
  from: string;
  event: string;
  to: string;
}

/** Exit codes the primary can end with (documented in the README). */
export const EXIT = { ok: 0, fatal: 1, usage: 2, forcedInt: 130, forcedTerm: 143 } as const;

// ---------------------------------------------------------------------------------------------
// Entry points

export function init(config: CoreConfig): Step {
  const draft = new Draft({
    config,
    phase: 'starting',
    exitCode: null,
    generation: 1,
    nextWorkerId: 1,
    workers: {},
    slots: Array.from({ length: config.workers }, () => ({
      worker: null,
      next: null,
      failures: 0,
      restarts: 0,
      parked: false,
    })),
    rollout: null,
    lastRollout: null,
    lastReload: null,
    reloadQueued: false,
    replaceQueue: [],
    retiring: [],
    draining: false,
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
  draft.log('info', 'ZD_STARTING', `starting ${config.workers} worker(s)`, {
    workers: config.workers,
  });
  for (let slot = 0; slot < config.workers; slot++) {
    draft.slots[slot]!.worker = draft.fork(slot, 1);
  }
  return draft.finish();
}

export function reduce(state: PrimaryState, event: PrimaryEvent): Step {
  if (state.phase === 'exited') return { state, effects: [], transitions: [] };
  const draft = new Draft(structuredClone(state));
  draft.handle(event);
  return draft.finish();
}

// ---------------------------------------------------------------------------------------------

/**
 * One reduction: a private copy of the state that the handlers below may change, and the effects
 * they ask for. Rollout events raised while handling are queued and run in order, so a machine is
 * never re-entered in the middle of its own transition.
 */
class Draft {
  readonly effects: Effect[] = [];
  readonly transitions: MachineTransition[] = [];
  private readonly rolloutQueue: RolloutEvent[] = [];

  constructor(readonly s: PrimaryState) {}

  get config(): CoreConfig {
    return this.s.config;
  }
  get slots(): SlotState[] {
    return this.s.slots;
  }

  finish(): Step {
    this.drainRolloutQueue();
    this.reconcile();
    return { state: this.s, effects: this.effects, transitions: this.transitions };
  }

  log(level: LogEffect['level'], code: string, msg: string, fields?: Record<string, unknown>, stderrOf?: WorkerId) {
    const effect: LogEffect = { type: 'log', level, code, msg };
    if (fields) effect.fields = fields;
    if (stderrOf !== undefined) effect.stderrOf = stderrOf;
    this.effects.push(effect);
  }

  // -- events -----------------------------------------------------------------------------------

  handle(event: PrimaryEvent): void {
    switch (event.type) {
      case 'worker.forked':
        return this.toWorker(event.workerId, { type: 'worker.forked', pid: event.pid });
      case 'worker.online':
        return this.toWorker(event.workerId, { type: 'worker.online' });
      case 'worker.listening':
        return this.listening(event.workerId, event.address ?? null);
      case 'worker.message': {
        // Other messages are the app's own business; readiness and heartbeats concern the primary.
        if (isReadyMessage(event.message)) this.toWorker(event.workerId, { type: 'worker.ready' });
        const seq = pongSeq(event.message);
        if (seq !== null) this.pong(event.workerId, seq);
        return;
      }
      case 'worker.memory':
        return this.memorySample(event.workerId, event.rssBytes);
      case 'worker.disconnect':
        return this.toWorker(event.workerId, { type: 'worker.disconnect' });
      case 'worker.exit':
        return this.toWorker(event.workerId, {
          type: 'worker.exit',
          code: event.code,
          signal: event.signal,
        });
      case 'signal.hup':
      case 'control.reload':
        return this.requestReload(event.type === 'signal.hup' ? event.signal : 'control');
      case 'signal.term':
        return this.terminate(event.signal, event.signal);
      case 'control.stop':
        return this.terminate('SIGTERM', 'zd stop');
      case 'timer.fired':
        return this.timerFired(event.timerId);
    }
  }

  private timerFired(timerId: string): void {
    const owner = this.s.timers[timerId];
    if (!owner) return; // cancelled after it was queued: stale
    delete this.s.timers[timerId];
    switch (owner.kind) {
      case 'worker':
        return this.toWorker(owner.workerId, owner.event as WorkerEvent);
      case 'respawn':
        return this.respawn(owner.slot);
      case 'stagger':
        return this.nextRetirement();
      case 'stop-delay':
        return this.drainAll();
      case 'ping':
        return this.ping(owner.workerId);
      case 'pong':
        return this.pongOverdue(owner.workerId, owner.seq);
    }
  }

  private startTimer(timerId: string, owner: TimerOwner, ms: number): void {
    this.s.timers[timerId] = owner;
    this.effects.push({ type: 'timer.start', timerId, ms });
  }

  // -- workers ----------------------------------------------------------------------------------

  fork(slot: number, generation: number): WorkerId {
    const id = this.s.nextWorkerId++;
    const [snapshot, actions] = initialTransition(workerMachine, {
      id,
      slot,
      generation,
      readyOn: this.config.readyOn,
      timeouts: {
        readyMs: this.config.readyTimeoutMs,
        drainMs: this.config.drainTimeoutMs,
        killMs: this.config.killTimeoutMs,
        stableMs: this.config.stableAfterMs,
      },
    });
    const entry: WorkerEntry = {
      id,
      slot,
      generation,
      machine: persist(snapshot),
      adopted: false,
      pingSeq: 0,
      address: null,
      misconfigured: null,
    };
    this.s.workers[String(id)] = entry;
    this.effects.push({ type: 'fork', workerId: id, slot, generation });
    this.workerActions(entry, actions);
    return id;
  }

  /**
   * A worker listens. zd cannot know which port the app is meant to use, but it knows where the
   * workers already serving listen: a worker that listens elsewhere (a deploy on the wrong port)
   * would pass for ready and serve nothing, so it is a failed boot instead.
   */
  private listening(id: WorkerId, address: string | null): void {
    const entry = getWorker(this.s, id);
    if (entry && !isDead(entry) && entry.address === null && address !== null) {
      entry.address = address;
      const expected = workerList(this.s).find((w) => w.id !== id && isReady(w) && w.address !== null)?.address ?? null;
      if (this.config.readyOn === 'listening' && isBooting(entry) && expected !== null && expected !== address) {
        entry.misconfigured = `listens on ${address}, where the workers serving now listen on ${expected}`;
        this.log('error', 'ZD_WORKER_WRONG_ADDRESS', `worker ${id} ${entry.misconfigured}: stopping it`, {
          ...ids(entry),
          pid: entry.machine.context.pid,
          address,
          expected,
        });
        return this.toWorker(id, { type: 'stop', reason: 'misconfigured' });
      }
    }
    this.toWorker(id, { type: 'worker.listening' });
  }

  /** Sends an event to one worker's machine and reacts to where it lands. */
  toWorker(id: WorkerId, event: WorkerEvent): void {
    const entry = getWorker(this.s, id);
    if (!entry || isDead(entry)) return; // late news of a worker already accounted for
    const before = entry.machine.value;
    const wasReady = isReady(entry);
    const [next, actions] = transition(
      workerMachine,
      workerMachine.resolveState(entry.machine),
      event,
    );
    entry.machine = persist(next);
    this.transitions.push({ machine: 'worker', id, from: valueName(before), event: event.type, to: valueName(next.value) });
    if (event.type === 'worker.forked') {
      this.log('info', 'ZD_WORKER_FORKED', `worker ${id} forked`, {
        ...ids(entry),
        pid: event.pid,
      });
    }
    this.workerActions(entry, actions);
    if (!wasReady && isReady(entry)) this.onReady(entry);
    if (wasReady && !isReady(entry)) {
      this.stopHeartbeat(entry);
      this.s.retiring = this.s.retiring.filter((queued) => queued !== id); // going away already
    }
    // A worker the machine itself took out of service (it died, or missed its ready deadline)
    // stops counting for its slot at once; the ones the reducer retires leave their slot first.
    const slot = this.slots[entry.slot]!;
    if ((slot.worker === id || slot.next === id) && (isDead(entry) || isLeaving(entry))) {
      this.releaseSlot(entry);
    }
    if (isDead(entry)) this.onDead(entry);
    else if (matches(entry, 'listening.stable') && !matchesState('listening.stable', before)) {
      this.onStable(entry);
    }
  }

  private workerActions(entry: WorkerEntry, actions: ReadonlyArray<{ type: string; params?: unknown }>) {
    const id = entry.id;
    for (const action of actions) {
      const params = (action.params ?? {}) as Record<string, unknown>;
      switch (action.type) {
        case 'sendShutdown':
          this.effects.push({ type: 'send', workerId: id, message: { type: 'zd:shutdown' } });
          break;
        case 'disconnect':
          this.effects.push({ type: 'disconnect', workerId: id });
          break;
        case 'kill':
          this.effects.push({ type: 'kill', workerId: id, signal: params.signal as 'SIGTERM' | 'SIGKILL' });
          break;
        case 'xstate.raise': {
          const timerId = `w${id}:${String(params.id)}`;
          this.s.timers[timerId] = {
            kind: 'worker',
            workerId: id,
            event: params.event as { type: string },
          };
          this.effects.push({ type: 'timer.start', timerId, ms: params.delay as number });
          break;
        }
        case 'xstate.cancel':
          this.cancelTimer(`w${id}:${String(params.sendId)}`);
          break;
        default:
          break; // assign and other built-ins change the snapshot only
      }
    }
  }

  private cancelTimer(timerId: string): void {
    if (!this.s.timers[timerId]) return;
    delete this.s.timers[timerId];
    this.effects.push({ type: 'timer.cancel', timerId });
  }

  private onReady(entry: WorkerEntry): void {
    this.log('info', 'ZD_WORKER_READY', `worker ${entry.id} ready`, {
      ...ids(entry),
      pid: entry.machine.context.pid,
    });
    if (this.config.heartbeatTimeoutMs > 0) {
      this.startTimer(pingTimerId(entry.id), { kind: 'ping', workerId: entry.id }, this.config.heartbeatIntervalMs);
    }
    const slot = this.slots[entry.slot]!;
    if (slot.next === entry.id || (slot.worker === entry.id && entry.adopted)) {
      this.rolloutQueue.push({ type: 'rollout.ready', slot: entry.slot });
    }
    if (this.s.phase === 'starting') {
      this.s.phase = 'running';
      if (this.s.reloadQueued) {
        this.s.reloadQueued = false;
        this.startReload();
      }
    }
    if (!this.s.allReadyAnnounced && readyCount(this.s) >= this.config.workers) {
      this.s.allReadyAnnounced = true;
      this.log('info', 'ZD_READY', `all ${this.config.workers} worker(s) ready`, {
        workers: this.config.workers,
      });
    }
  }

  private onStable(entry: WorkerEntry): void {
    const slot = this.slots[entry.slot]!;
    if (slot.worker === entry.id) slot.failures = 0;
  }

  private onDead(entry: WorkerEntry): void {
    const outcome = outcomeOf(entry)!;
    const { pid, exit } = entry.machine.context;
    delete this.s.workers[String(entry.id)];
    this.s.retiring = this.s.retiring.filter((id) => id !== entry.id);
    const unplanned = outcome === 'crashed' || outcome === 'bootFailed' || outcome === 'lost';
    // A planned exit that failed (a non-zero code, a signal) is still worth a look.
    const unclean = exit !== null && (exit.code !== 0 || exit.signal !== null);
    this.log(
      unplanned || unclean ? 'warn' : 'info',
      'ZD_WORKER_EXITED',
      `worker ${entry.id} ${outcome}: ${outcome === 'bootFailed' ? bootFailureReason(entry) : exitDescription(exit)}`,
      { ...ids(entry), pid, exitCode: exit?.code ?? null, signal: exit?.signal ?? null, outcome },
    );

    // Unless releaseSlot() already counted it, it was draining or being stopped: planned.

    if (this.s.phase === 'stopping' && liveWorkers(this.s).length === 0) this.exit();
  }

  /** A worker a slot points at stopped counting without the reducer retiring it. */
  private releaseSlot(entry: WorkerEntry): void {
    const slot = this.slots[entry.slot]!;
    const { stopReason } = entry.machine.context;
    const neverReady = outcomeOf(entry) === 'bootFailed' || stopReason === 'ready-timeout' || stopReason === 'misconfigured';
    if (slot.next === entry.id) {
      // A rollout's replacement failed before it was ready.
      slot.next = null;
      this.noteBootFailure(entry);
      this.rolloutQueue.push({ type: 'rollout.failed', slot: entry.slot, reason: bootFailureReason(entry) });
      return;
    }
    slot.worker = null;
    if (entry.adopted) {
      this.rolloutQueue.push({ type: 'rollout.failed', slot: entry.slot, reason: bootFailureReason(entry) });
    }
    this.slotLost(entry, neverReady);
  }

  /** The worker that counted for a slot is gone, unplanned. */
  private slotLost(entry: WorkerEntry, neverReady: boolean): void {
    const slot = this.slots[entry.slot]!;
    if (this.s.phase === 'stopping') return;
    slot.failures += 1;
    if (neverReady) this.noteBootFailure(entry);
    if (this.s.phase === 'starting') return; // judged as a whole in reconcile()
    this.s.counters.crashes += 1;
    if (slot.failures > this.config.maxRestarts) {
      slot.parked = true;
      this.log(
        'error',
        'ZD_CRASH_LOOP',
        `slot ${entry.slot} failed ${slot.failures} times in a row without staying up ${this.config.stableAfterMs}ms: not restarting it until the next reload`,
        { slot: entry.slot, failures: slot.failures },
        entry.id,
      );
      return;
    }
    const restartInMs = slot.next === null ? backoffMs(this.config, slot.failures) : null;
    this.log(
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

  private noteBootFailure(entry: WorkerEntry): void {
    this.s.lastBootFailure = { workerId: entry.id, reason: bootFailureReason(entry) };
  }

  private respawn(slotIndex: number): void {
    const slot = this.slots[slotIndex]!;
    if (this.s.phase !== 'running' || slot.worker !== null || slot.next !== null || slot.parked) return;
    slot.restarts += 1;
    slot.worker = this.fork(slotIndex, this.s.generation);
  }

  /**
   * Keeps every slot either served, booting, waiting on its backoff timer, or parked; decides the
   * fatal cases. Runs after every event, so no handler has to remember to schedule a respawn.
   */
  private reconcile(): void {
    if (this.s.phase === 'starting') {
      if (this.slots.every((slot) => slot.worker === null)) {
        const failure = this.s.lastBootFailure;
        this.log(
          'error',
          'ZD_BOOT_FAILED',
          `no worker became ready: ${failure?.reason ?? 'unknown'}`,
          { reason: failure?.reason ?? null },
          failure?.workerId,
        );
        this.beginStop(EXIT.fatal);
      }
      return;
    }
    if (this.s.phase !== 'running') return;
    this.slots.forEach((slot, index) => {
      const timerId = respawnTimerId(index);
      if (slot.worker !== null || slot.next !== null || slot.parked) {
        this.cancelTimer(timerId);
        return;
      }
      if (this.s.timers[timerId]) return;
      this.s.timers[timerId] = { kind: 'respawn', slot: index };
      this.effects.push({ type: 'timer.start', timerId, ms: backoffMs(this.config, Math.max(1, slot.failures)) });
    });
    if (this.s.rollout === null && this.slots.every((slot) => slot.parked)) {
      this.log('error', 'ZD_CRASH_LOOP', 'every worker slot is in a crash loop: stopping', {
        slots: this.slots.length,
      });
      this.beginStop(EXIT.fatal);
    }
  }

  // -- reloads ----------------------------------------------------------------------------------

  private requestReload(source: string): void {
    this.s.counters.reloadsRequested += 1;
    if (this.s.phase === 'stopping') {
      this.s.counters.reloadsRefused += 1;
      this.log('warn', 'ZD_RELOAD_REFUSED', `reload (${source}) refused: zd is shutting down`, { source });
      return;
    }
    if (this.s.phase === 'starting' || this.s.rollout !== null) {
      const why = this.s.phase === 'starting' ? 'no worker is ready yet' : 'a rollout is running';
      if (this.s.reloadQueued) {
        this.s.counters.reloadsCoalesced += 1;
        this.log('info', 'ZD_RELOAD_QUEUED', `reload (${source}) coalesced into the one already queued (${why})`, {
          source,
          coalesced: true,
        });
      } else {
        this.s.reloadQueued = true;
        this.log('info', 'ZD_RELOAD_QUEUED', `reload (${source}) queued: it runs when the current one ends (${why})`, {
          source,
          coalesced: false,
        });
      }
      return;
    }
    this.startReload();
  }

  /** A rolling restart of every slot to a new generation. */
  private startReload(): void {
    const generation = ++this.s.generation;
    this.s.counters.rolloutsStarted += 1;
    this.s.replaceQueue = []; // the reload replaces every slot anyway
    this.log('info', 'ZD_RELOAD_STARTED', `rolling restart to generation ${generation}`, {
      generation,
      workers: this.slots.length,
    });
    this.startRollout('reload', generation, this.slots.map((_, index) => index), this.config.maxSurge, this.config.maxUnavailable);
  }

  /** Replaces some slots' workers with the same code, one at a time, each ready before its predecessor drains. */
  private startReplacement(slots: number[]): void {
    this.s.counters.replacementsStarted += 1;
    this.log('info', 'ZD_REPLACE_STARTED', `replacing the worker of slot ${slots.join(', ')}`, { slots });
    this.startRollout('replace', this.s.generation, slots, 1, 0);
  }

  private startRollout(kind: 'reload' | 'replace', generation: number, slots: number[], surge: number, unavailable: number): void {
    const [initial] = initialTransition(rolloutMachine, { generation, slots, surge, unavailable, kind });
    this.s.rollout = persist(initial);
    this.rolloutQueue.push({ type: 'rollout.start' });
  }

  /** Memory or heartbeat: this slot's worker must go, by the ready-before-drain path. */
  private requestReplace(slotIndex: number): void {
    if (this.s.phase !== 'running') return;
    const rollout = this.s.rollout?.context;
    if (rollout) {
      // Already on its way to being replaced, or queued: nothing more to do.
      if (rollout.pending.includes(slotIndex) || rollout.booting.includes(slotIndex)) return;
      if (!this.s.replaceQueue.includes(slotIndex)) this.s.replaceQueue.push(slotIndex);
      return;
    }
    this.startReplacement([slotIndex]);
  }

  private drainRolloutQueue(): void {
    while (this.rolloutQueue.length > 0) {
      const event = this.rolloutQueue.shift()!;
      if (this.s.rollout === null) continue; // it ended; late news of its workers
      const from = this.s.rollout.value;
      const [next, actions] = transition(
        rolloutMachine,
        rolloutMachine.resolveState(this.s.rollout),
        event,
      );
      this.s.rollout = persist(next);
      this.transitions.push({
        machine: 'rollout',
        id: next.context.generation,
        from: valueName(from),
        event: event.type,
        to: valueName(next.value),
      });
      for (const action of actions) {
        const params = action.params as { slot?: number; retireFirst?: boolean } | undefined;
        const slot = params?.slot;
        if (action.type === 'replace') this.replaceSlot(slot!, params?.retireFirst === true);
        else if (action.type === 'retire') this.retireSlot(slot!);
        else if (action.type === 'stopReplacement') this.stopReplacement(slot!);
      }
      if (next.status === 'done') this.endRollout(next.context, next.value === 'done');
    }
  }

  private replaceSlot(index: number, retireFirst: boolean): void {
    const slot = this.slots[index]!;
    const { generation, kind } = this.s.rollout!.context;
    const current = getWorker(this.s, slot.worker);
    if (kind === 'reload' && current && current.generation === generation && !isDead(current)) {
      // Already running the new code (a crash respawn during this rollout): adopt it.
      if (isReady(current)) this.rolloutQueue.push({ type: 'rollout.ready', slot: index });
      else current.adopted = true;
      return;
    }
    this.cancelTimer(respawnTimerId(index));
    // maxUnavailable: the old worker may go first, if the pool keeps its floor without it.
    if (retireFirst && current && isReady(current) && readyCount(this.s) - 1 >= capacityFloor(this.s)) {
      slot.worker = null;
      this.retire(current, 'superseded');
    }
    slot.next = this.fork(index, generation);
  }

  private retireSlot(index: number): void {
    const slot = this.slots[index]!;
    const adopted = getWorker(this.s, slot.worker);
    if (adopted) adopted.adopted = false;
    if (slot.next === null) return; // an adopted worker: nothing older to retire
    const old = getWorker(this.s, slot.worker);
    slot.worker = slot.next;
    slot.next = null;
    slot.failures = 0;
    slot.parked = false;
    if (old) this.retire(old, 'superseded');
  }

  private stopReplacement(index: number): void {
    const slot = this.slots[index]!;
    const replacement = getWorker(this.s, slot.next);
    slot.next = null;
    if (replacement) this.toWorker(replacement.id, { type: 'stop', reason: 'aborted' });
    const adopted = getWorker(this.s, slot.worker);
    if (adopted) adopted.adopted = false;
  }

  /**
   * Takes a worker out of service: a serving one drains (after its staggered turn, when
   * retirements are staggered), a booting one is stopped.
   */
  private retire(entry: WorkerEntry, reason: StopReason): void {
    if (isBooting(entry)) {
      this.toWorker(entry.id, { type: 'stop', reason });
      return;
    }
    if (!isReady(entry)) return;
    const staggered = this.config.retireStaggerMs > 0 && this.s.phase !== 'stopping';
    if (staggered && (this.s.timers[STAGGER_TIMER] || this.s.retiring.length > 0)) {
      this.s.retiring.push(entry.id); // serves on until its turn
      return;
    }
    this.drain(entry);
    if (staggered) this.startTimer(STAGGER_TIMER, { kind: 'stagger' }, this.config.retireStaggerMs);
  }

  private drain(entry: WorkerEntry): void {
    this.log('info', 'ZD_WORKER_DRAINING', `worker ${entry.id} draining`, {
      ...ids(entry),
      pid: entry.machine.context.pid,
      drainTimeoutMs: this.config.drainTimeoutMs,
    });
    this.toWorker(entry.id, { type: 'drain' });
  }

  /**
   * The stagger interval passed: the next superseded worker starts draining, unless a crash has
   * left the pool short, in which case it keeps serving until capacity is back.
   */
  private nextRetirement(): void {
    const next = getWorker(this.s, this.s.retiring[0] ?? null);
    if (!next) return;
    if (readyCount(this.s) - 1 >= capacityFloor(this.s)) {
      this.s.retiring.shift();
      this.drain(next);
    }
    this.startTimer(STAGGER_TIMER, { kind: 'stagger' }, this.config.retireStaggerMs);
  }

  // -- heartbeat and memory ---------------------------------------------------------------------

  private ping(workerId: WorkerId): void {
    const entry = getWorker(this.s, workerId);
    if (!entry || !isReady(entry)) return;
    if (!entry.machine.context.connected) return; // its channel closed: the exit will follow
    const seq = ++entry.pingSeq;
    this.effects.push({ type: 'send', workerId, message: { type: 'zd:ping', seq } });
    this.startTimer(pongTimerId(workerId), { kind: 'pong', workerId, seq }, this.config.heartbeatTimeoutMs);
  }

  private pong(workerId: WorkerId, seq: number): void {
    const entry = getWorker(this.s, workerId);
    const pending = this.s.timers[pongTimerId(workerId)];
    if (!entry || !isReady(entry) || pending?.kind !== 'pong' || pending.seq !== seq) return; // late or stray
    this.cancelTimer(pongTimerId(workerId));
    this.startTimer(pingTimerId(workerId), { kind: 'ping', workerId }, this.config.heartbeatIntervalMs);
  }

  private pongOverdue(workerId: WorkerId, seq: number): void {
    const entry = getWorker(this.s, workerId);
    if (!entry || !isReady(entry)) return;
    // Keep watching: the replacement may have to wait for a rollout, and the worker may recover.
    this.startTimer(pingTimerId(workerId), { kind: 'ping', workerId }, this.config.heartbeatIntervalMs);
    const slot = this.slots[entry.slot]!;
    const rollout = this.s.rollout?.context;
    const underway = this.s.replaceQueue.includes(entry.slot) || rollout?.pending.includes(entry.slot) || rollout?.booting.includes(entry.slot);
    if (slot.worker !== entry.id || underway) return;
    this.log(
      'warn',
      'ZD_WORKER_UNRESPONSIVE',
      `worker ${workerId} did not answer ping ${seq} within ${this.config.heartbeatTimeoutMs}ms: its event loop is blocked; replacing it`,
      { ...ids(entry), pid: entry.machine.context.pid, heartbeatTimeoutMs: this.config.heartbeatTimeoutMs },
    );
    this.requestReplace(entry.slot);
  }

  private stopHeartbeat(entry: WorkerEntry): void {
    this.cancelTimer(pingTimerId(entry.id));
    this.cancelTimer(pongTimerId(entry.id));
  }

  private memorySample(workerId: WorkerId, rssBytes: number): void {
    const limit = this.config.maxMemoryBytes;
    const entry = getWorker(this.s, workerId);
    if (limit <= 0 || !entry || !isReady(entry) || rssBytes <= limit) return;
    if (this.slots[entry.slot]!.worker !== entry.id) return; // already superseded
    const rollout = this.s.rollout?.context;
    const queued = this.s.replaceQueue.includes(entry.slot) || rollout?.pending.includes(entry.slot) || rollout?.booting.includes(entry.slot);
    if (queued) return;
    this.log('warn', 'ZD_WORKER_OVER_MEMORY', `worker ${workerId} uses ${Math.round(rssBytes / 1048576)} MB, over the ${Math.round(limit / 1048576)} MB limit: replacing it`, {
      ...ids(entry),
      pid: entry.machine.context.pid,
      rssBytes,
      maxMemoryBytes: limit,
    });
    this.requestReplace(entry.slot);
  }

  private endRollout(context: RolloutContext, done: boolean): void {
    this.s.rollout = null;
    const reason = context.failure?.reason ?? null;
    const { generation, kind } = context;
    this.s.lastRollout = { generation, outcome: done ? 'done' : 'aborted', reason, kind };
    if (kind === 'reload') this.s.lastReload = this.s.lastRollout;
    const failed = context.failure && context.failure.slot >= 0 ? this.s.lastBootFailure : null;
    if (kind === 'replace') {
      if (done) this.log('info', 'ZD_REPLACE_DONE', `replaced ${context.replaced} worker(s)`, { replaced: context.replaced });
      else this.log('error', 'ZD_REPLACE_ABORTED', `replacement aborted: ${reason}; the worker it was to replace keeps serving`, { reason }, failed?.workerId);
    } else if (done) {
      this.log('info', 'ZD_RELOAD_DONE', `generation ${generation} serving on all ${context.total} slot(s)`, {
        generation,
        replaced: context.replaced,
      });
    } else {
      this.log(
        'error',
        'ZD_RELOAD_ABORTED',
        `rollout to generation ${generation} aborted: ${reason}; the previous workers keep serving`,
        { generation, reason, slot: context.failure?.slot ?? null },
        failed?.workerId,
      );
    }
    if (this.s.phase !== 'running') return;
    if (this.s.reloadQueued) {
      this.s.reloadQueued = false;
      this.startReload();
    } else if (this.s.replaceQueue.length > 0) {
      const slots = this.s.replaceQueue;
      this.s.replaceQueue = [];
      this.startReplacement(slots);
    }
  }

  // -- stopping ---------------------------------------------------------------------------------

  /** A stop asked for by a signal or by `zd stop` (`source`), which counts as SIGTERM. */
  private terminate(signal: 'SIGTERM' | 'SIGINT', source: string): void {
    if (this.s.phase !== 'stopping') {
      this.log('info', 'ZD_SHUTDOWN', `${source}: draining every worker, then exiting (send it again to force)`, {
        signal,
        source,
      });
      this.beginStop(EXIT.ok);
      return;
    }
    // A second signal: the user is done waiting.
    const code = signal === 'SIGINT' ? EXIT.forcedInt : EXIT.forcedTerm;
    this.log('warn', 'ZD_SHUTDOWN_FORCED', `${source} again: killing every worker now`, { signal, source });
    for (const entry of liveWorkers(this.s)) {
      if (isReady(entry)) this.toWorker(entry.id, { type: 'drain' }); // still serving out a shutdown delay
      this.toWorker(entry.id, { type: 'kill' });
    }
    this.s.exitCode = code;
    this.exit();
  }

  private beginStop(exitCode: number): void {
    this.s.phase = 'stopping';
    this.s.exitCode = exitCode;
    if (this.s.reloadQueued) {
      this.s.reloadQueued = false;
      this.s.counters.reloadsDropped += 1;
    }
    if (this.s.rollout !== null) this.rolloutQueue.push({ type: 'rollout.abort', reason: 'shutdown' });
    this.drainRolloutQueue();
    this.s.replaceQueue = [];
    this.slots.forEach((slot, index) => {
      slot.worker = null;
      slot.next = null;
      this.cancelTimer(respawnTimerId(index));
    });
    for (const entry of liveWorkers(this.s)) if (isBooting(entry)) this.retire(entry, 'shutdown');
    // A graceful stop may first keep serving while a load balancer notices (readiness already
    // fails); a fatal one does not wait.
    const delay = exitCode === EXIT.ok ? this.config.shutdownDelayMs : 0;
    if (delay > 0 && readyCount(this.s) > 0) {
      this.log('info', 'ZD_SHUTDOWN_DELAY', `serving ${delay}ms more while readiness fails, then draining`, { shutdownDelayMs: delay });
      this.startTimer(STOP_DELAY_TIMER, { kind: 'stop-delay' }, delay);
    } else {
      this.drainAll();
    }
    if (liveWorkers(this.s).length === 0) this.exit();
  }

  /** Stopping: every worker still serving drains now, staggering or not. */
  private drainAll(): void {
    this.s.draining = true;
    this.cancelTimer(STAGGER_TIMER);
    this.s.retiring = [];
    for (const entry of liveWorkers(this.s)) this.retire(entry, 'shutdown');
  }

  private exit(): void {
    const code = this.s.exitCode ?? EXIT.ok;
    this.s.phase = 'exited';
    for (const timerId of Object.keys(this.s.timers)) this.cancelTimer(timerId);
    this.log(code === 0 ? 'info' : 'error', 'ZD_STOPPED', `zd exiting with code ${code}`, { exitCode: code });
    this.effects.push({ type: 'exit', code });
  }
}

// ---------------------------------------------------------------------------------------------

function persist<T extends { value: unknown; context: unknown }>(snapshot: T): StoredSnapshot<T['context']> {
  return { value: snapshot.value as StoredSnapshot<unknown>['value'], context: snapshot.context };
}

function ids(entry: WorkerEntry) {
  return { workerId: entry.id, slot: entry.slot, generation: entry.generation };
}



