// Every default in one place (pino's habit): the CLI, the tests and the docs read them from here.

import type { ReadyOn } from '../../machines/worker.machine.ts';
import { backoffMs } from '../reducer-kit/backoff.ts';

export type { ReadyOn };

export interface CoreConfig {
  /** Desired number of ready workers (N). */
  workers: number;
  /** What makes a worker ready: its first `listening`, or an IPC `'ready'` message. */
  readyOn: ReadyOn;
  /** Boot deadline: forked → ready. */
  readyTimeoutMs: number;
  /**
   * A reload's replacement must stay up this long once ready before its predecessor drains and
   * the rollout counts it (Kubernetes' minReadySeconds); dying within it aborts the rollout. Once
   * one has, its generation is proven and the later ones count at once (rollout.machine.ts).
   */
  minReadyMs: number;
  /** A reload's canary window (0: no canary): its first replacement serves beside the old workers, then is judged. */
  canaryMs: number;
  /** The canary fails when its 5xx-plus-error rate is more than this many percentage points above the old generation's. */
  canaryMaxErrorPoints: number;
  /** The canary fails when its p99 latency is more than this many times the old generation's. */
  canaryMaxLatencyFactor: number;
  /** Requests the canary must have served to be judged: with fewer, its window is extended, then it is inconclusive. */
  canaryMinRequests: number;
  /** What an inconclusive canary (too little evidence after every extension, or no figures) does: abort its rollout, or let it proceed. */
  canaryInconclusive: 'abort' | 'proceed';
  /** Drain deadline: told to drain → exited, before SIGTERM. */
  drainTimeoutMs: number;
  /** Deadline after SIGTERM before SIGKILL (and after SIGKILL before giving the process up). */
  killTimeoutMs: number;
  /** A worker up this long is stable: its slot's crash backoff resets. */
  stableAfterMs: number;
  /** First respawn delay; doubles per consecutive failure. */
  backoffInitialMs: number;
  /** Respawn delay cap. */
  backoffMaxMs: number;
  /** Consecutive unstable restarts of one slot before it is declared a crash loop and parked. */
  maxRestarts: number;
  /** New workers a rollout may have booting beside the old ones (Kubernetes' maxSurge). */
  maxSurge: number;
  /** Ready workers a rollout may retire before their replacement is ready (maxUnavailable). */
  maxUnavailable: number;
  /** Least time between two old workers starting to drain (0: no staggering). */
  retireStaggerMs: number;
  /** After SIGTERM: keep serving this long (readiness already failing) before draining. */
  shutdownDelayMs: number;
  /** A ready worker that does not answer a ping within this is replaced (0: no heartbeat). */
  heartbeatTimeoutMs: number;
  /** Time between a worker's answer and the next ping. */
  heartbeatIntervalMs: number;
  /** A ready worker using more memory than this is replaced (0: no limit). */
  maxMemoryBytes: number;
}

/** A sane ceiling on the worker count: beyond it a typo (`-w 4000`) would fork-bomb the host. */
export const MAX_WORKERS = 1024;

export const DEFAULTS: Omit<CoreConfig, 'workers'> = {
  readyOn: 'listening',
  readyTimeoutMs: 30_000,
  // One second catches the deploy that dies right after it starts listening (a failed connection
  // thrown once the server is up) for the cost of one second per reload: it proves the generation.
  minReadyMs: 1_000,
  canaryMs: 0,
  // Flagger's default analysis asks for a 99 % success rate: one point of errors more than the
  // old code is already a clear regression for a service that was healthy.
  canaryMaxErrorPoints: 1,
  // Twice the old p99 (and at least 25 ms more): a regression a user feels, beyond bucket noise.
  canaryMaxLatencyFactor: 2,
  // Below ~50 requests a p99 is the maximum and one error is 2 %: too few to call anything.
  canaryMinRequests: 50,
  // Argo Rollouts' inconclusive analysis pauses a rollout; a runner that promises safety does not
  // roll out on no evidence unless told to.
  canaryInconclusive: 'abort',
  drainTimeoutMs: 30_000,
  killTimeoutMs: 5_000,
  stableAfterMs: 30_000,
  backoffInitialMs: 100,
  backoffMaxMs: 10_000,
  maxRestarts: 10,
  maxSurge: 1,
  maxUnavailable: 0,
  retireStaggerMs: 0,
  shutdownDelayMs: 0,
  heartbeatTimeoutMs: 0,
  heartbeatIntervalMs: 5_000,
  maxMemoryBytes: 0,
};

/** Delay before the n-th consecutive respawn of a slot (n ≥ 1): 100 ms doubling, capped. */
export function respawnDelayMs(config: CoreConfig, failures: number): number {
  return backoffMs(config.backoffInitialMs, config.backoffMaxMs, failures);
}
