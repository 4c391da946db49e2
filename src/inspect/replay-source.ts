// `zd inspect --replay FILE`: a journal replayed into the messages a live inspector receives (a
// hello, then a step per event), so the terminal view, the plain lines and the web page show a
// recorded run exactly as they show a live one, and can move through it both ways. Pure but for
// reading the file.
import type { Effect } from '../core/effects.ts';
import type { MachineTransition } from '../core/reduce.ts';
import type { PrimaryState } from '../core/state.ts';
import { statusView } from '../core/status.ts';
import type { JournalHeader } from '../record/format.ts';
import { replayJournal } from '../record/replay.ts';
import type { Until } from '../record/replay.ts';
import type { Journal } from '../record/format.ts';
import { stepLogs, type HelloMessage, type InspectMessage, type StepLog } from './messages.ts';
import { applyMessage, EMPTY_VIEW, type InspectView } from './view.ts';

/** One moment of the replay: init (or the snapshot it starts from), or an event taken. */
export interface Position {
  n: number;
  t: number;
  at: number;
  /** The event's type; `init`, or `snapshot`/`dropped` where the replay took a recorded state. */
  event: string;
  eventData: { type: string; [field: string]: unknown };
  transitions: MachineTransition[];
  logs: StepLog[];
  state: PrimaryState;
}

/** Views are kept every this many positions; any other is folded from the one before it. */
const CHECKPOINT = 128;

export class ReplaySource {
  readonly positions: Position[] = [];
  private readonly checkpoints: InspectView[] = [];

  constructor(
    readonly journal: Journal,
    readonly file: string,
  ) {
    for (const item of replayJournal(journal)) {
      if (item.kind === 'resume') {
        const event = { type: item.why, ...(item.why === 'dropped' ? { count: item.count } : {}) };
        this.positions.push({ n: item.n, t: item.t, at: item.at, event: item.why, eventData: event, transitions: [], logs: [], state: item.state });
      } else {
        const event = (item.event ?? { type: 'init' }) as Position['eventData'];
        this.positions.push({ n: item.n, t: item.t, at: item.at, event: event.type, eventData: event, transitions: item.transitions, logs: logsOf(item.effects), state: item.state });
      }
    }
  }

  get header(): JournalHeader {
    return this.journal.header;
  }

  get count(): number {
    return this.positions.length;
  }

  hello(): HelloMessage {
    const { header } = this;
    return { type: 'hello', name: header.name, app: header.app, pid: header.pid, at: header.start };
  }

  /** The message a live inspector would have received at position i. */
  message(i: number): InspectMessage {
    const p = this.positions[i]!;
    const status = statusView(p.state);
    if (p.event === 'snapshot' || p.event === 'dropped') return { type: 'snapshot', at: p.at, status };
    return { type: 'step', at: p.at, event: p.eventData, transitions: p.transitions, logs: p.logs, status };
  }

  /** What the inspector shows once position i has been taken. */
  view(i: number): InspectView {
    const index = Math.max(0, Math.min(this.count - 1, i));
    const k = Math.floor(index / CHECKPOINT);
    while (this.checkpoints.length <= k) {
      const c = this.checkpoints.length;
      let view = c === 0 ? applyMessage(EMPTY_VIEW, this.hello()) : this.checkpoints[c - 1]!;
      for (let j = c === 0 ? 0 : (c - 1) * CHECKPOINT + 1; j <= c * CHECKPOINT && j < this.count; j++) view = applyMessage(view, this.message(j));
      this.checkpoints.push(view);
    }
    let view = this.checkpoints[k]!;
    for (let j = k * CHECKPOINT + 1; j <= index; j++) view = applyMessage(view, this.message(j));
    return view;
  }

  /** The last position at or before a moment (0 if it is before the first). */
  indexAt(until: Until): number {
    let found = 0;
    for (let i = 0; i < this.count; i++) {
      const p = this.positions[i]!;
      if ('t' in until ? p.t > until.t : p.at > until.at) break;
      found = i;
    }
    return found;
  }

  /** The next (or, with -1, previous) position after i whose step logged a warning or an error. */
  nextNotable(i: number, direction: 1 | -1): number {
    for (let j = i + direction; j >= 0 && j < this.count; j += direction) {
      if (this.positions[j]!.logs.some((log) => log.level === 'warn' || log.level === 'error')) return j;
    }
    return i;
  }

  /** What the web page draws: each worker's states and each rollout, over the positions. */
  timeline(): Timeline {
    const workers = new Map<number, Array<{ from: number; to: number; state: string }>>();
    const rollouts: Timeline['rollouts'] = [];
    let rollout: Timeline['rollouts'][number] | null = null;
    const marks: Timeline['marks'] = [];
    this.positions.forEach((p, i) => {
      const status = statusView(p.state);
      for (const w of status.workers) {
        const lanes = workers.get(w.id) ?? [];
        workers.set(w.id, lanes);
        const last = lanes[lanes.length - 1];
        if (last && last.state === w.state && last.to === i - 1) last.to = i;
        else lanes.push({ from: i, to: i, state: w.state });
      }
      const r = status.rollout;
      if (r && (rollout === null || rollout.generation !== r.generation)) {
        rollout = { generation: r.generation, from: i, to: i, outcome: 'running' };
        rollouts.push(rollout);
      } else if (r && rollout) {
        rollout.to = i;
      } else if (!r && rollout) {
        const last = status.lastRollout;
        rollout.to = i;
        rollout.outcome = last && last.generation === rollout.generation ? last.outcome : 'ended';
        rollout = null;
      }
      for (const log of p.logs) if (log.level === 'warn' || log.level === 'error') marks.push({ i, code: log.code, level: log.level });
    });
    return {
      name: this.header.name,
      file: this.file,
      from: this.header.from,
      count: this.count,
      positions: this.positions.map((p) => ({ n: p.n, t: p.t, at: p.at, event: p.event })),
      workers: [...workers].map(([id, lanes]) => ({ id, lanes })),
      rollouts,
      marks,
    };
  }
}

export interface Timeline {
  name: string;
  file: string;
  from: 'init' | 'snapshot';
  count: number;
  positions: Array<{ n: number; t: number; at: number; event: string }>;
  workers: Array<{ id: number; lanes: Array<{ from: number; to: number; state: string }> }>;
  rollouts: Array<{ generation: number; from: number; to: number; outcome: 'running' | 'done' | 'aborted' | 'ended' }>;
  marks: Array<{ i: number; code: string; level: string }>;
}

const logsOf = stepLogs;
