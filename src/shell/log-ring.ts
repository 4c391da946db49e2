// The workers' last lines, kept in the primary for `zd logs` (the last N) and handed as they come
// to `zd logs -f` (src/control/logs.ts). Bounded in bytes and in batches, whatever the workers
// write; a batch is what one forward wrote (whole lines of one worker's pipe), copied, so that the
// ring never holds the pipe's read buffers alive.

export type LogStream = 'out' | 'err';

export interface LogBatch {
  /** Numbers the batches this primary kept, from 1: a follower that reconnects says where it was. */
  seq: number;
  workerId: number;
  generation: number;
  stream: LogStream;
  /** Whole lines, each ending in a newline. */
  data: Buffer;
}

export const RING_BYTES = 1024 * 1024;
const RING_BATCHES = 10_000;
const NEWLINE = 0x0a;

export class LogRing {
  private batches: LogBatch[] = [];
  /** Index of the oldest batch still kept (the array is compacted now and then, not shifted). */
  private head = 0;
  private bytes = 0;
  private seq = 0;
  private readonly listeners = new Set<(batch: LogBatch) => void>();

  add(workerId: number, generation: number, stream: LogStream, lines: Buffer): void {
    // Only what can be kept is copied: the tail of a batch larger than the ring, from a line's start.
    let data = lines;
    if (data.length > RING_BYTES) {
      data = data.subarray(data.length - RING_BYTES);
      const start = data.indexOf(NEWLINE);
      data = start === -1 || start === data.length - 1 ? data.subarray(0, 0) : data.subarray(start + 1);
    }
    const batch: LogBatch = { seq: ++this.seq, workerId, generation, stream, data: Buffer.from(data) };
    for (const listener of this.listeners) listener({ ...batch, data: lines });
    if (batch.data.length === 0) return;
    this.batches.push(batch);
    this.bytes += batch.data.length;
    while (this.bytes > RING_BYTES || this.batches.length - this.head > RING_BATCHES) {
      this.bytes -= this.batches[this.head]!.data.length;
      this.batches[this.head++] = undefined as never;
    }
    if (this.head > 1024 && this.head * 2 > this.batches.length) {
      this.batches = this.batches.slice(this.head);
      this.head = 0;
    }
  }

  /** The batches holding the last `count` lines, the first one cut to start at its line. */
  tail(count: number): LogBatch[] {
    const out: LogBatch[] = [];
    let lines = 0;
    for (let i = this.batches.length - 1; i >= this.head && lines < count; i--) {
      const batch = this.batches[i]!;
      let cut = batch.data.length - 1; // the batch's last newline
      let start = 0;
      for (;;) {
        const previous = cut <= 0 ? -1 : batch.data.lastIndexOf(NEWLINE, cut - 1);
        lines++;
        if (previous === -1 || lines >= count) {
          start = previous + 1;
          break;
        }
        cut = previous;
      }
      out.push(start === 0 ? batch : { ...batch, data: batch.data.subarray(start) });
    }
    return out.reverse();
  }

  /**
   * The batches after `seq` (a follower back after its stream closed), and whether some of them
   * were no longer kept.
   */
  since(seq: number): { batches: LogBatch[]; missed: boolean } {
    const kept = this.batches.slice(this.head).filter((batch) => batch.seq > seq);
    const first = kept[0]?.seq ?? this.seq + 1;
    return { batches: kept, missed: first > seq + 1 };
  }

  /** Every batch from now on, uncut (with the pipe's buffer: a listener copies what it keeps). */
  subscribe(listener: (batch: LogBatch) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The last seq handed out: where a new follower starts. */
  get last(): number {
    return this.seq;
  }
}
