// What becomes of the workers' output: each worker's stdout to zd's stdout and its stderr to zd's
// stderr, in whole lines (line-source.ts), unchanged unless --log-prefix asks for a prefix; a copy
// of every line into the ring `zd logs` reads (log-ring.ts).
import type { Readable } from 'node:stream';
import { forwardLines } from './line-source.ts';
import type { LogRing, LogStream } from './log-ring.ts';
import type { Output } from './output.ts';

export interface WorkerOutputOptions {
  stdout: Output;
  stderr: Output;
  ring: LogRing;
  /** zd run --log-prefix: `[worker 3 gen 2] ` before every line. */
  prefix: boolean;
  /** A worker wrote a line over MAX_LINE bytes: it went out in pieces (said the first time per worker and pipe; `total` counts them all). */
  onLongLine: (workerId: number, stream: LogStream, total: number) => void;
}

export interface WorkerPipes {
  workerId: number;
  generation: number;
  stdout: Readable | null;
  stderr: Readable | null;
}

export class WorkerOutput {
  /** Lines written in pieces since zd started (over MAX_LINE without a newline). */
  longLines = 0;

  constructor(private readonly options: WorkerOutputOptions) {}

  attach({ workerId, generation, stdout, stderr }: WorkerPipes): void {
    const { ring } = this.options;
    const prefix = this.options.prefix ? Buffer.from(`[worker ${workerId} gen ${generation}] `) : null;
    const pipe = (readable: Readable | null, output: Output, stream: LogStream) => {
      if (!readable) return;
      let warned = false;
      forwardLines(readable, output, {
        prefix,
        onLines: (lines) => ring.add(workerId, generation, stream, lines),
        onLongLine: () => {
          this.longLines++;
          if (warned) return;
          warned = true;
          this.options.onLongLine(workerId, stream, this.longLines);
        },
      });
    };
    pipe(stdout, this.options.stdout, 'out');
    pipe(stderr, this.options.stderr, 'err');
  }

  /** Before zd exits: the workers' pipes read to their end, and zd's own output taken by its reader. */
  async flush(): Promise<void> {
    await Promise.all([this.options.stdout.flush(), this.options.stderr.flush()]);
  }
}
