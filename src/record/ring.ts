// Without --record, the primary keeps its last few thousand events in memory, for `zd dump` and
// for the journal written when it exits with code 1.
//
// A ring that has dropped its oldest events can no longer replay from init(), so it is kept in
// chunks, each holding the state it starts from: the reducer's states are immutable and share
// what an event did not change, so holding one per chunk costs little, and the oldest chunk is
// dropped whole. It holds between `capacity` and `capacity + chunk` events.
import type { PrimaryEvent } from '../core/events.ts';
import type { PrimaryState } from '../core/state.ts';
import type { StepTime } from './format.ts';

export const RING_EVENTS = 5000;
const CHUNK_EVENTS = 500;

export interface RingEntry extends StepTime {
  event: PrimaryEvent;
  stderr: Record<string, string> | null;
}

export interface RingBase extends StepTime {
  /** The state after step n, which the chunk's first event (n + 1) was reduced from. */
  state: PrimaryState;
}

interface Chunk {
  base: RingBase;
  entries: RingEntry[];
}

export class EventRing {
  private chunks: Chunk[] = [];
  /** Whether the oldest chunk still begins at init (step 0). */
  private fromInit = true;
  private readonly maxChunks: number;

  constructor(
    capacity = RING_EVENTS,
    private readonly chunkSize = CHUNK_EVENTS,
  ) {
    this.maxChunks = Math.max(1, Math.ceil(capacity / chunkSize)) + 1;
  }

  /** Step 0: the state init() returned. */
  begin(base: RingBase): void {
    this.chunks = [{ base, entries: [] }];
    this.fromInit = true;
  }

  /** `before` is the state `entry` was reduced from. */
  push(entry: RingEntry, before: RingBase): void {
    let last = this.chunks[this.chunks.length - 1];
    if (!last) return; // not begun
    if (last.entries.length >= this.chunkSize) {
      last = { base: before, entries: [] };
      this.chunks.push(last);
      if (this.chunks.length > this.maxChunks) {
        this.chunks.shift();
        this.fromInit = false;
      }
    }
    last.entries.push(entry);
  }

  get size(): number {
    return this.chunks.reduce((sum, chunk) => sum + chunk.entries.length, 0);
  }

  /** Where the kept events start from (init's state when nothing was dropped), and the events. */
  contents(): { fromInit: boolean; base: RingBase; entries: RingEntry[] } | null {
    const first = this.chunks[0];
    if (!first) return null;
    return { fromInit: this.fromInit, base: first.base, entries: this.chunks.flatMap((chunk) => chunk.entries) };
  }
}
