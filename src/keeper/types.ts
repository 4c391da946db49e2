// The keeper (issue 13): the small, stable process `zd run` becomes. It keeps the pid that
// systemd, Docker or Kubernetes knows and the listening sockets, and runs zd's primary as its
// child; `zd upgrade` starts a second primary beside the first (new zd code on disk, re-read
// config, maybe another Node binary), and only once every one of its workers is ready is the old
// one retired. tableflip / overseer / einhorn, in one Node process that loads almost nothing.
//
// As in the primary, decisions are a pure reducer over events (reduce.ts, driving the xstate
// machine machines/upgrade.machine.ts) and the shell (keeper.ts) does the I/O.

/** A primary process, by the keeper's own count (1, 2, …): pids are the shell's business. */
export type PrimaryId = number;

export interface UpgradeRequest {
  /** Who asked (the control request's id): answered exactly once. */
  requestId: string;
  /** The Node binary for the new primary; null: the keeper's own path, re-resolved. */
  node: string | null;
  /** The new primary must be ready within this, or the upgrade aborts. */
  timeoutMs: number;
}

export type KeeperEvent =
  /** The shell started (first event): spawn the first primary. */
  | { type: 'keeper.start' }
  /** A primary process exists (its pid is known to the shell). */
  | { type: 'primary.spawned'; id: PrimaryId }
  /** Every one of its workers is ready (the primary's ZD_READY). */
  | { type: 'primary.ready'; id: PrimaryId }
  /**
   * It exited. `planned`: it said it was stopping (a stop it was asked for, a retirement, or its
   * own decision such as a crash loop), with the exit code it chose; otherwise it crashed.
   */
  | { type: 'primary.exited'; id: PrimaryId; code: number | null; signal: string | null; planned: boolean }
  /** `zd upgrade`, forwarded by the current primary. */
  | { type: 'upgrade.requested'; request: UpgradeRequest }
  /** The new primary's readiness deadline. */
  | { type: 'upgrade.timeout'; id: PrimaryId }
  /** A crashed primary's restart backoff is over. */
  | { type: 'restart.due' }
  /**
   * A crash is a minute old: it no longer counts towards the crash loop. Armed by the reducer with
   * each crash, so the reducer reads no clock (the crash window is counted by timers).
   */
  | { type: 'crash.expired' }
  /**
   * A primary stops and none of its workers will serve the ports again (its core's `ports.close`):
   * the keeper closes the sockets it holds if that primary is the instance, not one being replaced.
   */
  | { type: 'ports.release'; id: PrimaryId; requestId: string }
  /** A stop signal reached the keeper (SIGTERM, SIGINT, …): passed to the primaries. */
  | { type: 'signal'; signal: 'SIGTERM' | 'SIGINT' | 'SIGHUP' | 'SIGUSR2' | 'SIGQUIT' };

export type KeeperEffect =
  /** Start a primary with this id; `node` null: the usual binary. */
  | { type: 'spawn'; id: PrimaryId; node: string | null }
  /** Send a signal to a primary. */
  | { type: 'signal'; id: PrimaryId; signal: string }
  /** Tell a primary to stop serving gracefully: it was replaced (drains like a stop, exits 0). */
  | { type: 'retire'; id: PrimaryId }
  /** The new primary is now the one: it takes over the control socket (and `zd status`). */
  | { type: 'promote'; id: PrimaryId }
  /** SIGKILL a primary that failed (and its process group: its workers). */
  | { type: 'kill'; id: PrimaryId }
  /** Arm a timer; its event is fed back when it fires. */
  | { type: 'timer'; ms: number; event: KeeperEvent }
  /**
   * Answer an upgrade request (through the current primary's control connection). `code`: a stable
   * ZD_E_UPGRADE_* code when ok is false; `id`: the primary the answer is about.
   */
  | { type: 'reply'; requestId: string; ok: boolean; message: string; id?: PrimaryId; code?: string }
  /** Close every socket held for the primaries (not systemd's: those keep their queue for the next instance). */
  | { type: 'close-sockets' }
  /** Answer a primary's `ports.release`. */
  | { type: 'ports-released'; id: PrimaryId; requestId: string }
  /** Log a line (code is a stable ZD_* code). */
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; code: string; message: string; fields?: Record<string, unknown> }
  /** The keeper exits with this code (its last primary is gone, by a stop or for good). */
  | { type: 'exit'; code: number };
