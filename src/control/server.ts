// The running primary's control socket: status, reload (optionally waiting for the outcome),
// stop, and a live stream of steps for `zd inspect`. Part of the shell: it reads the runtime's
// state and dispatches events; every decision stays in the reducer.
import { existsSync, lstatSync, unlinkSync, writeFileSync, chmodSync, rmSync, renameSync } from 'node:fs';
import type { KeeperLink } from '../shell/keeper-link.ts';
import type { Effect } from '../core/effects.ts';
import type { PrimaryEvent } from '../core/events.ts';
import { rollbackTarget } from '../core/queries.ts';
import { MAX_WORKERS } from '../core/config.ts';
import { createServer, type Server, type Socket } from 'node:net';
import type { MachineTransition } from '../core/reduce.ts';
import type { PrimaryState } from '../core/state.ts';
import { statusView } from '../core/status.ts';
import { ZdError } from '../errors.ts';
import { VERSION } from '../version.ts';
import type { Logger } from '../shell/logger.ts';
import type { Runtime } from '../shell/runtime.ts';
import { procSample, cpuPercent, type ProcSample } from '../shell/proc.ts';
import { answers, lineReader } from './socket.ts';
import type { LogRing } from '../shell/log-ring.ts';
import { serveLogs } from './logs.ts';
import { stepLogs } from '../inspect/messages.ts';
import { errorReply, MAX_REQUEST_BYTES, parseRequest, type ControlErrorCode, type ControlRequest } from './protocol.ts';

export interface ControlServerOptions {
  path: string;
  name: string;
  app: string;
  pidfile: string | null;
  runtime: Runtime;
  logger: Logger;
  /** Set under a keeper: `zd upgrade` is possible, and the control socket changes hands with it. */
  keeper?: KeeperLink | null;
  /** `zd dump`: the recorder's events as a journal's text, null before the first step. */
  dump?: (reason: string) => { text: string; events: number; from: string } | null;
  /** `zd logs`: the workers' last lines, and the stream of them. */
  logs?: LogRing;
}

/** A slow inspector is dropped rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
const CPU_SAMPLE_MS = 200;

export class ControlServer {
  private server: Server | null = null;
  private readonly startedAt = Date.now();
  /** When each worker last became ready (the core has no clock). */
  private readonly readySince = new Map<number, number>();
  private readonly sockets = new Set<Socket>();
  /** `zd logs -f` streams: ended, not cut, when this primary exits (they carry its workers' last lines). */
  private readonly followers = new Set<Socket>();
  /** The core's words for the last refused reload or rollback, answered to the one who asked. */
  private lastRefusal: { msg: string; invalid: boolean } | null = null;
  /** Where this server listens: the instance's path, or (an upgrade candidate) a path of its own until promoted. */
  private listeningOn: string;
  /** An upgrade this primary asked the keeper for is under way: reloads wait for it. */
  private upgrading = false;

  constructor(private readonly options: ControlServerOptions) {
    this.listeningOn = options.keeper?.candidate ? `${options.path}.${process.pid}.next` : options.path;
    options.runtime.subscribe((_state, _event, effects, transitions) => this.onStep(effects, transitions));
  }

  async listen(): Promise<void> {
    const path = this.listeningOn;
    // A candidate's path is its own; the instance's is the serving primary's until the hand-over.
    await removeStaleSocket(path, this.options.logger);
    const server = createServer((socket) => this.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new ZdError('ZD_E_CONTROL_SOCKET', `cannot listen on ${path}: ${error.message}`, 1)),
      );
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
    server.on('error', (error) => this.options.logger.warn({ code: 'ZD_CONTROL_ERROR', err: error.message }, 'control socket error'));
    this.server = server;
    if (this.options.pidfile && !this.options.keeper?.candidate) {
      try {
        // The pid the world knows: the keeper's, which outlives primaries (zd upgrade).
        writeFileSync(this.options.pidfile, `${this.options.keeper?.keeperPid ?? process.pid}\n`, { mode: 0o644 });
      } catch (error) {
        this.close();
        throw new ZdError('ZD_E_PIDFILE', `cannot write the pid file ${this.options.pidfile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 1);
      }
    }
  }

  /**
   * `zd upgrade` made this primary the instance: its socket takes the instance's path, in one
   * rename, so that a client finds the old primary or the new one, never nothing.
   */
  promote(): void {
    if (this.listeningOn === this.options.path) return;
    try {
      renameSync(this.listeningOn, this.options.path);
      this.listeningOn = this.options.path;
    } catch (error) {
      this.options.logger.warn({ code: 'ZD_CONTROL_ERROR', err: (error as Error).message }, `cannot take over the control socket ${this.options.path}`);
    }
  }

  close(): void {
    for (const socket of this.sockets) {
      if (this.followers.has(socket)) socket.end();
      else socket.destroy();
    }
    // Retired by an upgrade: the path and the pid file are the new primary's now. Not even the
    // server is closed: libuv unlinks a Unix socket's path when its server closes, and the path
    // names the new primary's socket; this process exits next, and its descriptor with it.
    if (this.options.keeper?.retired && this.listeningOn === this.options.path) return;
    this.server?.close();
    this.server = null;
    rmSync(this.listeningOn, { force: true });
    if (this.options.pidfile && this.listeningOn === this.options.path) rmSync(this.options.pidfile, { force: true });
  }

  private onStep(effects: Effect[], transitions: MachineTransition[]): void {
    for (const effect of effects) {
      if (effect.type === 'log' && ['ZD_RELOAD_REFUSED', 'ZD_ROLLBACK_REFUSED', 'ZD_SCALE_REFUSED'].includes(effect.code)) {
        this.lastRefusal = { msg: effect.msg, invalid: effect.fields?.invalid === true };
      }
    }
    const now = Date.now();
    for (const t of transitions) {
      if (t.machine !== 'worker') continue;
      if (t.to.startsWith('listening') && !t.from.startsWith('listening')) this.readySince.set(t.id, now);
      if (t.to.startsWith('dead')) this.readySince.delete(t.id);
    }
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setEncoding('utf8');
    const tooLarge = () => {
      reply(socket, errorReply('ZD_E_TOO_LARGE', `a request line may be at most ${MAX_REQUEST_BYTES} bytes`));
      socket.end();
      socket.removeAllListeners('data');
    };
    // Bounded both ways: a complete line over the limit, and an unfinished one growing past it.
    const read = lineReader((line) => {
      if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) {
        tooLarge();
        return false;
      }
      if (line.trim() !== '') this.onLine(socket, line.trim());
    });
    socket.on('data', (chunk: string) => {
      if (read(chunk) > MAX_REQUEST_BYTES) tooLarge();
    });
  }

  private onLine(socket: Socket, line: string): void {
    const request = parseRequest(line);
    if ('ok' in request) {
      reply(socket, request);
      return;
    }
    void this.handle(socket, request).catch((error: Error) => {
      this.options.logger.warn({ code: 'ZD_CONTROL_ERROR', err: error.message }, 'control request failed');
      socket.destroy();
    });
  }

  private async handle(socket: Socket, request: ControlRequest): Promise<void> {
    const { runtime } = this.options;
    switch (request.cmd) {
      case 'status':
        reply(socket, { ok: true, status: await this.status() });
        return;
      case 'stop':
        reply(socket, { ok: true, stopping: true });
        runtime.dispatch({ type: 'control.stop' });
        return;
      case 'reload':
        return this.reload(socket, request.wait === true);
      case 'scale':
        return this.scale(socket, request.to);
      case 'rollback':
        return this.rollback(socket, request.wait === true);
      case 'inspect':
        return this.inspect(socket);
      case 'upgrade':
        return this.upgrade(socket, request);
      case 'logs':
        if (!this.options.logs) return reply(socket, errorReply('ZD_E_BAD_REQUEST', 'this primary keeps no logs'));
        if (request.follow) {
          this.followers.add(socket);
          socket.on('close', () => this.followers.delete(socket));
        }
        return serveLogs(socket, request, this.options.logs, { name: this.options.name, pid: process.pid });
      case 'dump': {
        const dump = this.options.dump?.('zd dump') ?? null;
        if (dump === null) reply(socket, errorReply('ZD_E_BAD_REQUEST', 'nothing recorded yet: zd has not started its workers'));
        else reply(socket, { ok: true, journal: dump.text, events: dump.events, from: dump.from });
        return;
      }
    }
  }

  /** The status view with what only the shell knows: times, memory and CPU of each process. */
  async status() {
    const view = statusView(this.options.runtime.snapshot);
    const pids = [process.pid, ...view.workers.flatMap((w) => (w.pid === null ? [] : [w.pid]))];
    const first = new Map(pids.map((pid) => [pid, procSample(pid)] as const));
    await new Promise((resolve) => setTimeout(resolve, CPU_SAMPLE_MS));
    const second = new Map(pids.map((pid) => [pid, procSample(pid)] as const));
    const usage = (pid: number | null) => {
      if (pid === null) return { rssBytes: null, cpuPercent: null };
      const a = first.get(pid) as ProcSample | null;
      const b = second.get(pid) as ProcSample | null;
      return { rssBytes: b?.rssBytes ?? null, cpuPercent: a && b ? cpuPercent(a, b) : null };
    };
    const now = Date.now();
    return {
      ...view,
      version: VERSION,
      name: this.options.name,
      app: this.options.app,
      primary: { pid: process.pid, uptimeMs: now - this.startedAt, ...usage(process.pid) },
      ...(this.options.keeper ? { keeper: { pid: this.options.keeper.keeperPid, ...((await this.options.keeper.status()) ?? {}) } } : {}),
      workers: view.workers.map((w) => ({
        ...w,
        readyForMs: this.readySince.has(w.id) ? now - this.readySince.get(w.id)! : null,
        ...usage(w.pid),
      })),
    };
  }

  /**
   * `zd rollback`: checked here first (the core knows what to go back to, only the shell can see
   * whether that release is still on disk), then decided by the core like any reload.
   */
  private rollback(socket: Socket, wait: boolean): void {
    const target = rollbackTarget(this.options.runtime.snapshot);
    if ('refused' in target) {
      reply(socket, errorReply('ZD_E_ROLLBACK_REFUSED', `rollback refused: ${target.refused}`));
      return;
    }
    const { release, generation } = target;
    if (!existsSync(release.cwd) || !existsSync(release.app)) {
      reply(socket, errorReply('ZD_E_ROLLBACK_REFUSED', `rollback refused: generation ${generation}'s release ${release.cwd} is gone (${release.app} is missing)`));
      return;
    }
    this.startRollout(socket, wait, { type: 'control.rollback' }, 'ZD_E_ROLLBACK_REFUSED');
  }

  /** `zd scale`: a count, or a change of the count; the core decides, and says why if it refuses. */
  private scale(socket: Socket, to: string): void {
    const { runtime } = this.options;
    const from = runtime.snapshot.config.workers;
    const workers = to.startsWith('+') || to.startsWith('-') ? from + Number(to) : Number(to);
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
      reply(socket, errorReply('ZD_E_SCALE_REFUSED', `scale to ${workers} refused: the worker count must be between 1 and ${MAX_WORKERS} (now ${from})`));
      return;
    }
    this.lastRefusal = null;
    runtime.dispatch({ type: 'control.scale', workers });
    if (this.lastRefusal && runtime.snapshot.config.workers !== workers) {
      reply(socket, errorReply('ZD_E_SCALE_REFUSED', (this.lastRefusal as { msg: string }).msg));
      return;
    }
    reply(socket, { ok: true, from, workers });
  }

  private reload(socket: Socket, wait: boolean): void {
    if (this.upgrading) {
      reply(socket, errorReply('ZD_E_RELOAD_REFUSED', 'reload refused: zd upgrade is in progress; reload once it has ended'));
      return;
    }
    this.startRollout(socket, wait, { type: 'control.reload' }, 'ZD_E_RELOAD_REFUSED');
  }

  /**
   * `zd upgrade`: a new primary beside this one (the keeper starts it), ready before this one
   * retires. Refused while a rollout runs: the two never overlap.
   */
  private async upgrade(socket: Socket, request: Extract<ControlRequest, { cmd: 'upgrade' }>): Promise<void> {
    const { keeper, runtime } = this.options;
    const refuse = (why: string) => reply(socket, errorReply('ZD_E_UPGRADE_REFUSED', `upgrade refused: ${why}`));
    if (!keeper) return refuse('this zd runs without a keeper (ZD_NO_KEEPER=1), so nothing would keep its pid and sockets');
    const state = runtime.snapshot;
    if (keeper.retired || state.phase === 'stopping' || state.phase === 'exited') return refuse('zd is shutting down');
    if (state.rollout) return refuse(`a rollout to generation ${state.rollout.context.generation} is in progress: upgrade once it has ended`);
    if (this.upgrading) return refuse('an upgrade is already in progress');
    this.upgrading = true;
    const answer = keeper.upgrade(request.node ?? null, request.timeoutMs ?? 60_000);
    if (!request.wait) reply(socket, { ok: true, started: true });
    const outcome = await answer;
    this.upgrading = false;
    if (!request.wait) return;
    if (outcome.ok) reply(socket, { ok: true, message: outcome.message });
    else {
      const code = outcome.code === 'ZD_E_UPGRADE_REFUSED' ? 'ZD_E_UPGRADE_REFUSED' : 'ZD_E_UPGRADE_ABORTED';
      reply(socket, errorReply(code, outcome.stderr ? `${outcome.message}; its stderr:\n${outcome.stderr}` : outcome.message));
    }
    socket.end();
  }

  /** Dispatches a reload or rollback and answers at once, or (`wait`) with its outcome. */
  private startRollout(socket: Socket, wait: boolean, event: PrimaryEvent, refusedCode: ControlErrorCode): void {
    const { runtime } = this.options;
    const before = runtime.snapshot;
    runtime.dispatch(event);
    const after = runtime.snapshot;
    if (after.counters.reloadsRefused > before.counters.reloadsRefused) {
      // The core logged why; the same words go back to whoever asked.
      const why = this.lastRefusal ?? { msg: 'zd is shutting down', invalid: false };
      reply(socket, errorReply(why.invalid ? 'ZD_E_RELOAD_INVALID' : refusedCode, why.msg));
      return;
    }
    const started = after.counters.rolloutsStarted > before.counters.rolloutsStarted;
    // Queued or coalesced: it runs as the rollout after the current one (or the first one).
    const generation = started ? after.rollout!.context.generation : (after.rollout?.context.generation ?? after.generation) + 1;
    if (!wait) {
      reply(socket, { ok: true, generation, queued: !started });
      return;
    }
    const check = (state: PrimaryState) => {
      const last = state.lastReload;
      if (last && last.generation >= generation) {
        finish();
        if (last.outcome === 'done') reply(socket, { ok: true, generation: last.generation, outcome: 'done' });
        else reply(socket, errorReply('ZD_E_RELOAD_ABORTED', `rollout to generation ${last.generation} aborted: ${last.reason}`));
        socket.end();
      } else if (state.phase === 'stopping' || state.phase === 'exited') {
        finish();
        reply(socket, errorReply('ZD_E_RELOAD_REFUSED', 'zd is shutting down: the reload will not run'));
        socket.end();
      }
    };
    const unsubscribe = runtime.subscribe((state) => check(state));
    const finish = () => {
      unsubscribe();
      socket.off('close', unsubscribe);
    };
    socket.on('close', unsubscribe);
    check(after);
  }

  private async inspect(socket: Socket): Promise<void> {
    const { runtime, name, app } = this.options;
    const send = (message: object) => {
      if (socket.writableLength > MAX_BUFFERED_BYTES) {
        socket.destroy();
        return;
      }
      reply(socket, message);
    };
    send({ type: 'hello', name, app, pid: process.pid, at: Date.now() });
    send({ type: 'snapshot', at: Date.now(), status: statusView(runtime.snapshot) });
    const unsubscribe = runtime.subscribe((state, event, effects, transitions) => {
      const logs = stepLogs(effects);
      send({ type: 'step', at: Date.now(), event, transitions, logs, status: statusView(state) });
    });
    socket.on('close', unsubscribe);
  }
}

function reply(socket: Socket, message: object): void {
  if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(message)}\n`);
}

/**
 * A socket left by a primary that was killed is removed; one that answers belongs to a running
 * instance and is never touched; anything that is not a socket is refused, not deleted.
 */
async function removeStaleSocket(path: string, logger: Logger): Promise<void> {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return; // nothing there
  }
  if (!stat.isSocket()) {
    throw new ZdError('ZD_E_CONTROL_SOCKET', `${path} exists and is not a socket: remove it or choose another --name`, 1);
  }
  // A socket that accepts but says nothing in time still has someone behind it.
  const alive = await answers(path, 1000, true);
  if (alive) {
    throw new ZdError('ZD_E_NAME_TAKEN', `a zd instance is already running with this name (${path}): stop it, or pass --name`, 1);
  }
  unlinkSync(path);
  logger.info({ code: 'ZD_STALE_SOCKET', path }, `removed a stale control socket left by a zd that was killed: ${path}`);
}
