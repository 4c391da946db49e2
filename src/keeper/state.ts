// The keeper's state: plain data (a JSON round trip changes nothing), shown by `zd status`.
import type { UpgradeContext } from '../../machines/upgrade.machine.ts';
import type { StateValue } from 'xstate';
import type { PrimaryId } from './types.ts';

/**
 * - starting: spawned, not ready yet (the one primary allowed to be "not ready");
 * - ready: every one of its workers is ready; it serves;
 * - retiring: replaced by a ready successor, draining;
 * - stopping: told to stop (a stop signal);
 * - killed: SIGKILLed (a failed upgrade candidate), waiting to be reaped;
 * - exited: gone (only the current primary's entry is kept once exited, for `zd status`).
 */
export type PrimaryStatus = 'starting' | 'ready' | 'retiring' | 'stopping' | 'killed' | 'exited';

export interface PrimaryExit {
  code: number | null;
  signal: string | null;
  planned: boolean;
}

export interface PrimaryEntry {
  status: PrimaryStatus;
  /** The Node binary it runs on (null: the keeper's own, re-resolved). A restart keeps it. */
  node: string | null;
  exit: PrimaryExit | null;
}

export interface UpgradeOutcome {
  requestId: string;
  ok: boolean;
  message: string;
}

export interface KeeperState {
  /** keeper.start was seen. */
  started: boolean;
  /** The primary that serves and owns the control socket (null before the first spawn). */
  current: PrimaryId | null;
  /** The upgrade candidate booting beside it (null when no upgrade is in flight, or once promoted). */
  next: PrimaryId | null;
  /** The id the next spawned primary gets: ids are never reused, so late news is recognisable. */
  nextId: PrimaryId;
  /** Live primaries, and the current one once exited. */
  primaries: Record<PrimaryId, PrimaryEntry>;
  stopping: boolean;
  /** The instance stopped serving and the held sockets were closed (a later primary binds anew). */
  socketsReleased: boolean;
  /** Why: the signal, "primary 3 stopped", "crash loop". */
  stopReason: string | null;
  /**
   * What the keeper exits with once no primary is alive: the current primary's own code when it
   * stopped as planned, 1 when it crashed or crash-looped; null (exits 0) when a stop found no
   * primary to stop.
   */
  exitCode: number | null;
  exited: boolean;
  /** The current primary crashed and its restart timer (restart.due) is armed. */
  restartPending: boolean;
  /** Crashes of the current primary within the last minute (each is forgotten by a crash.expired timer). */
  recentCrashes: number;
  /** The armed upgrade deadline: which candidate it is for, and the machine's delayed event. */
  deadline: { id: PrimaryId; event: { type: string } } | null;
  /** The upgrade machine's snapshot. */
  upgrade: { value: StateValue; context: UpgradeContext };
  lastUpgrade: UpgradeOutcome | null;
  counters: {
    upgradesRequested: number;
    upgradesDone: number;
    upgradesAborted: number;
    upgradesRefused: number;
    crashes: number;
    restarts: number;
  };
}

export const isAlive = (entry: PrimaryEntry | undefined): boolean => entry !== undefined && entry.status !== 'exited';

export function alivePrimaries(state: KeeperState): PrimaryId[] {
  return Object.keys(state.primaries)
    .map(Number)
    .filter((id) => isAlive(state.primaries[id]))
    .sort((a, b) => a - b);
}

export function upgradeStateName(state: KeeperState): string {
  const value = state.upgrade.value;
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([key, child]) => `${key}.${typeof child === 'string' ? child : JSON.stringify(child)}`)
    .join(',');
}
