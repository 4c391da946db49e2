// The flight recorder: the runtime hands it what init() is given and every step before its
// effects run (RuntimeJournal); it keeps the last events in a ring and, with --record, appends
// them to the journal file. It never throws into the runtime: a failure is reported and costs the
// journal, never the primary.
import { isoTime, monotonicMs } from '../clock.ts';
import type { CoreConfig } from '../core/config.ts';
import type { Effect } from '../core/effects.ts';
import type { PrimaryEvent, Release, WorkerId } from '../core/events.ts';
import type { MachineTransition } from '../core/reduce.ts';
import type { PrimaryState } from '../core/state.ts';
import type { RuntimeJournal } from '../shell/runtime.ts';
import { VERSION } from '../version.ts';
import { droppedLine, eventLine, headerLine, snapshotLine, type HeaderFields, type StepTime } from './format.ts';
import { EventRing, RING_EVENTS, type RingBase } from './ring.ts';
import type { JournalWriter } from './writer.ts';

export interface RecorderOptions {
  name: string;
  app: string;
  pid?: number;
  /** Events kept in memory. */
  ring?: number;
  ringChunk?: number;
  /** The journal file, with --record. */
  writer?: JournalWriter | null;
  /** The worker's stderr tail the shell attaches to a log line: recorded, since a replay cannot know it. */
  stderrTail?: (workerId: WorkerId) => string | undefined;
  /** ms since start (monotonic) and the wall clock; the tests' simulated clock replaces it. */
  clock?: () => { t: number; at: number };
  onError?: (what: string, error: Error) => void;
}

function realClock(): () => { t: number; at: number } {
  const origin = monotonicMs();
  return () => ({ t: Math.round((monotonicMs() - origin) * 10) / 10, at: Date.now() });
}

export class Recorder implements RuntimeJournal {
  private readonly ring: EventRing;
  private writer: JournalWriter | null;
  private readonly clock: () => { t: number; at: number };
  private header: HeaderFields | null = null;
  /** What init() was given, for a dump that still starts there. */
  private release: Release | null = null;
  private last: RingBase | null = null;
  private n = 0;
  private failed = false;

  constructor(private readonly options: RecorderOptions) {
    this.ring = new EventRing(options.ring ?? RING_EVENTS, options.ringChunk);
    this.writer = options.writer ?? null;
    this.clock = options.clock ?? realClock();
  }

  /** --record: from the next start() on, every step also goes to this file. */
  record(writer: JournalWriter): void {
    this.writer = writer;
  }

  start(config: CoreConfig, release: Release): void {
    this.guard(() => {
      const { at } = this.clock();
      this.release = release;
      this.header = {
        version: VERSION,
        node: process.version,
        start: at,
        startedAt: isoTime(at),
        name: this.options.name,
        app: this.options.app,
        pid: this.options.pid ?? process.pid,
        config,
      };
      const header = headerLine(this.header, { from: 'init', release });
      this.writer?.append(0, () => header, () => header);
    });
  }

  step = (state: PrimaryState, event: PrimaryEvent | null, effects: Effect[], _transitions?: MachineTransition[]): void => {
    this.guard(() => {
      // Fields written out, not spread: a spread after a field takes V8's slow path (20× here).
      const { t, at } = this.clock();
      const time: StepTime = { n: event === null ? 0 : this.n + 1, t, at };
      if (event === null) {
        this.n = 0;
        this.last = { n: 0, t, at, state };
        this.ring.begin(this.last);
        return;
      }
      const before = this.last;
      if (before === null) return; // an event before init: the runtime never does this
      this.n = time.n;
      const stderr = this.stderrOf(effects);
      this.ring.push({ n: time.n, t, at, event, stderr }, before);
      this.last = { n: time.n, t, at, state };
      const writer = this.writer;
      if (!writer) return;
      writer.append(
        1,
        () => (writer.dropped > 0 ? droppedLine(before, writer.dropped, before.state) : '') + eventLine(time, event, stderr),
        () => headerLine(this.header!, { from: 'snapshot' }) + snapshotLine(before, before.state),
      );
    });
  };

  private stderrOf(effects: Effect[]): Record<string, string> | null {
    let stderr: Record<string, string> | null = null;
    for (const effect of effects) {
      if (effect.type !== 'log' || effect.stderrOf === undefined) continue;
      stderr ??= {};
      stderr[effect.stderrOf] = this.options.stderrTail?.(effect.stderrOf) ?? '';
    }
    return stderr;
  }

  /** The ring as a journal: from init if it still holds every event, else from a snapshot. */
  dump(reason: string): { text: string; events: number; from: 'init' | 'snapshot' } | null {
    const contents = this.ring.contents();
    const header = this.header;
    if (!contents || !header) return null;
    const { base, entries, fromInit } = contents;
    const release = fromInit ? this.release : null;
    const from = release ? 'init' : 'snapshot';
    const parts = [headerLine(header, release ? { from: 'init', release } : { from: 'snapshot' }, { reason })];
    if (!release) parts.push(snapshotLine(base, base.state));
    for (const entry of entries) parts.push(eventLine(entry, entry.event, entry.stderr));
    return { text: parts.join(''), events: entries.length, from };
  }

  /** The journal file, if recording: flushed and closed (at exit). */
  close(): void {
    this.writer?.close();
  }

  flush(): void {
    this.writer?.flush();
  }

  private guard(body: () => void): void {
    try {
      body();
    } catch (error) {
      if (this.failed) return;
      this.failed = true;
      this.options.onError?.('record', error as Error);
    }
  }
}
