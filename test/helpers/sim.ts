// A simulated world for the pure reducer: fake processes, a fake clock, and effects executed as
// data. Scenario tests and the property suite drive zd's core through it; nothing here is real.
import { DEFAULTS, type CoreConfig } from '../../src/core/config.ts';
import type { Effect, LogEffect } from '../../src/core/effects.ts';
import type { PrimaryEvent, WorkerId } from '../../src/core/events.ts';
import { init, reduce, type MachineTransition, type Step } from '../../src/core/reduce.ts';
import type { PrimaryState } from '../../src/core/state.ts';
import { checkStep } from '../../src/core/invariants.ts';
import { getWorker } from '../../src/core/queries.ts';

/**
 * Freezes a state and everything in it that is not frozen yet: the reducer shares what an event
 * does not touch with the state before, so a write that skips its copy-on-write accessors would
 * change history. Frozen, such a write throws (modules are strict) instead.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  return value;
}

export interface SimProcess {
  id: WorkerId;
  pid: number;
  alive: boolean;
  /** IPC channel open (closed by a disconnect effect or a disconnect event). */
  connected: boolean;
  slot: number;
  generation: number;
  signals: string[];
  messages: unknown[];
  /** The last heartbeat ping this process answered. */
  answered?: number;
}

export type StepObserver = (before: PrimaryState, event: PrimaryEvent | null, step: Step) => void;

export function simConfig(overrides: Partial<CoreConfig> = {}): CoreConfig {
  return { ...DEFAULTS, workers: 2, readyTimeoutMs: 1000, minReadyMs: 0, drainTimeoutMs: 1000, killTimeoutMs: 500, ...overrides };
}

export class Sim {
  state: PrimaryState;
  now = 0;
  readonly timers = new Map<string, number>();
  readonly procs = new Map<WorkerId, SimProcess>();
  readonly effects: Effect[] = [];
  readonly events: PrimaryEvent[] = [];
  readonly transitions: MachineTransition[] = [];
  exitCode: number | null = null;
  /** Canary figures asked for and not answered yet. */
  readonly collects: Array<{ requestId: number; workerIds: number[] }> = [];
  /** How the simulated shell answers a collection as soon as it is asked (unset: left pending). */
  answerCollect: ((sim: Sim) => void) | null = null;
  /** The routable set, as the last `route` effect said (the socket layer's view). */
  routable: readonly WorkerId[] = [];
  /** Whether the simulated shell answers `ports.close` at once (unset: only its deadline ends it). */
  answerPorts = true;
  private portsToClose = false;
  private readonly observers: StepObserver[] = [];

  constructor(config: CoreConfig, observer?: StepObserver) {
    if (observer) this.observers.push(observer);
    const step = init(config);
    this.state = deepFreeze(step.state);
    for (const observe of this.observers) observe(step.state, null, step);
    this.apply(step.effects);
  }

  dispatch(event: PrimaryEvent): Step {
    const before = this.state;
    const step = reduce(before, event);
    this.events.push(event);
    this.transitions.push(...step.transitions);
    for (const observe of this.observers) observe(before, event, step);
    this.state = deepFreeze(step.state);
    this.apply(step.effects);
    return step;
  }

  private apply(effects: Effect[]): void {
    for (const effect of effects) {
      this.effects.push(effect);
      switch (effect.type) {
        case 'fork':
          this.procs.set(effect.workerId, {
            id: effect.workerId,
            pid: 10_000 + effect.workerId,
            alive: true,
            connected: true,
            slot: effect.slot,
            generation: effect.generation,
            signals: [],
            messages: [],
          });
          break;
        case 'send':
          this.open(effect.workerId, effect.type).messages.push(effect.message);
          break;
        case 'disconnect':
          this.open(effect.workerId, effect.type).connected = false;
          break;
        case 'kill':
          this.living(effect.workerId, effect.type).signals.push(effect.signal);
          break;
        case 'timer.start':
          this.timers.set(effect.timerId, this.now + effect.ms);
          break;
        case 'timer.cancel':
          this.timers.delete(effect.timerId);
          break;
        case 'exit':
          this.exitCode = effect.code;
          break;
        case 'measure.collect':
          this.collects.push({ requestId: effect.requestId, workerIds: effect.workerIds });
          break;
        case 'route':
          for (const id of effect.workers) if (!this.proc(id).alive || !this.proc(id).connected) throw new Error(`sim: worker ${id} routed to, but its process or channel is gone`);
          this.routable = effect.workers;
          break;
        case 'ports.close':
          this.portsToClose = true;
          break;
        case 'log':
          break;
      }
    }
    if (this.answerCollect && this.exitCode === null && effects.some((e) => e.type === 'measure.collect')) this.answerCollect(this);
    // The shell stops accepting at once (no keeper to wait for here), and says so.
    if (this.portsToClose && this.answerPorts && this.exitCode === null) {
      this.portsToClose = false;
      this.dispatch({ type: 'ports.closed' });
    }
    // The runtime reports a fork's pid at once; so does the simulation.
    for (const effect of effects) {
      if (effect.type === 'fork' && this.exitCode === null) {
        this.dispatch({ type: 'worker.forked', workerId: effect.workerId, pid: this.proc(effect.workerId).pid });
      }
    }
  }

  /** What a real process would refuse: the simulation refuses it too, loudly. */
  private living(id: WorkerId, what: string): SimProcess {
    const p = this.proc(id);
    if (!p.alive) throw new Error(`sim: ${what} addressed to worker ${id}, which is dead`);
    return p;
  }

  private open(id: WorkerId, what: string): SimProcess {
    const p = this.living(id, what);
    if (!p.connected) throw new Error(`sim: ${what} on worker ${id}'s closed IPC channel (ENOTSUP)`);
    return p;
  }

  proc(id: WorkerId): SimProcess {
    const p = this.procs.get(id);
    if (!p) throw new Error(`sim: no process for worker ${id}`);
    return p;
  }

  alive(): SimProcess[] {
    return [...this.procs.values()].filter((p) => p.alive);
  }

  /** The worker comes up and listens. */
  boot(id: WorkerId): void {
    this.dispatch({ type: 'worker.online', workerId: id });
    this.dispatch({ type: 'worker.listening', workerId: id });
  }

  /** Boots every forked process that has not come up yet. */
  bootAll(): void {
    for (const p of this.alive()) {
      const entry = getWorker(this.state, p.id);
      if (entry && JSON.stringify(entry.machine.value).includes('booting')) this.boot(p.id);
    }
  }

  /**
   * The process dies. Cluster usually reports the channel's disconnect before the exit, but does
   * not promise it: `exitFirst` reports them the other way round.
   */
  die(id: WorkerId, code: number | null, signal: string | null = null, exitFirst = false): void {
    const p = this.proc(id);
    if (!p.alive) throw new Error(`sim: worker ${id} is already dead`);
    p.alive = false;
    const wasConnected = p.connected;
    p.connected = false;
    if (wasConnected && !exitFirst) this.dispatch({ type: 'worker.disconnect', workerId: id });
    this.dispatch({ type: 'worker.exit', workerId: id, code, signal });
    if (wasConnected && exitFirst && this.exitCode === null) this.dispatch({ type: 'worker.disconnect', workerId: id });
  }

  /** Fires due timers in deadline order until `ms` has passed. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.timers.entries()]
        .filter(([, at]) => at <= until)
        .sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))[0];
      if (!due) break;
      this.now = Math.max(this.now, due[1]);
      this.timers.delete(due[0]);
      this.dispatch({ type: 'timer.fired', timerId: due[0] });
    }
    this.now = until;
  }

  logs(code?: string): LogEffect[] {
    return this.effects.filter(
      (e): e is LogEffect => e.type === 'log' && (code === undefined || e.code === code),
    );
  }

  readyIds(): WorkerId[] {
    return this.state.workers
      .filter((w) => JSON.stringify(w.machine.value).includes('listening'))
      .map((w) => w.id);
  }
}

/** A simulation that checks every written invariant after every step, and throws on the first broken one. */
export function checkedSim(config: CoreConfig): Sim {
  return new Sim(config, (before, event, step) => {
    const broken = checkStep(before, event, step.state, step.effects);
    if (broken.length > 0) {
      throw new Error(`after ${JSON.stringify(event)}:\n  ${broken.join('\n  ')}`);
    }
  });
}
