// What the runtime needs from the world, injected (tableflip's `env`): the real one drives
// node:cluster, signals and timers; tests can hand the runtime a fake one.
import type { CoreConfig } from '../core/config.ts';
import type { KillSignal } from '../core/effects.ts';
import type { PrimaryEvent, Release, ReleaseProblem, WorkerId } from '../core/events.ts';

export interface ForkSpec {
  workerId: WorkerId;
  slot: number;
  generation: number;
  /** What this worker runs: its generation's release. */
  release: Release;
}

/** A reload's release, and the settings it runs with. */
export interface ReloadSpec {
  release: Release;
  config: CoreConfig;
}

export type EventSink = (event: PrimaryEvent) => void;

export interface Env {
  /** Starts a worker process; its life is reported to the sink as `worker.*` events. */
  fork(spec: ForkSpec, sink: EventSink): void;
  /** Sends over IPC if, and only if, the channel is still open. Returns whether it sent. */
  send(workerId: WorkerId, message: unknown): boolean;
  disconnect(workerId: WorkerId): void;
  kill(workerId: WorkerId, signal: KillSignal): void;
  /** The worker's last stderr lines (kept a while after it exits). */
  stderrTail(workerId: WorkerId): string | undefined;
  /**
   * What a reload asked for now runs: the release the app's links point at now and, where the
   * shell re-reads them, the settings (null: unchanged). A problem refuses the reload.
   */
  readReload(): ReloadSpec | Release | ReleaseProblem;
  setTimer(ms: number, fire: () => void): () => void;
  /** Subscribes to the primary's own signals; returns the unsubscribe. */
  onSignal(signal: NodeJS.Signals, handler: () => void): () => void;
  /** A canary window opens: these workers reset their figures and start measuring (measure.ts). */
  measureStart(workerIds: WorkerId[]): void;
  /**
   * It closes: each worker stops and sends its figures; one `canary.figures` event reaches the sink
   * once all answered, or after 2 s (null for a worker that did not answer or has gone).
   */
  measureCollect(workerIds: WorkerId[], requestId: number, sink: EventSink): void;
  /** The core's routable set: new connections go to these workers only (sockets.ts). */
  route(workerIds: readonly WorkerId[], slots: ReadonlyArray<WorkerId | null>): void;
  /**
   * Stop accepting on every port, in every zd process (the keeper's copies too); `done` once
   * nothing of zd's accepts any more.
   */
  closePorts(done: () => void): void;
}
