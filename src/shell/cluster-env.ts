// The real environment: node:cluster workers, process signals, timers.
import cluster, { type Worker } from 'node:cluster';
import type { KillSignal } from '../core/effects.ts';
import type { WorkerId } from '../core/events.ts';
import { classifyMessage, reachesReducer } from '../core/messages.ts';
import type { Env, EventSink, ForkSpec } from './env.ts';
import { createMeasure } from './measure.ts';
import { StderrTails } from './stderr-tail.ts';
import { resolveRelease, type ReleaseSource } from './release.ts';
import type { Release, ReleaseProblem } from '../core/events.ts';
import type { ReloadSpec } from './env.ts';
import { existsSync } from 'node:fs';

export interface ClusterEnvOptions {
  /** The app as the user named it: each reload resolves it again (see release.ts). */
  source: ReleaseSource;
  /** What a reload asked for now runs with; by default the release alone, settings unchanged. */
  readReload?: () => ReloadSpec | ReleaseProblem;
  /** Node flags for the workers. */
  execArgv: string[];
  /** Added to every worker's environment. */
  workerEnv: Record<string, string>;
  /** Where a worker's stderr is forwarded, unchanged. */
  stderr: NodeJS.WritableStream;
  /** cluster's scheduling: the primary's round robin, or the operating system's. */
  sched: 'rr' | 'none';
  /** A generation's pinned release is gone from disk: its worker cannot start. */
  onReleaseGone: (workerId: WorkerId, generation: number, release: Release) => void;
  /** Reports an I/O failure the core does not model (a failed send, a channel error). */
  onIoError: (workerId: WorkerId, what: string, error: Error) => void;
}

/**
 * After a worker exits, its stderr pipe may still hold its last words (the stack trace of a boot
 * failure). The exit is reported when the pipe closes, or after this long if a grandchild keeps
 * the pipe open.
 */
const STDERR_GRACE_MS = 250;

/**
 * A write to a worker that has closed its end of the IPC channel (it is exiting: on its own, or of
 * a signal sent to the whole process group) fails with one of these, reported up to three times
 * (the send, the channel, the process). The worker is leaving, not zd failing: its disconnect and
 * exit reach the core as events of their own, so these are not I/O errors.
 */
const CHANNEL_GONE = new Set(['EPIPE', 'ECONNRESET', 'ERR_IPC_CHANNEL_CLOSED', 'ERR_IPC_DISCONNECTED']);
const channelGone = (error: Error) => CHANNEL_GONE.has((error as NodeJS.ErrnoException).code ?? '');

export function createClusterEnv(options: ClusterEnvOptions): Env {
  const workers = new Map<WorkerId, Worker>();
  const tails = new StderrTails();
  const ioError: ClusterEnvOptions['onIoError'] = (workerId, what, error) => {
    if (!channelGone(error)) options.onIoError(workerId, what, error);
  };
  const measure = createMeasure({ worker: (workerId) => workers.get(workerId), onIoError: ioError });

  // Must be set before the first setupPrimary()/fork().
  cluster.schedulingPolicy = options.sched === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  cluster.setupPrimary({
    execArgv: options.execArgv,
    // stdout passes straight through; stderr is piped so its tail can be quoted, and forwarded.
    stdio: ['inherit', 'inherit', 'pipe', 'ipc'],
  });

  return {
    fork(spec: ForkSpec, sink: EventSink) {
      const { workerId, release } = spec;
      // A release directory deleted under a running generation (a deploy tool pruning old
      // releases): the worker could only fail to load, so it is reported as one that could not
      // start, with its own line, and the slot's backoff and crash-loop parking apply.
      if (!existsSync(release.app)) {
        options.onReleaseGone(workerId, spec.generation, release);
        queueMicrotask(() => sink({ type: 'worker.exit', workerId, code: null, signal: null }));
        return;
      }
      let worker: Worker;
      try {
        // Each generation runs its own release: cluster reads these settings at every fork.
        cluster.setupPrimary({ exec: release.app, args: release.args, cwd: release.cwd });
        worker = cluster.fork({
          ...options.workerEnv,
          // The generation's own: its env file and the settings it was started with.
          ...release.env,
          // The release directory, not the link the primary was started through.
          PWD: release.cwd,
          ZD_WORKER_ID: String(workerId),
          ZD_WORKER_SLOT: String(spec.slot),
          ZD_GENERATION: String(spec.generation),
        });
      } catch (error) {
        options.onIoError(workerId, 'fork', error as Error);
        queueMicrotask(() => sink({ type: 'worker.exit', workerId, code: null, signal: null }));
        return;
      }
      workers.set(workerId, worker);
      worker.process.stderr?.on('data', (chunk: Buffer) => {
        tails.append(workerId, chunk);
        options.stderr.write(chunk);
      });

      let exitReported = false;
      const reportExit = (code: number | null, signal: NodeJS.Signals | null) => {
        if (exitReported) return;
        exitReported = true;
        workers.delete(workerId);
        sink({ type: 'worker.exit', workerId, code, signal });
      };
      worker.on('online', () => sink({ type: 'worker.online', workerId }));
      worker.on('listening', (address) =>
        sink({
          type: 'worker.listening',
          workerId,
          address: `${address.address ?? ''}:${address.port ?? ''}`,
        }),
      );
      worker.on('message', (message) => {
        const kind = classifyMessage(message);
        // --sticky: a worker's app "listens" on the primary's port without binding it, so cluster
        // reports no 'listening'; the bootstrap does.
        if (kind === 'listening') sink({ type: 'worker.listening', workerId });
        // The app's own messages (one per request, for some apps) and the metrics server's answers
        // (read from cluster by the metrics server) never queue an event.
        else if (reachesReducer(kind)) sink({ type: 'worker.message', workerId, message });
      });
      worker.on('disconnect', () => sink({ type: 'worker.disconnect', workerId }));
      worker.on('error', (error) => ioError(workerId, 'channel', error));
      worker.process.once('exit', (code, signal) => {
        const timer = setTimeout(() => reportExit(code, signal), STDERR_GRACE_MS);
        worker.process.once('close', () => {
          clearTimeout(timer);
          reportExit(code, signal);
        });
      });
      // spawn itself failed (no pid): no exit event will follow.
      worker.process.once('error', (error) => {
        ioError(workerId, 'process', error);
        if (worker.process.pid === undefined) reportExit(null, null);
      });
      if (worker.process.pid !== undefined) {
        sink({ type: 'worker.forked', workerId, pid: worker.process.pid });
      }
    },

    send(workerId, message) {
      const worker = workers.get(workerId);
      // The seed's "ENOTSUP: cannot write to IPC channel": never write to a closed channel.
      if (!worker || !worker.isConnected()) return false;
      try {
        worker.send(message as never, undefined, (error: Error | null) => {
          if (error) ioError(workerId, 'send', error);
        });
        return true;
      } catch (error) {
        ioError(workerId, 'send', error as Error);
        return false;
      }
    },

    sendHandle(workerId, message, socket) {
      const worker = workers.get(workerId);
      if (!worker || !worker.isConnected()) return false;
      try {
        worker.send(message as never, socket, (error: Error | null) => {
          if (error) {
            options.onIoError(workerId, 'send connection', error);
            socket.destroy();
          }
        });
        return true;
      } catch (error) {
        options.onIoError(workerId, 'send connection', error as Error);
        return false;
      }
    },

    disconnect(workerId) {
      const worker = workers.get(workerId);
      if (worker && worker.isConnected()) worker.disconnect();
    },

    kill(workerId: WorkerId, signal: KillSignal) {
      const worker = workers.get(workerId);
      if (!worker || worker.isDead()) return;
      // process.kill, not worker.kill(): cluster's kill() disconnects first and waits for it,
      // which is exactly what a SIGTERM/SIGKILL escalation must not depend on.
      try {
        worker.process.kill(signal);
      } catch (error) {
        options.onIoError(workerId, 'kill', error as Error);
      }
    },

    stderrTail: (workerId) => tails.get(workerId),

    readReload: options.readReload ?? (() => resolveRelease(options.source)),

    setTimer(ms, fire) {
      const handle = setTimeout(fire, ms);
      return () => clearTimeout(handle);
    },

    onSignal(signal, handler) {
      process.on(signal, handler);
      return () => process.off(signal, handler);
    },

    measureStart: (workerIds) => measure.start(workerIds),
    measureCollect: (workerIds, requestId, sink) => measure.collect(workerIds, requestId, sink),
  };
}
