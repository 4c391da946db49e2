// The real environment: node:cluster workers, process signals, timers.
import cluster, { type Worker } from 'node:cluster';
import type { KillSignal } from '../core/effects.ts';
import type { WorkerId } from '../core/events.ts';
import { classifyMessage, reachesReducer } from '../core/messages.ts';
import type { Env, EventSink, ForkSpec } from './env.ts';
import { createMeasure } from './measure.ts';
import { StderrTails } from './stderr-tail.ts';
import type { WorkerOutput } from './worker-output.ts';
import { resolveRelease, type ReleaseSource } from './release.ts';
import type { Release, ReleaseProblem } from '../core/events.ts';
import type { ReloadSpec } from './env.ts';
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { makeFifos } from './fifo.ts';
import { Sockets, type SocketsOptions } from './sockets.ts';

export interface ClusterEnvOptions {
  /** The app as the user named it: each reload resolves it again (see release.ts). */
  source: ReleaseSource;
  /** What a reload asked for now runs with; by default the release alone, settings unchanged. */
  readReload?: () => ReloadSpec | ReleaseProblem;
  /** Node flags for the workers. */
  execArgv: string[];
  /** Added to every worker's environment. */
  workerEnv: Record<string, string>;
  /** Where a worker's stdout and stderr go, in whole lines (worker-output.ts). */
  output: Pick<WorkerOutput, 'attach'>;
  /** The listening sockets (sockets.ts): how connections are spread, --sticky, inherited sockets. */
  sockets: Omit<SocketsOptions, 'send'>;
  /** A generation's pinned release is gone from disk: its worker cannot start. */
  onReleaseGone: (workerId: WorkerId, generation: number, release: Release) => void;
  /**
   * Where the primary's signals come from: its own (by default), or, under a keeper, the keeper's
   * word for them (keeper-link.ts), which hears each signal once for the whole instance.
   */
  signals?: (signal: NodeJS.Signals, handler: () => void) => () => void;
  /** The workers' output goes through Node's socketpairs, not pipes (fifo.ts): told once, with why. */
  onPipesFallback?: (error: Error) => void;
  /** Reports an I/O failure the core does not model (a failed send, a channel error). */
  onIoError: (workerId: WorkerId, what: string, error: Error) => void;
  /**
   * Other holders of the sockets zd bound (the keeper) stop accepting and close their copies;
   * `done` once they have (or their answer is overdue). Absent: this process holds the only copies.
   */
  releasePorts?: (done: () => void) => void;
  /** This process has closed its copies of the ports (a stop): new connections are refused from now on. */
  onPortsClosed?: () => void;
}

/**
 * After a worker exits, its stderr pipe may still hold its last words (the stack trace of a boot
 * failure). The exit is reported when the pipe closes, or after this long if a grandchild keeps
 * the pipe open.
 */
const STDERR_GRACE_MS = 250;
/** How long after a worker's exit its IPC channel may stay open before zd stops waiting for it. */
const CHANNEL_GRACE_MS = 2000;

/**
 * A write to a worker that has closed its end of the IPC channel (it is exiting: on its own, or of
 * a signal sent to the whole process group) fails with one of these, reported up to three times
 * (the send, the channel, the process). The worker is leaving, not zd failing: its disconnect and
 * exit reach the core as events of their own, so these are not I/O errors.
 */
const CHANNEL_GONE = new Set(['EPIPE', 'ECONNRESET', 'ERR_IPC_CHANNEL_CLOSED', 'ERR_IPC_DISCONNECTED']);
const channelGone = (error: Error) => CHANNEL_GONE.has((error as NodeJS.ErrnoException).code ?? '');

/** zd's internal messages with a worker (src/worker/listen.cjs): never seen by the app's handlers. */
const INTERNAL = 'NODE_ZD';

export function createClusterEnv(options: ClusterEnvOptions): Env & { sockets: Sockets } {
  const workers = new Map<WorkerId, Worker>();
  /** Each worker's slot, from its fork on (--sched reuseport gives it its slot's socket). */
  const slots = new Map<WorkerId, number>();
  const sockets = new Sockets({
    ...options.sockets,
    slotOf: (workerId) => slots.get(workerId) ?? null,
    send(workerId, message, handle) {
      const worker = workers.get(workerId);
      if (!worker || !worker.isConnected()) return false;
      // send()'s return value is back-pressure (false once Node queues a message behind a handle
      // still unacknowledged), not failure: queued messages go out in order. A failure is the
      // channel closing, and the worker's disconnect then re-routes what it had not taken.
      worker.process.send({ cmd: INTERNAL, ...message }, handle as never, (error: Error | null) => {
        if (error) ioError(workerId, `send ${String(message.act)}`, error);
      });
      return true;
    },
  });
  const tails = new StderrTails();
  let fellBack = false;
  const ioError: ClusterEnvOptions['onIoError'] = (workerId, what, error) => {
    if (!channelGone(error)) options.onIoError(workerId, what, error);
  };
  const measure = createMeasure({ worker: (workerId) => workers.get(workerId), onIoError: ioError });

  // Must be set before the first setupPrimary()/fork(). For what zd leaves to node:cluster (an
  // app's listen({ fd }), UDP), and the same choice as zd's own sockets make.
  cluster.schedulingPolicy = options.sockets.sched === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  cluster.setupPrimary({
    execArgv: options.execArgv,
    // Both piped, so that zd forwards whole lines (workers writing to one shared pipe cut each
    // other's long lines) and `zd logs` can keep them; stderr's tail is quoted when a boot fails.
    stdio: ['inherit', 'pipe', 'pipe', 'ipc'],
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
      // Its stdout and stderr: pipes of zd's making (cheaper to read than the socketpairs of
      // stdio 'pipe', fifo.ts), or those socketpairs if no pipe can be made.
      const fifos = makeFifos(2);
      if ('error' in fifos && !fellBack) {
        fellBack = true;
        options.onPipesFallback?.(fifos.error);
      }
      const pipes = 'error' in fifos ? null : fifos;
      try {
        // Each generation runs its own release: cluster reads these settings at every fork.
        cluster.setupPrimary({
          exec: release.app,
          args: release.args,
          cwd: release.cwd,
          stdio: pipes ? ['inherit', pipes.pipes[0]!.writeFd, pipes.pipes[1]!.writeFd, 'ipc'] : ['inherit', 'pipe', 'pipe', 'ipc'],
        });
        worker = cluster.fork({
          ...options.workerEnv,
          // The generation's own: its env file and the settings it was started with.
          ...release.env,
          // The release directory, not the link the primary was started through.
          PWD: release.cwd,
          ZD_WORKER_ID: String(workerId),
          ZD_WORKER_SLOT: String(spec.slot),
          ZD_GENERATION: String(spec.generation),
          // This primary answers the worker's listen() itself (src/worker/listen.cjs).
          ZD_SOCKETS: '1',
        });
      } catch (error) {
        pipes?.handedOver();
        for (const pipe of pipes?.pipes ?? []) pipe.readable.destroy();
        options.onIoError(workerId, 'fork', error as Error);
        queueMicrotask(() => sink({ type: 'worker.exit', workerId, code: null, signal: null }));
        return;
      }
      // The worker holds the write ends now: zd's copies would keep its pipes from ever ending.
      pipes?.handedOver();
      const stdout: Readable | null = pipes ? pipes.pipes[0]!.readable : worker.process.stdout;
      const stderr: Readable | null = pipes ? pipes.pipes[1]!.readable : worker.process.stderr;
      // Closed when the process and every pipe of it are (a child process's 'close' counts only
      // the streams Node made for it).
      const closing: Array<{ once(event: 'close', listener: () => void): unknown }> = [worker.process, ...(pipes ? [stdout!, stderr!] : [])];
      let unclosed = closing.length;
      let allClosed = false;
      let onAllClosed = () => {};
      for (const it of closing)
        it.once('close', () => {
          if (--unclosed > 0) return;
          allClosed = true;
          onAllClosed();
        });
      workers.set(workerId, worker);
      slots.set(workerId, spec.slot);
      stderr?.on('data', (chunk: Buffer) => tails.append(workerId, chunk));
      options.output.attach({ workerId, generation: spec.generation, stdout, stderr });

      let exitReported = false;
      const reportExit = (code: number | null, signal: NodeJS.Signals | null) => {
        if (exitReported) return;
        exitReported = true;
        workers.delete(workerId);
        slots.delete(workerId);
        // Connections it had not confirmed are re-routed once its channel has closed (below):
        // only then has every confirmation it wrote before dying been read. Should the channel
        // outlive it (a grandchild holding the descriptor), this is the last word.
        if (!worker.isConnected()) sockets.workerGone(workerId);
        else setTimeout(() => sockets.workerGone(workerId), CHANNEL_GRACE_MS).unref();
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
        // The app's own messages (one per request, for some apps) and the metrics server's answers
        // (read from cluster by the metrics server) never queue an event.
        if (reachesReducer(classifyMessage(message))) sink({ type: 'worker.message', workerId, message });
      });
      // A listen of a zd-owned socket: cluster sees no bind, so the bootstrap reports it.
      worker.process.on('internalMessage', (message: { cmd?: unknown; act?: unknown; address?: unknown }, handle?: unknown) => {
        if (!message) return;
        // Node's receipt for a descriptor passed to the worker: a connection is in its hands.
        if (message.cmd === 'NODE_HANDLE_ACK') return sockets.delivered(workerId);
        // …or its refusal: the descriptor never reached it (its fd limit); Node sends no raw handle twice.
        if (message.cmd === 'NODE_HANDLE_NACK') return sockets.refused(workerId);
        if (message.cmd !== INTERNAL) return;
        if (message.act === 'listening') sink({ type: 'worker.listening', workerId, address: String(message.address) });
        else sockets.onMessage(workerId, message, handle);
      });
      worker.on('disconnect', () => {
        sockets.workerGone(workerId);
        sink({ type: 'worker.disconnect', workerId });
      });
      worker.on('error', (error) => ioError(workerId, 'channel', error));
      worker.process.once('exit', (code, signal) => {
        if (allClosed) return reportExit(code, signal);
        const timer = setTimeout(() => reportExit(code, signal), STDERR_GRACE_MS);
        onAllClosed = () => {
          clearTimeout(timer);
          reportExit(code, signal);
        };
      });
      // spawn itself failed (no pid): no exit event will follow.
      worker.process.once('error', (error) => {
        ioError(workerId, 'process', error);
        if (worker.process.pid !== undefined) return;
        // Never started: nobody will write to or end its pipes.
        for (const pipe of pipes?.pipes ?? []) pipe.readable.destroy();
        reportExit(null, null);
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

    disconnect(workerId) {
      // Drained: the core took it out of the routable set first; those on their way it still takes.
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
      if (options.signals) return options.signals(signal, handler);
      process.on(signal, handler);
      return () => process.off(signal, handler);
    },

    sockets,

    route: (workerIds, slots) => sockets.route(workerIds, slots),

    closePorts(done) {
      // The other holders first: while this process still accepts, nothing waits in a queue that
      // nobody reads; then this one, with workers still there to serve what it accepted last.
      const closeOwn = () =>
        sockets.closeWhenQuiet(() => {
          options.onPortsClosed?.();
          done();
        });
      if (options.releasePorts) options.releasePorts(closeOwn);
      else closeOwn();
    },

    measureStart: (workerIds) => measure.start(workerIds),
    measureCollect: (workerIds, requestId, sink) => measure.collect(workerIds, requestId, sink),
  };
}
