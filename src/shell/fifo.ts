// A real pipe for a child's stdout or stderr, where Node's stdio 'pipe' gives a socketpair.
//
// Why (issue 23, bench/logs.mjs): a worker that logs writes one small message per line. On a unix
// socket each write is a buffer of its own that the reader's kernel walks one by one; a pipe
// appends a small write to the page already queued, so the reader takes 64 KB in a few copies. The
// primary's CPU per MB forwarded fell from about 3–5 ms to 1.3 ms, and the workers' own per write.
//
// Node has no pipe() (nor mkfifo), so this makes a FIFO with mkfifo(1) in a private directory of
// its own, opens both ends and unlinks it at once: what is left is an anonymous pipe. Both ends are
// opened close-on-exec (libuv's default), so only the child given the write end holds it.
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, unlinkSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** mkfifo(1) is a fork and an exec: past this, the fork waits no longer for it (a socketpair serves). */
const MKFIFO_MS = 2000;

export interface Fifo {
  /** The read end, this process's: a stream like a child's `stdout`. */
  readable: Socket;
  /** The write end, for the child's stdio; closed here once the child holds it (`handedOver`). */
  writeFd: number;
}

export interface Fifos {
  pipes: Fifo[];
  /** The child was started (it holds its own copies of the write ends), or failed to: this process lets go of them. */
  handedOver(): void;
}

/**
 * `count` pipes, or the reason there are none (no mkfifo, no room for descriptors): the caller
 * falls back to Node's socketpair, which only costs more CPU.
 */
export function makeFifos(count: number): Fifos | { error: Error } {
  let dir: string | null = null;
  /** Descriptors not yet in a Fifo, and the Fifos made: let go of if a later one fails. */
  const fds: number[] = [];
  const pipes: Fifo[] = [];
  try {
    dir = mkdtempSync(join(tmpdir(), 'zd-fifo-'));
    const paths = Array.from({ length: count }, (_, i) => join(dir!, String(i)));
    const made = spawnSync('mkfifo', ['-m', '600', ...paths], { stdio: ['ignore', 'ignore', 'pipe'], timeout: MKFIFO_MS });
    if (made.error) throw made.error;
    if (made.status !== 0) throw new Error(`mkfifo: ${String(made.stderr).trim() || `exit ${made.status ?? made.signal}`}`);
    for (const path of paths) {
      // The read end first: opening the write end needs a reader, or it waits (or, non-blocking, fails).
      const readFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      fds.push(readFd);
      const writeFd = openSync(path, constants.O_WRONLY);
      fds.push(writeFd);
      unlinkSync(path);
      pipes.push({ readable: new Socket({ fd: readFd, readable: true, writable: false }), writeFd });
      fds.length = 0;
    }
    let open = true;
    return {
      pipes,
      handedOver: () => {
        if (!open) return;
        open = false;
        for (const pipe of pipes) closeSync(pipe.writeFd);
      },
    };
  } catch (error) {
    for (const pipe of pipes) {
      pipe.readable.destroy();
      fds.push(pipe.writeFd);
    }
    for (const fd of fds) closeSync(fd);
    return { error: error as Error };
  } finally {
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
  }
}
