// `zd run --record FILE`: appends journal lines to FILE, bounded in size and in memory, without
// ever letting a slow disk hold up the primary for more than one write.
//
// Flush policy. Each step's lines are written with one writeSync() as soon as the reducer has
// taken the event, before its effects run: once written, a line is in the kernel, and a SIGKILL
// of the primary (or the OOM killer) loses nothing already written (it is not fsync'ed: a power
// cut may lose what the page cache held). Every line has its own offset in the file, decided
// when it is queued, so that writes finishing out of order (a background write, and the same
// bytes written again at exit) still leave the lines in order.
//
// A slow disk. A write that takes longer than SLOW_WRITE_MS switches the writer to the background:
// lines queue in memory (at most MAX_PENDING_BYTES) and go out through asynchronous writes, one at
// a time, until the queue is empty and the disk fast again. A line that does not fit in the queue
// is dropped and counted; the next line written says how many were lost (a `dropped` line, with
// the state to resume from), never silently. At exit, whatever is queued (and a background write
// not yet reported) is written synchronously.
//
// Rotation. When FILE would grow past maxBytes, it is renamed FILE.1 (replacing the previous
// FILE.1) and a new FILE begins with a header and a snapshot of the state, so each file replays on
// its own. At most two files, 2 × maxBytes on disk. A FILE left by an earlier run becomes FILE.1.
import { closeSync, existsSync, openSync, renameSync, statSync, write, writeSync } from 'node:fs';
import { monotonicMs } from '../clock.ts';

/** One file's size limit: FILE is rotated to FILE.1 beyond it. */
export const RECORD_MAX_BYTES = 16 * 1024 * 1024;
/** Lines waiting for a slow disk: beyond this, lines are dropped (and counted). */
export const MAX_PENDING_BYTES = 1024 * 1024;
/** A write slower than this moves the writer to the background. */
export const SLOW_WRITE_MS = 20;

export interface WriterOptions {
  path: string;
  maxBytes?: number;
  maxPendingBytes?: number;
  slowWriteMs?: number;
  /** A write or rotation failed: said once per kind of failure until a write succeeds again. */
  onError?: (what: string, error: Error) => void;
  /** For tests: the clock that judges a write slow. */
  now?: () => number;
}

interface Batch {
  text: string;
  bytes: number;
  /** Events the batch records: what a failed write loses. */
  events: number;
  /** Start a new file before this batch, with these lines first. */
  rotate: string | null;
  /** Where in its file the batch goes (after the opening lines, for a batch that rotates). */
  position: number;
}

/** A background write not yet reported: kept so that an exit can write it again, in place. */
interface InFlight {
  fd: number;
  buffer: Buffer;
  position: number;
}

export class JournalWriter {
  readonly path: string;
  private fd: number;
  private readonly maxBytes: number;
  private readonly maxPendingBytes: number;
  private readonly slowWriteMs: number;
  private readonly now: () => number;
  private readonly onError: (what: string, error: Error) => void;
  /** Bytes the current file holds once everything queued is written. */
  private size = 0;
  private readonly queue: Batch[] = [];
  private pendingBytes = 0;
  private inFlight: InFlight | null = null;
  private background = false;
  private closed = false;
  private reported = new Set<string>();
  /** Events lost since the last line written: the next batch must begin with a `dropped` line. */
  dropped = 0;
  /** Totals, for tests and the bench. */
  readonly stats = { batches: 0, bytes: 0, rotations: 0, dropped: 0, slowWrites: 0, backgroundWrites: 0, slowestWriteMs: 0 };

  constructor(options: WriterOptions) {
    this.path = options.path;
    this.maxBytes = options.maxBytes ?? RECORD_MAX_BYTES;
    this.maxPendingBytes = options.maxPendingBytes ?? MAX_PENDING_BYTES;
    this.slowWriteMs = options.slowWriteMs ?? SLOW_WRITE_MS;
    this.now = options.now ?? monotonicMs;
    this.onError = options.onError ?? (() => undefined);
    // The journal of an earlier run is kept, as the previous file (a failed rename throws here,
    // before anything is truncated).
    if (existsSync(this.path) && statSync(this.path).size > 0) renameSync(this.path, `${this.path}.1`);
    // Private: it holds the config and the app's stderr tails.
    this.fd = openSync(this.path, 'w', 0o600);
  }

  /**
   * Appends one step's lines, recording `events` events, as `build` makes them (only if they can be
   * kept: a full queue costs no serialising). `reopen` gives the lines a new file starts with (a
   * header and a snapshot of the state before this step), called only on rotation. Returns false
   * if the lines were dropped: the queue for a slow disk is full.
   */
  append(events: number, build: () => string, reopen: () => string): boolean {
    if (this.closed) return false;
    const text = this.pendingBytes < this.maxPendingBytes ? build() : '';
    const bytes = Buffer.byteLength(text);
    // One step's lines always fit an empty queue, however large its snapshot.
    if (text === '' || (this.pendingBytes > 0 && this.pendingBytes + bytes > this.maxPendingBytes)) {
      this.dropped += events;
      this.stats.dropped += events;
      return false;
    }
    let rotate: string | null = null;
    if (this.size > 0 && this.size + bytes > this.maxBytes) {
      rotate = reopen();
      this.size = Buffer.byteLength(rotate);
    }
    const position = this.size;
    this.size += bytes;
    this.dropped = 0;
    this.queue.push({ text, bytes, events, rotate, position });
    this.pendingBytes += bytes;
    this.pump();
    return true;
  }

  private pump(): void {
    if (this.inFlight !== null || this.closed) return;
    if (!this.background) {
      this.writeQueuedSync(true);
      return;
    }
    const batch = this.takeForBackground();
    if (!batch) return;
    const started = this.now();
    const flight: InFlight = { fd: this.fd, buffer: Buffer.from(batch.text), position: batch.position };
    this.inFlight = flight;
    const onWritten = (error: Error | null, written: number, done: number): void => {
      if (this.closed || this.inFlight !== flight) return;
      if (!error && done + written < flight.buffer.length) {
        const from = done + written;
        write(flight.fd, flight.buffer, from, flight.buffer.length - from, flight.position + from, (e, w) => onWritten(e, w, from));
        return;
      }
      this.inFlight = null;
      this.pendingBytes -= batch.bytes;
      this.stats.backgroundWrites++;
      if (error) this.lost(batch, 'write', error);
      else this.wrote(batch);
      // Back to writing in line with the primary once the disk has caught up.
      if (this.queue.length === 0 && this.now() - started < this.slowWriteMs) this.background = false;
      this.pump();
    };
    write(flight.fd, flight.buffer, 0, flight.buffer.length, flight.position, (error, written) => onWritten(error, written, 0));
  }

  /** The queued batches up to the next rotation, joined into one write (their places follow on). */
  private takeForBackground(): Batch | null {
    const first = this.queue[0];
    if (!first) return null;
    if (first.rotate !== null) {
      this.rotate(first.rotate, true);
      first.rotate = null;
    }
    let end = 1;
    while (end < this.queue.length && this.queue[end]!.rotate === null) end++;
    const taken = this.queue.splice(0, end);
    return {
      text: taken.map((b) => b.text).join(''),
      bytes: taken.reduce((sum, b) => sum + b.bytes, 0),
      events: taken.reduce((sum, b) => sum + b.events, 0),
      rotate: null,
      position: first.position,
    };
  }

  private writeQueuedSync(mayGoBackground: boolean): void {
    while (this.queue.length > 0) {
      const batch = this.queue.shift()!;
      // A background write still in flight keeps its descriptor: closing it could let the new
      // file reuse the number, and the late write land there.
      if (batch.rotate !== null) this.rotate(batch.rotate, this.inFlight === null);
      const started = this.now();
      try {
        writeAt(this.fd, Buffer.from(batch.text), batch.position);
        this.wrote(batch);
      } catch (error) {
        this.lost(batch, 'write', error as Error);
      }
      this.pendingBytes -= batch.bytes;
      const took = this.now() - started;
      if (took > this.stats.slowestWriteMs) this.stats.slowestWriteMs = took;
      if (mayGoBackground && took > this.slowWriteMs) {
        this.stats.slowWrites++;
        this.background = true;
        this.pump();
        return;
      }
    }
  }

  private rotate(opening: string, closeOld: boolean): void {
    try {
      if (closeOld) closeSync(this.fd);
      renameSync(this.path, `${this.path}.1`);
    } catch (error) {
      this.report('rotate', error as Error);
    }
    try {
      this.fd = openSync(this.path, 'w', 0o600);
      writeAt(this.fd, Buffer.from(opening), 0);
      this.stats.rotations++;
    } catch (error) {
      this.report('rotate', error as Error);
    }
  }

  private wrote(batch: Batch): void {
    this.stats.batches++;
    this.stats.bytes += batch.bytes;
    this.reported.clear();
  }

  private lost(batch: Batch, what: string, error: Error): void {
    // Counted like a line that did not fit: the next line written says so.
    this.dropped += batch.events;
    this.stats.dropped += batch.events;
    this.report(what, error);
  }

  private report(what: string, error: Error): void {
    const key = `${what}:${(error as NodeJS.ErrnoException).code ?? error.message}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.onError(what, error);
  }

  /** Nothing queued and no write in flight. */
  get idle(): boolean {
    return this.inFlight === null && this.queue.length === 0;
  }

  /**
   * Writes what is queued, synchronously: at exit, blocking is the lesser evil. A background write
   * still in flight is written again first, in place: every batch has its own offset, so the same
   * bytes landing twice, or the late one landing last, leave the file as it should be.
   */
  flush(): void {
    if (this.closed) return;
    const flight = this.inFlight;
    if (flight) {
      try {
        writeAt(flight.fd, flight.buffer, flight.position);
      } catch (error) {
        this.report('write', error as Error);
      }
    }
    this.writeQueuedSync(false);
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    // A write still in flight would go to whatever file reused the descriptor: left open, it is
    // closed by the exit that follows.
    if (this.inFlight !== null) return;
    try {
      closeSync(this.fd);
    } catch {
      // already gone
    }
  }
}

/** Writes all of `buffer` at `position`, however many writes it takes (a file rarely needs two). */
function writeAt(fd: number, buffer: Buffer, position: number): void {
  let done = 0;
  while (done < buffer.length) done += writeSync(fd, buffer, done, buffer.length - done, position + done);
}
