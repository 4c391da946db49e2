// What the keeper and a primary say to each other over the primary's IPC channel (both ends: the
// keeper in keeper.ts, the primary in src/shell/keeper-link.ts), and the environment a keeper
// starts a primary with.

/** Environment variables the keeper sets for a primary. */
export const KEEPER_ENV = {
  /** The keeper's pid: set means "you run under a keeper". */
  keeper: 'ZD_KEEPER_PID',
  /** The keeper's number for this primary (1, 2, …). */
  primaryId: 'ZD_PRIMARY_ID',
  /** JSON [{ fd, key }]: listening sockets a previous primary bound, held by the keeper. */
  inherited: 'ZD_INHERITED_SOCKETS',
  /** JSON [{ fd, name }]: systemd's sockets (LISTEN_FDS), as the keeper was given them. */
  systemdFds: 'ZD_SYSTEMD_SOCKETS',
  /** The keeper's stderr is a terminal: log for a person, though the primary's stderr is a pipe. */
  stderrTty: 'ZD_STDERR_TTY',
  /** Started by `zd upgrade` beside a serving primary: it takes over only when promoted. */
  candidate: 'ZD_UPGRADE_CANDIDATE',
} as const;

/** Primary → keeper. */
export type PrimaryMessage =
  /** A listening socket it bound (the handle rides along): the keeper holds it from now on. */
  | { zd: 'socket'; key: string }
  /** A socket it bound is closed for good (an ephemeral port no worker listens on): let go of it. */
  | { zd: 'socket-closed'; key: string }
  /** It stops, and no worker of it will serve the ports again: close your copies, if it is the instance's. */
  | { zd: 'release-ports'; requestId: string }
  /** It stopped accepting on a socket (too many connections waited) and wants a copy back to accept again. */
  | { zd: 'lend'; requestId: string; key: string }
  /** Every worker ready (its ZD_READY). */
  | { zd: 'ready' }
  /** It is about to exit by its own decision (a stop, a retirement, a crash loop): not a crash. */
  | { zd: 'exiting'; code: number }
  /** `zd upgrade`, as its control socket got it. */
  | { zd: 'upgrade'; requestId: string; node: string | null; timeoutMs: number }
  /** `zd status` wants the keeper's view. */
  | { zd: 'status'; requestId: string };

/** Keeper → primary. */
export type KeeperMessage =
  /** A signal the keeper got (or decided on): the primary acts on it as on its own. */
  | { zd: 'signal'; signal: string }
  | { zd: 'retire' }
  | { zd: 'promote' }
  | { zd: 'upgrade-result'; requestId: string; ok: boolean; message: string; stderr: string; code?: string }
  /** The answer to `lend`: the socket's handle rides along, unless the keeper holds none under the key. */
  | { zd: 'lent'; requestId: string }
  /** The answer to `release-ports` (whether or not the keeper closed anything). */
  | { zd: 'ports-released'; requestId: string }
  | { zd: 'status'; requestId: string; keeper: { pid: number; state: unknown; sockets: string[] } };
