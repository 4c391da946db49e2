// One pipe (a worker's stdout or stderr, or a primary's under the keeper) forwarded to an Output
// in whole lines: each chunk is cut after its last newline, the rest held until its line ends.
// A chunk's complete lines go out as one write (no copy, no per-line work), so forwarding costs
// about one read and one write per 64 KB, whatever the line length.
import type { Readable } from 'node:stream';
import type { Output } from './output.ts';

/**
 * A line still without its newline past this is written as it is (and counted): a worker that
 * never ends its line must not grow zd's memory. Another pipe's lines may then come between the
 * pieces.
 */
export const MAX_LINE = 1024 * 1024;

const NEWLINE = 0x0a;
const NEWLINE_BUFFER = Buffer.from('\n');

export interface LineSourceOptions {
  /** Put before every line on the output (zd run --log-prefix), or null: lines pass byte for byte. */
  prefix?: Buffer | null;
  /** Each batch of whole lines as the pipe gave them (no prefix): zd logs' ring. */
  onLines?: (lines: Buffer) => void;
  /** A line outgrew MAX_LINE and was written in pieces. */
  onLongLine?: () => void;
}

export function forwardLines(readable: Readable, output: Output, options: LineSourceOptions = {}): void {
  const prefix = options.prefix ?? null;
  const source = output.attach();
  let held: Buffer[] = [];
  let heldBytes = 0;
  /** Whether the next byte written starts a line (a long line's pieces are prefixed once). */
  let atLineStart = true;

  const emit = (lines: Buffer) => {
    options.onLines?.(lines);
    output.write(prefix === null ? lines : prefixed(lines, prefix, atLineStart));
    atLineStart = lines[lines.length - 1] === NEWLINE;
  };
  const takeHeld = (more: Buffer | null) => {
    const all = more === null ? Buffer.concat(held, heldBytes) : Buffer.concat([...held, more], heldBytes + more.length);
    held = [];
    heldBytes = 0;
    return all;
  };

  readable.on('data', (chunk: Buffer) => {
    source.data();
    const last = chunk.lastIndexOf(NEWLINE);
    if (last === -1) {
      held.push(chunk);
      heldBytes += chunk.length;
      if (heldBytes > MAX_LINE) {
        emit(takeHeld(null));
        options.onLongLine?.();
      }
    } else {
      const lines = last === chunk.length - 1 ? chunk : chunk.subarray(0, last + 1);
      emit(heldBytes > 0 ? takeHeld(lines) : lines);
      if (last + 1 < chunk.length) {
        held.push(chunk.subarray(last + 1));
        heldBytes = chunk.length - last - 1;
      }
    }
    if (output.blocked) {
      readable.pause();
      output.waitDrain(() => readable.resume());
    }
  });
  const end = () => {
    // Its writer is gone: a last line without its newline gets one, or the next line written
    // (another worker's) would be glued to it.
    if (heldBytes > 0) emit(takeHeld(NEWLINE_BUFFER));
    source.end();
  };
  readable.once('end', end);
  readable.once('close', end);
  // A pipe that fails is a pipe that ended: what it gave is written, the rest is gone with it.
  readable.on('error', end);
}

/** `lines` with `prefix` before each line (after each newline but a last one, and at the start if a line starts there). */
function prefixed(lines: Buffer, prefix: Buffer, atLineStart: boolean): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  if (atLineStart) parts.push(prefix);
  for (let newline = lines.indexOf(NEWLINE); newline !== -1; newline = lines.indexOf(NEWLINE, start)) {
    parts.push(lines.subarray(start, newline + 1));
    start = newline + 1;
    if (start < lines.length) parts.push(prefix);
  }
  if (start < lines.length) parts.push(lines.subarray(start));
  return Buffer.concat(parts);
}
