// What the runtime feeds the reducer: every outcome of the outside world, as data.
// Worker ids are the core's own (assigned when it asks for a fork), never cluster's ids or pids.

import type { Figures } from './canary-figures.ts';
import type { CoreConfig } from './config.ts';

export type WorkerId = number;

export type ExitSignal = string | null;

export type TermSignal = 'SIGTERM' | 'SIGINT';
export type ReloadSignal = 'SIGHUP' | 'SIGUSR2';

/**
 * What a generation runs: the app file and working directory with every symlink resolved (a
 * release directory, not the `current` link that points at it), and the app's arguments. The
 * shell resolves it when a reload is asked for; the core pins each generation to its own.
 */
export interface Release {
  app: string;
  cwd: string;
  args: string[];
  /** Added to its workers' environment: the env file's values, as read for this generation. */
  env?: Record<string, string>;
}

/** The shell could not resolve the release a reload asked for (a broken link, a missing file). */
export interface ReleaseProblem {
  problem: string;
}

export type PrimaryEvent =
  | { type: 'worker.forked'; workerId: WorkerId; pid: number }
  | { type: 'worker.online'; workerId: WorkerId }
  | { type: 'worker.listening'; workerId: WorkerId; address?: string }
  | { type: 'worker.message'; workerId: WorkerId; message: unknown }
  | { type: 'worker.disconnect'; workerId: WorkerId }
  | { type: 'worker.exit'; workerId: WorkerId; code: number | null; signal: ExitSignal }
  /** A memory sample of a worker, taken by the runtime. */
  | { type: 'worker.memory'; workerId: WorkerId; rssBytes: number }
  | { type: 'signal.hup'; signal: ReloadSignal; release?: Release | ReleaseProblem; config?: CoreConfig }
  | { type: 'signal.term'; signal: TermSignal }
  /** A reload carries what the shell read for it: the release, and the settings re-read from the config file. */
  | { type: 'control.reload'; release?: Release | ReleaseProblem; config?: CoreConfig }
  /** `zd scale N`: a live resize, no new generation. */
  | { type: 'control.scale'; workers: number }
  /** `zd rollback`: a rolling restart back to the previous completed generation's release. */
  | { type: 'control.rollback' }
  /** `zd stop`: the same graceful stop as SIGTERM. */
  | { type: 'control.stop' }
  | { type: 'timer.fired'; timerId: string }
  /** Every zd process has stopped accepting on the ports (the answer to `ports.close`). */
  | { type: 'ports.closed' }
  /** The figures a `measure.collect` asked for (null: that worker did not answer in time). */
  | { type: 'canary.figures'; requestId: number; figures: Array<{ workerId: WorkerId; figures: Figures | null }> };

/** A worker's answer to a heartbeat ping. */
export function pongSeq(message: unknown): number | null {
  if (typeof message !== 'object' || message === null) return null;
  const m = message as { type?: unknown; seq?: unknown };
  return m.type === 'zd:pong' && typeof m.seq === 'number' ? m.seq : null;
}

/** A worker's IPC message that means "ready" (PM2's `wait_ready` convention, or zd's own). */
export function isReadyMessage(message: unknown): boolean {
  return (
    message === 'ready' ||
    (typeof message === 'object' &&
      message !== null &&
      (message as { type?: unknown }).type === 'zd:ready')
  );
}
