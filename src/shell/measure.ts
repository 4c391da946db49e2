// The shell's side of a canary's measuring (issue 14): tells workers to start measuring, and
// collects their figures into one `canary.figures` event. The workers' answers are `zd:` messages,
// which never reach the reducer as `worker.message` (classifyMessage): they are read here, from
// the cluster worker, only while a collect waits for them.
import type { Worker } from 'node:cluster';
import { isFigures, LATENCY_BUCKETS_MS, type Figures } from '../core/canary-figures.ts';
import type { WorkerId } from '../core/events.ts';
import type { EventSink } from './env.ts';

/** Longest a collect waits for the workers' answers; a worker that misses it has no figures. */
export const COLLECT_WAIT_MS = 2000;

export interface MeasureOptions {
  /** The worker's cluster handle, while it lives. */
  worker: (workerId: WorkerId) => Worker | undefined;
  /** A send that failed for another reason than the worker leaving. */
  onIoError: (workerId: WorkerId, what: string, error: Error) => void;
  waitMs?: number;
}

export interface Measure {
  start(workerIds: WorkerId[]): void;
  collect(workerIds: WorkerId[], requestId: number, sink: EventSink): void;
}

export function createMeasure(options: MeasureOptions): Measure {
  const waitMs = options.waitMs ?? COLLECT_WAIT_MS;

  /** Sends if the channel is open; false if it is not, or the send threw. */
  const send = (workerId: WorkerId, message: object, failed?: () => void): boolean => {
    const worker = options.worker(workerId);
    if (!worker || !worker.isConnected()) return false;
    try {
      worker.send(message as never, undefined, (error: Error | null) => {
        if (!error) return;
        options.onIoError(workerId, 'send', error);
        failed?.();
      });
      return true;
    } catch (error) {
      options.onIoError(workerId, 'send', error as Error);
      return false;
    }
  };

  return {
    start(workerIds) {
      for (const workerId of workerIds) send(workerId, { type: 'zd:measure', on: true, buckets: LATENCY_BUCKETS_MS });
    },

    collect(workerIds, requestId, sink) {
      const answers = new Map<WorkerId, Figures | null>();
      const cleanups: Array<() => void> = [];
      /** Set once every worker was asked: no outcome is reported from inside the effect that asked. */
      let asked = false;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        for (const cleanup of cleanups) cleanup();
        sink({ type: 'canary.figures', requestId, figures: workerIds.map((workerId) => ({ workerId, figures: answers.get(workerId) ?? null })) });
      };
      const answer = (workerId: WorkerId, figures: Figures | null) => {
        if (answers.has(workerId)) return;
        answers.set(workerId, figures);
        if (asked && workerIds.every((id) => answers.has(id))) finish();
      };
      const timer = setTimeout(finish, waitMs);

      for (const workerId of new Set(workerIds)) {
        const worker = options.worker(workerId);
        if (!worker || !worker.isConnected()) {
          answer(workerId, null);
          continue;
        }
        const onMessage = (message: unknown) => {
          const m = message as { type?: unknown; id?: unknown; figures?: unknown } | null;
          if (typeof m !== 'object' || m === null || m.type !== 'zd:figures' || m.id !== requestId) return;
          answer(workerId, isFigures(m.figures) ? copy(m.figures) : null);
        };
        // A worker leaving now will not answer: no need to wait out the deadline for it.
        const onGone = () => answer(workerId, null);
        worker.on('message', onMessage);
        worker.once('disconnect', onGone);
        worker.once('exit', onGone);
        cleanups.push(() => {
          worker.off('message', onMessage);
          worker.off('disconnect', onGone);
          worker.off('exit', onGone);
        });
        if (!send(workerId, { type: 'zd:measure', collect: true, id: requestId }, onGone)) onGone();
      }
      asked = true;
      // Every worker was already gone (or none was named): answered at once, like cluster-env's
      // failed fork, on the next microtask.
      if (workerIds.every((id) => answers.has(id))) queueMicrotask(finish);
    },
  };
}

/** Only the fields the core reads: the worker's message is the app's process's bytes. */
function copy(f: Figures): Figures {
  return {
    requests: f.requests,
    status: { '1xx': f.status['1xx'], '2xx': f.status['2xx'], '3xx': f.status['3xx'], '4xx': f.status['4xx'], '5xx': f.status['5xx'] },
    errors: f.errors,
    buckets: f.buckets.slice(),
  };
}
