// What the inspector shows, folded from the stream: the latest status, the last events, and the
// rollout as a machine (its state, even once the primary has forgotten it). Pure, so the terminal,
// the plain lines and the web page all read the same thing.
import type { StatusView } from '../core/status.ts';
import type { HelloMessage, InspectMessage } from './messages.ts';

/** How many log events the views keep. */
export const RECENT_EVENTS = 10;

export interface RecentEvent {
  at: number;
  level: string;
  code: string;
  msg: string;
}

export interface RolloutDisplay {
  /** The rollout machine's state: `idle` before any rollout, then the last one's (`done`, `aborted`). */
  state: string;
  generation: number | null;
  replaced: number | null;
  total: number | null;
  bootingSlots: number[];
  /** Why the last rollout aborted. */
  reason: string | null;
}

interface Progress {
  generation: number;
  replaced: number;
  total: number;
}

export interface InspectView {
  hello: HelloMessage | null;
  status: StatusView | null;
  /** Oldest first, at most RECENT_EVENTS. */
  recent: RecentEvent[];
  /** The rollout's last known progress: the status drops the rollout the step it ends. */
  progress: Progress | null;
  steps: number;
  at: number | null;
}

export const EMPTY_VIEW: InspectView = { hello: null, status: null, recent: [], progress: null, steps: 0, at: null };

export function applyMessage(view: InspectView, message: InspectMessage): InspectView {
  switch (message.type) {
    case 'hello':
      return { ...view, hello: message, at: message.at };
    case 'snapshot':
      return { ...view, status: message.status, progress: progressOf(message.status, view.progress), at: message.at };
    case 'step': {
      const logged = message.logs.map((log) => ({ at: message.at, level: log.level, code: log.code, msg: log.msg }));
      return {
        ...view,
        status: message.status,
        progress: progressOf(message.status, view.progress),
        recent: logged.length === 0 ? view.recent : [...view.recent, ...logged].slice(-RECENT_EVENTS),
        steps: view.steps + 1,
        at: message.at,
      };
    }
  }
}

function progressOf(status: StatusView, previous: Progress | null): Progress | null {
  const r = status.rollout;
  return r ? { generation: r.generation, replaced: r.replaced, total: r.total } : previous;
}

export function rolloutDisplay(status: StatusView, progress: Progress | null): RolloutDisplay {
  const r = status.rollout;
  if (r) {
    return { state: r.state, generation: r.generation, replaced: r.replaced, total: r.total, bootingSlots: r.bootingSlots, reason: null };
  }
  const last = status.lastRollout;
  if (!last) return { state: 'idle', generation: null, replaced: null, total: null, bootingSlots: [], reason: null };
  const seen = progress?.generation === last.generation ? progress : null;
  return {
    state: last.outcome,
    generation: last.generation,
    // The step that ends a rollout is the one that counts its last replacement.
    replaced: seen ? (last.outcome === 'done' ? seen.total : seen.replaced) : null,
    total: seen?.total ?? null,
    bootingSlots: [],
    reason: last.reason,
  };
}

/** `1 of 2 replaced`, or null when it is not known. */
export function progressText(rollout: RolloutDisplay): string | null {
  return rollout.replaced === null || rollout.total === null ? null : `${rollout.replaced} of ${rollout.total} replaced`;
}

/** Local wall-clock time with milliseconds: `14:03:07.215`. */
export function clock(at: number): string {
  const d = new Date(at);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}
