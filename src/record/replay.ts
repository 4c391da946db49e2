// Replay: the journal's events through the same pure reducer, one step at a time. No process, no
// timer, no file but the journal: the reducer decides again exactly what it decided live, and the
// shell's only additions to those decisions (the stderr tails of log lines) come from the journal.
import type { Effect } from '../core/effects.ts';
import type { PrimaryEvent } from '../core/events.ts';
import { init, reduce, type MachineTransition } from '../core/reduce.ts';
import type { PrimaryState } from '../core/state.ts';
import { parseDuration } from '../cli/duration.ts';
import { ZdError } from '../errors.ts';
import type { Journal, StepTime } from './format.ts';

export interface ReplayStep extends StepTime {
  kind: 'step';
  /** null for step 0, init(). */
  event: PrimaryEvent | null;
  state: PrimaryState;
  effects: Effect[];
  transitions: MachineTransition[];
  /** The stderr tails the live shell attached to this step's log lines, by worker id. */
  stderr: Record<string, string> | null;
}

/** Where the replay took a recorded state instead of deciding one. */
export interface ReplayResume extends StepTime {
  kind: 'resume';
  why: 'snapshot' | 'dropped';
  /** For `dropped`: how many events were not recorded. */
  count: number;
  state: PrimaryState;
}

export type ReplayItem = ReplayStep | ReplayResume;

export function* replayJournal(journal: Journal): Generator<ReplayItem> {
  const { header } = journal;
  let state: PrimaryState | null = null;
  if (header.from === 'init') {
    const step = init(header.config, header.release);
    state = step.state;
    yield { kind: 'step', n: 0, t: 0, at: header.start, event: null, state, effects: step.effects, transitions: step.transitions, stderr: null };
  }
  for (const line of journal.lines) {
    switch (line.k) {
      case 'snapshot':
      case 'dropped':
        state = line.state;
        yield { kind: 'resume', why: line.k, count: line.k === 'dropped' ? line.count : 0, n: line.n, t: line.t, at: line.at, state };
        break;
      case 'event': {
        if (state === null) break; // parseJournal guarantees a snapshot first
        const step = reduce(state, line.event);
        state = step.state;
        yield { kind: 'step', n: line.n, t: line.t, at: line.at, event: line.event, state, effects: step.effects, transitions: step.transitions, stderr: line.stderr ?? null };
        break;
      }
    }
  }
}

/**
 * `--until T`: a number is ms since the primary started (`90000`, or a duration: `90s`, `1.5m` is
 * not one); anything Date.parse reads (`2024-06-10T06:14:50Z`) is a wall-clock time.
 */
export type Until = { t: number } | { at: number };

export function parseUntil(text: string): Until {
  // A bare number as is: journal times have a tenth of a millisecond, which parseDuration rounds.
  const ms = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : parseDuration(text);
  if (ms !== null) return { t: ms };
  const at = /\d{4}-\d\d-\d\d/.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isNaN(at)) return { at };
  throw new ZdError('ZD_E_BAD_VALUE', `--until '${text}' is neither a time since start (90000, 90s) nor a date and time (2024-06-10T06:14:50Z)`);
}

export function reached(item: StepTime, until: Until | null): boolean {
  if (until === null) return false;
  return 't' in until ? item.t > until.t : item.at > until.at;
}

/**
 * The log lines the shell writes itself, about its own I/O, which no replay can decide again
 * (and the keeper's, which decides in a process of its own):
 * everything else zd logs is a `log` effect of the reducer and comes back in a replay. (ZD_STOPPED
 * is also the shell's when a stop signal arrives before any worker is started.)
 */
export const SHELL_LOG_CODES: ReadonlySet<string> = new Set([
  'ZD_CONFIG',
  'ZD_CONFIG_NEEDS_RESTART',
  'ZD_STALE_SOCKET',
  'ZD_CONTROL_ERROR',
  'ZD_IO_ERROR',
  'ZD_RELEASE_GONE',
  'ZD_METRICS_ERROR',
  'ZD_METRICS_APP_ERROR',
  'ZD_JOURNAL_ERROR',
  'ZD_JOURNAL_WRITTEN',
  // A worker's line too long to keep whole (src/shell/worker-output.ts).
  'ZD_LOG_LINE_SPLIT',
  // No pipes for the workers' output: socketpairs serve (src/shell/fifo.ts).
  'ZD_LOG_PIPES_FALLBACK',
  // The socket layer's (src/shell/sockets.ts), and the ports' closing as carried out.
  'ZD_ACCEPT_ERROR',
  'ZD_ACCEPT_PAUSED',
  'ZD_ACCEPT_RESUME_FAILED',
  'ZD_CONN_NO_WORKER',
  'ZD_CONN_OVERFLOW',
  'ZD_CONN_STOPPED',
  'ZD_PORTS_CLOSED',
  // The keeper link's (src/shell/keeper-link.ts).
  'ZD_RETIRING',
  'ZD_KEEPER_GONE',
  // And the keeper's own lines, on the same stderr: another process's decisions (src/keeper/).
  'ZD_KEEPER_EXIT',
  'ZD_KEEPER_PORTS_CLOSED',
  'ZD_KEEPER_NO_PRIMARY',
  'ZD_KEEPER_STOPPING',
  'ZD_PRIMARY_CRASHED',
  'ZD_PRIMARY_CRASH_LOOP',
  'ZD_PRIMARY_EXITED',
  'ZD_PRIMARY_READY',
  'ZD_PRIMARY_RESTARTING',
  'ZD_PRIMARY_RESTART_SCHEDULED',
  'ZD_PRIMARY_STARTING',
  'ZD_PRIMARY_STOPPED',
  'ZD_UPGRADE_ABORTED',
  'ZD_UPGRADE_DONE',
  'ZD_UPGRADE_REFUSED',
  'ZD_UPGRADE_STARTED',
]);
