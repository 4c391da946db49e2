// The thin runtime: one event queue, one owner of the primary's state. It feeds every outcome of
// the world to the pure reducer and carries out the effects it returns; it decides nothing.
import type { CoreConfig } from '../core/config.ts';
import type { Effect } from '../core/effects.ts';
import type { PrimaryEvent, Release } from '../core/events.ts';
import { init, reduce, type MachineTransition } from '../core/reduce.ts';
import type { PrimaryState } from '../core/state.ts';
import type { Env } from './env.ts';
import type { Logger } from './logger.ts';
import { logFields } from './log-fields.ts';

export type StateListener = (
  state: PrimaryState,
  event: PrimaryEvent | null,
  effects: Effect[],
  transitions: MachineTransition[],
) => void;

/**
 * Sees what init() is given and every step before its effects run, so that a journal holds each
 * decision before it is carried out (the flight recorder, src/record/).
 */
export interface RuntimeJournal {
  start(config: CoreConfig, release: Release): void;
  step: StateListener;
}

const SIGNALS = ['SIGHUP', 'SIGUSR2', 'SIGTERM', 'SIGINT'] as const;

export class Runtime {
  private state: PrimaryState | undefined;
  private readonly queue: PrimaryEvent[] = [];
  private running = false;
  private readonly timers = new Map<string, () => void>();
  private readonly listeners = new Set<StateListener>();
  private readonly unsubscribe: Array<() => void> = [];
  private resolveExit!: (code: number) => void;
  /** Resolves with the exit code the core decided on; the CLI owns the actual process.exit. */
  readonly exited: Promise<number> = new Promise((resolve) => (this.resolveExit = resolve));

  constructor(
    private readonly env: Env,
    private readonly logger: Logger,
    private readonly journal: RuntimeJournal | null = null,
  ) {
    // Signals are heard from the start, before any port is bound (zd may be PID 1 in a container,
    // where an unhandled SIGTERM is simply dropped); until start() they wait in the queue.
    for (const signal of SIGNALS) {
      this.unsubscribe.push(
        this.env.onSignal(signal, () =>
          this.dispatch(
            signal === 'SIGHUP' || signal === 'SIGUSR2'
              ? { type: 'signal.hup', signal }
              : { type: 'signal.term', signal },
          ),
        ),
      );
    }
  }

  start(config: CoreConfig, release: Release): void {
    this.running = true; // effects of init may report events at once: queue them, don't re-enter
    try {
      this.journal?.start(config, release);
      const step = init(config, release);
      this.commit(step.state, null, step.effects, step.transitions);
    } finally {
      this.running = false;
    }
    this.drain();
  }

  /** Whether a stop signal arrived before start(): the caller may give up before forking. */
  get stopRequested(): boolean {
    return this.queue.some((event) => event.type === 'signal.term');
  }

  get snapshot(): PrimaryState {
    return this.state!;
  }

  subscribe(listener: StateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Queues an event; events are reduced one at a time, in arrival order. */
  dispatch = (event: PrimaryEvent): void => {
    // A reload runs the release its links point at when it is asked for: resolved here, once, so
    // the core stays free of I/O and a queued reload keeps what it was asked with.
    if ((event.type === 'signal.hup' || event.type === 'control.reload') && event.release === undefined) {
      const read = this.env.readReload();
      event = 'release' in read ? { ...event, release: read.release, config: read.config } : { ...event, release: read };
    }
    this.queue.push(event);
    this.drain();
  };

  private drain(): void {
    if (this.running || this.state === undefined) return; // running, or not started: queued
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const next = this.queue.shift()!;
        const step = reduce(this.state!, next);
        this.commit(step.state, next, step.effects, step.transitions);
      }
    } finally {
      this.running = false;
    }
  }

  private commit(state: PrimaryState, event: PrimaryEvent | null, effects: Effect[], transitions: MachineTransition[]): void {
    this.state = state;
    this.journal?.step(state, event, effects, transitions);
    for (const effect of effects) this.execute(effect);
    for (const listener of this.listeners) listener(state, event, effects, transitions);
  }

  private execute(effect: Effect): void {
    switch (effect.type) {
      case 'fork':
        this.env.fork(effect, this.dispatch);
        return;
      case 'send':
        this.env.send(effect.workerId, effect.message);
        return;
      case 'disconnect':
        this.env.disconnect(effect.workerId);
        return;
      case 'kill':
        this.env.kill(effect.workerId, effect.signal);
        return;
      case 'measure.start':
        this.env.measureStart(effect.workerIds);
        return;
      case 'measure.collect':
        this.env.measureCollect(effect.workerIds, effect.requestId, this.dispatch);
        return;
      case 'route':
        this.env.route(effect.workers, effect.slots);
        return;
      case 'ports.close':
        this.env.closePorts(() => this.dispatch({ type: 'ports.closed' }));
        return;
      case 'timer.start': {
        this.timers.get(effect.timerId)?.();
        const cancel = this.env.setTimer(effect.ms, () => {
          this.timers.delete(effect.timerId);
          this.dispatch({ type: 'timer.fired', timerId: effect.timerId });
        });
        this.timers.set(effect.timerId, cancel);
        return;
      }
      case 'timer.cancel':
        this.timers.get(effect.timerId)?.();
        this.timers.delete(effect.timerId);
        return;
      case 'log':
        this.logger[effect.level](logFields(effect, (workerId) => this.env.stderrTail(workerId)), effect.msg);
        return;
      case 'exit':
        for (const cancel of this.timers.values()) cancel();
        this.timers.clear();
        for (const off of this.unsubscribe) off();
        this.resolveExit(effect.code);
        return;
    }
  }
}
