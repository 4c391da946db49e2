// One of zd's own output streams (its stdout, or its stderr), shared by every pipe forwarded to it
// (line-source.ts) and, on stderr, by zd's own log lines. Every write is whole lines and nothing
// writes to the stream between two writes, so no line is ever cut by another, however long
// (issue 23: a pipe write over 4 KB is not atomic, and shared pipes mixed workers' lines).
//
// A reader slower than the workers (a log shipper behind, a `| less` nobody scrolls) is met with
// back-pressure, not memory: past HIGH_WATER queued bytes every source pauses, the workers' pipes
// fill, and their own writes wait, as they would on a pipe of their own.

/** Bytes queued in the stream, not yet taken by the reader, before every source pauses. */
export const HIGH_WATER = 1024 * 1024;
/** At exit: how long a source may stay silent before it is given up as held open by someone else. */
const FLUSH_IDLE_MS = 300;
/** At exit: how long the reader may take nothing before zd stops waiting for it. */
const FLUSH_STALL_MS = 5000;
const FLUSH_POLL_MS = 20;

type Stream = NodeJS.WritableStream & { writableLength?: number; destroyed?: boolean };

export class Output {
  private readonly paused = new Set<() => void>();
  /** Sources not yet ended, for the flush at exit. */
  private open = 0;
  /** When a source last brought data (the flush's idea of "still talking"). */
  private lastData = 0;
  /** The reader is gone (EPIPE): writes are dropped, and counted, rather than queued for nobody. */
  private broken: Error | null = null;
  droppedBytes = 0;

  constructor(
    readonly stream: Stream,
    /** Told once when the stream fails: zd keeps running, its workers keep writing. */
    private readonly onError: (error: Error) => void = () => {},
  ) {
    stream.on('drain', () => this.resumeAll());
    stream.on('error', (error: Error) => {
      if (this.broken) return;
      this.broken = error;
      this.resumeAll();
      this.onError(error);
    });
  }

  /** Writes whole lines. Never refuses: a caller that can wait asks `blocked` afterwards. */
  write(data: Buffer | string): void {
    if (this.broken || this.stream.destroyed) {
      this.droppedBytes += data.length;
      return;
    }
    this.stream.write(data);
  }

  /** Bytes handed to the stream that the reader has not taken yet. */
  get queued(): number {
    return this.stream.writableLength ?? 0;
  }

  get blocked(): boolean {
    return this.broken === null && this.queued > HIGH_WATER;
  }

  /** A source pauses: `resume` is called once the stream has drained (or failed). */
  waitDrain(resume: () => void): void {
    if (!this.blocked) {
      queueMicrotask(resume);
      return;
    }
    this.paused.add(resume);
  }

  /** A source starts: the flush at exit waits for its end. Returns what the source calls on data and at its end. */
  attach(): { data: () => void; end: () => void } {
    this.open++;
    let ended = false;
    return {
      data: () => {
        this.lastData = Date.now();
      },
      end: () => {
        if (ended) return;
        ended = true;
        this.open--;
      },
    };
  }

  /**
   * Before zd exits: every source read to its end and everything written taken by the reader. A
   * source held open by a process that outlived its worker, and a reader that takes nothing, are
   * given up after a while: an exit must not hang on them.
   */
  flush(): Promise<void> {
    this.resumeAll();
    return new Promise((resolve) => {
      let lastQueued = this.queued;
      let lastMoved = Date.now();
      const check = () => {
        const now = Date.now();
        const queued = this.queued;
        if (queued !== lastQueued) {
          lastQueued = queued;
          lastMoved = now;
        }
        const sourcesDone = this.open === 0 || now - this.lastData > FLUSH_IDLE_MS;
        const empty = queued === 0 || this.broken !== null;
        if ((sourcesDone && empty) || (queued > 0 && now - lastMoved > FLUSH_STALL_MS)) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(check, FLUSH_POLL_MS);
      check();
    });
  }

  private resumeAll(): void {
    // A source that was paused is about to talk again: the flush must not take its silence for an end.
    if (this.paused.size > 0) this.lastData = Date.now();
    const resumes = [...this.paused];
    this.paused.clear();
    for (const resume of resumes) resume();
  }
}
