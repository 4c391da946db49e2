// The primary's state: plain, serialisable data (JSON round-trips), owned by the reducer alone.
// Machine snapshots are stored persisted ({ value, context }) and resolved when an event arrives.
import type { StateValue } from 'xstate';
import type { RolloutContext } from '../../machines/rollout.machine.ts';
import type { WorkerContext, WorkerOutcome } from '../../machines/worker.machine.ts';
import type { GenerationFigures } from './canary.ts';
import type { Figures } from './canary-figures.ts';
import type { CoreConfig } from './config.ts';
import type { Release, WorkerId } from './events.ts';

export interface StoredSnapshot<TContext> {
  value: StateValue;
  context: TContext;
}

export interface WorkerEntry {
  id: WorkerId;
  slot: number;
  generation: number;
  machine: StoredSnapshot<WorkerContext>;
  /**
   * A worker of the rollout's generation that was already in its slot (a crash respawn that
   * loaded the new code) and that the rollout adopted instead of forking another: its readiness
   * or failure is reported to the rollout.
   */
  adopted: boolean;
  /** Last heartbeat sequence number sent. */
  pingSeq: number;
  /** This worker's pending timers (its machine's deadlines, its heartbeat), by timer id. */
  timers: Record<string, TimerOwner>;
  /** Every address it listens on (`host:port` as cluster reports it), in the order it began. */
  addresses: string[];
  /**
   * The addresses it must listen on, all of them, before it counts as ready: those of the
   * workers it replaces. null: its first `listening` will do (the first generation).
   */
  expects: string[] | null;
}

/**
 * A slot is one of the N places a worker serves in (PM2's "instance"). It points at the worker
 * that counts for it, and during a rollout at the replacement booting for it. Workers that are
 * draining or being stopped belong to no slot any more.
 */
export interface SlotState {
  worker: WorkerId | null;
  next: WorkerId | null;
  /** Consecutive failed starts or unstable crashes: drives the backoff and crash-loop detection. */
  failures: number;
  /** Total respawns of this slot, for status. */
  restarts: number;
  /** Given up after too many consecutive failures; a rollout revives it. */
  parked: boolean;
  /** The generation its worker runs: a crash respawn loads this one's release, not the newest. */
  generation: number;
}

export type TimerOwner =
  | { kind: 'worker'; workerId: WorkerId; event: { type: string } }
  | { kind: 'respawn'; slot: number }
  /** Time to restore a slot left on an aborted reload's code. */
  | { kind: 'restore'; slot: number }
  /** The next superseded worker may start draining. */
  | { kind: 'stagger' }
  /** The shutdown delay is over: drain everything. */
  | { kind: 'stop-delay' }
  /** The ports' closing is overdue: drain anyway. */
  | { kind: 'ports' }
  /** A rollout machine's own delay (the canary window, the wait for its figures). */
  | { kind: 'rollout'; generation: number; event: { type: string } }
  /** Time to ping this worker. */
  | { kind: 'ping'; workerId: WorkerId }
  /** This worker's answer to ping `seq` is overdue. */
  | { kind: 'pong'; workerId: WorkerId; seq: number };

/** The latest canary's judgement, for status, inspect and metrics. */
export interface CanaryRecord {
  generation: number;
  outcome: 'pass' | 'fail' | 'inconclusive';
  reason: string;
  canary: GenerationFigures;
  baseline: GenerationFigures;
}

export type Phase = 'starting' | 'running' | 'stopping' | 'exited';

/**
 * The listening ports' life, as the core decides it: open while zd serves; closing once a stop
 * has decided that no worker will serve them again (every zd process stops accepting, while the
 * workers still serve what was accepted); closed when the shell says so, or at its deadline.
 */
export interface Routing {
  /** Routable workers by id, ascending. */
  workers: WorkerId[];
  /** Each slot's worker where it is routable, else null (--sticky keeps a client on its slot). */
  slots: Array<WorkerId | null>;
}

export type PortsState = 'open' | 'closing' | 'closed';

export interface RolloutRecord {
  generation: number;
  outcome: 'done' | 'aborted';
  reason: string | null;
  kind: 'reload' | 'replace';
}

/** A reload asked for while another runs (or before the first worker is ready). */
export interface QueuedReload {
  /** The release it was asked for with (resolved then); null: the serving generation's. */
  release: Release | null;
  /** A rollback rolls back to whatever is previous when it starts, and says so. */
  source: string;
}

export interface PrimaryState {
  config: CoreConfig;
  /** starting: no worker has been ready yet; stopping: draining everything before exit. */
  phase: Phase;
  /** Set when stopping: the code the primary exits with once every worker is gone. */
  exitCode: number | null;
  /** Newest generation asked for: forks (rollout replacements and respawns) load it. */
  generation: number;
  nextWorkerId: WorkerId;
  /** Every worker not yet dead, sorted by id (ids only grow, so a new one is appended). */
  workers: WorkerEntry[];
  slots: SlotState[];
  rollout: StoredSnapshot<RolloutContext> | null;
  /** The latest canary's verdict. */
  canary: CanaryRecord | null;
  /** The running canary's figures over the windows so far, while its window is being extended. */
  canaryEvidence: { generation: number; canary: Figures; baseline: Figures } | null;
  /** The last rollout of either kind to end. */
  lastRollout: RolloutRecord | null;
  /** The last reload (kind `reload`) to end: what `zd reload --wait` and convergence judge by. */
  lastReload: RolloutRecord | null;
  /** A reload asked for while one runs (or before the first worker is ready): runs next. */
  reloadQueued: boolean;
  /** What the queued reload runs: the newest release asked for. */
  queuedRelease: Release | null;
  /** The settings the queued reload was asked with (re-read from the config file). */
  queuedConfig: CoreConfig | null;
  /** The settings before the running reload changed them: restored if it aborts. */
  previousConfig: CoreConfig | null;
  /** Each generation's release, for the generations still running or worth going back to. */
  releases: Record<string, Release>;
  /**
   * Generations that came to serve every slot, oldest first (the first one once it is ready):
   * the last is serving, the one before it is what `zd rollback` goes back to. Only a few kept.
   */
  completed: number[];
  /** Slots whose worker must be replaced (memory, no heartbeat) once the current rollout ends. */
  replaceQueue: number[];
  /** Superseded workers, still ready and serving, waiting their staggered turn to drain. */
  retiring: WorkerId[];
  /** Stopping, and the shutdown delay is over (or there was none): workers are draining. */
  draining: boolean;
  /**
   * Who may receive a new connection: derived from the rest of the state after every step
   * (routing.ts) and sent to the socket layer as a `route` effect when it changes.
   */
  routing: Routing;
  ports: PortsState;
  /**
   * The primary's own pending timers by id (respawn, stagger, shutdown delay); each worker keeps
   * its own in its entry. A firing whose id is pending nowhere is stale and ignored.
   */
  timers: Record<string, TimerOwner>;
  /** All N slots have had a ready worker at once (announced once). */
  allReadyAnnounced: boolean;
  /** The most recent failure to boot, kept for the fatal message when nothing ever gets ready. */
  lastBootFailure: { workerId: WorkerId; reason: string } | null;
  counters: {
    reloadsRequested: number;
    rolloutsStarted: number;
    /** Rollouts of kind `replace` (memory, heartbeat): not reloads. */
    replacementsStarted: number;
    reloadsCoalesced: number;
    /** Asked for while stopping. */
    reloadsRefused: number;
    /** Queued, then dropped because a stop began before it could run. */
    reloadsDropped: number;
    crashes: number;
  };
}

export type { WorkerOutcome };
