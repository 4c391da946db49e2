// What the reducer asks the runtime to do: plain data, executed only by the shell.
import type { Release, WorkerId } from './events.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type KillSignal = 'SIGTERM' | 'SIGKILL';

export type Effect =
  | { type: 'fork'; workerId: WorkerId; slot: number; generation: number; release: Release }
  | { type: 'send'; workerId: WorkerId; message: unknown }
  | { type: 'disconnect'; workerId: WorkerId }
  | { type: 'kill'; workerId: WorkerId; signal: KillSignal }
  /** A canary window opens: these workers start measuring their HTTP traffic. */
  | { type: 'measure.start'; workerIds: WorkerId[] }
  /** It closes: collect their figures, answered as one `canary.figures` event, within a deadline. */
  | { type: 'measure.collect'; workerIds: WorkerId[]; requestId: number }
  /**
   * The workers that may receive new connections from now on, ascending (every other worker gets
   * none). Emitted first in the step that changes the set, so that a worker leaves it before the
   * same step disconnects or stops it.
   */
  | { type: 'route'; workers: WorkerId[]; slots: Array<WorkerId | null> }
  /**
   * No worker will serve the ports again (a stop): every zd process stops accepting and closes its
   * copy of each socket zd bound (one it was given is left to its owner, queue and all); the
   * shell answers `ports.closed`.
   */
  | { type: 'ports.close' }
  | { type: 'timer.start'; timerId: string; ms: number }
  | { type: 'timer.cancel'; timerId: string }
  | LogEffect
  | { type: 'exit'; code: number };

export interface LogEffect {
  type: 'log';
  level: LogLevel;
  code: string;
  msg: string;
  fields?: Record<string, unknown>;
  /** Ask the shell to attach this worker's last stderr lines (the core never sees the app's output). */
  stderrOf?: WorkerId;
}

/** Effects that address one worker's process or channel. */
export function addressedWorker(effect: Effect): WorkerId | undefined {
  switch (effect.type) {
    case 'send':
    case 'disconnect':
    case 'kill':
      return effect.workerId;
    default:
      return undefined;
  }
}
