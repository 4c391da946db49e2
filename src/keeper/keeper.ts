// The keeper's shell (see types.ts): what `zd run` is, the process whose pid systemd, Docker or
// Kubernetes knows. It runs zd's primary as a child and keeps, for as long as it lives, every
// listening socket a primary has bound (and those systemd gave it), so that a primary can crash,
// or be replaced by `zd upgrade`, while the ports stay open. Every decision is reduceKeeper()'s;
// this file forks, signals, passes descriptors, arms timers and writes log lines.
//
// It loads almost nothing on purpose (no logger library, no control server, no cluster): its own
// memory is the price of every zd instance (bench/memory.mjs).
//
// The primaries run in a process group of their own (detached), so that a terminal's Ctrl-C or a
// signal to the keeper's group reaches the keeper alone, and is passed on exactly once.
import { spawn, type ChildProcess } from 'node:child_process';
import { isoTime } from '../clock.ts';
import { initKeeper, reduceKeeper } from './reduce.ts';
import type { KeeperEffect, KeeperEvent, PrimaryId } from './types.ts';
import { KEEPER_ENV, type KeeperMessage, type PrimaryMessage } from './protocol.ts';
import { listenFds } from '../shell/listen-fds.ts';
import { Output } from '../shell/output.ts';
import { forwardLines } from '../shell/line-source.ts';

/** libuv's handle of a listening socket, as it arrives over IPC. */
interface HeldSocket {
  key: string;
  handle: { fd: number; close(): void };
}

// SIGQUIT keeps Node's default (the keeper ends at once; its primary, losing its channel, follows).
const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2'] as const;
/** The last lines of a primary's stderr, quoted when it fails to start. */
const TAIL_LINES = 20;
const TAIL_BYTES = 8192;
/** How many of them a failed upgrade's answer quotes. */
const QUOTED_LINES = 8;

export function runKeeper(bin: string, argv: string[]): void {
  const held = new Map<string, HeldSocket>();
  const children = new Map<PrimaryId, ChildProcess>();
  const planned = new Set<PrimaryId>();
  const tails = new Map<PrimaryId, string[]>();
  /** Who asked for each upgrade: the answer goes back through that primary's control connection. */
  const askedBy = new Map<string, PrimaryId>();
  const json = !process.stderr.isTTY;
  // The keeper is the one writer of the instance's stdout and stderr: the primaries' (two of them
  // during zd upgrade) are forwarded in whole lines, with the keeper's own lines between them.
  const stdout = new Output(process.stdout);
  const stderr = new Output(process.stderr);
  // systemd's sockets are the keeper's (LISTEN_PID is its pid): passed on to every primary.
  const systemd = takeSystemdFds();

  let state = initKeeper();
  const queue: KeeperEvent[] = [];
  let running = false;
  const dispatch = (event: KeeperEvent) => {
    queue.push(event);
    if (running) return;
    running = true;
    try {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const step = reduceKeeper(state, next);
        state = step.state;
        for (const effect of step.effects) run(effect);
      }
    } finally {
      running = false;
    }
  };

  const debug = process.env.ZD_LOG_LEVEL === 'debug';
  const log = (level: 'debug' | 'info' | 'warn' | 'error', code: string, msg: string, fields: Record<string, unknown> = {}) => {
    // Routine lines (a start, a stop the primary has told already) only when asked for.
    if (level === 'debug' && !debug) return;
    // A primary's exit code is `exitCode` here: `code` is the line's own (ZD_…), as in every zd log.
    const { code: exitCode, ...rest } = fields;
    const line = json
      ? JSON.stringify({ level: { debug: 20, info: 30, warn: 40, error: 50 }[level], time: isoTime(Date.now()), name: 'zd', ...rest, ...(exitCode !== undefined ? { exitCode } : {}), code, msg })
      : `[${isoTime(Date.now()).slice(11, 23)}] ${level.toUpperCase()} (zd keeper): ${code} ${msg}`;
    process.stderr.write(`${line}\n`);
  };

  const send = (id: PrimaryId, message: KeeperMessage) => {
    const child = children.get(id);
    if (child?.connected) child.send(message, undefined, undefined, () => {});
  };

  function spawnPrimary(id: PrimaryId, node: string | null): void {
    const sockets = [...held.values()];
    // fds 3… : systemd's sockets first (LISTEN_FDS, as systemd passes them), then the keeper's.
    const stdio: Array<'inherit' | 'pipe' | 'ipc' | number> = ['inherit', 'pipe', 'pipe', 'ipc'];
    // fd 3 is the IPC channel's slot in stdio; the sockets follow it.
    const first = stdio.length;
    for (const fd of systemd.fds) stdio.push(fd);
    for (const socket of sockets) stdio.push(socket.handle.fd);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      [KEEPER_ENV.keeper]: String(process.pid),
      [KEEPER_ENV.primaryId]: String(id),
      [KEEPER_ENV.inherited]: JSON.stringify(sockets.map((s, i) => ({ fd: first + systemd.fds.length + i, key: s.key }))),
      [KEEPER_ENV.systemdFds]: JSON.stringify(systemd.fds.map((_, i) => ({ fd: first + i, name: systemd.names[i] ?? '' }))),
      ...(process.stderr.isTTY ? { [KEEPER_ENV.stderrTty]: '1' } : {}),
      ...(id > 1 && state.current !== null ? { [KEEPER_ENV.candidate]: '1' } : {}),
    };
    let child: ChildProcess;
    try {
      child = spawn(node ?? process.execPath, [...process.execArgv, bin, 'run', ...argv], { stdio, env, detached: true });
    } catch (error) {
      tails.set(id, [`cannot start ${node ?? process.execPath}: ${(error as Error).message}`]);
      queueMicrotask(() => dispatch({ type: 'primary.exited', id, code: null, signal: null, planned: false }));
      return;
    }
    children.set(id, child);
    const tail: string[] = [];
    tails.set(id, tail);
    if (child.stdout) forwardLines(child.stdout, stdout);
    if (child.stderr) {
      forwardLines(child.stderr, stderr, {
        // Only the end is quoted: a busy app's stderr costs a slice here, not a decode.
        onLines: (lines) => {
          for (const line of lines.subarray(-TAIL_BYTES).toString('utf8').split('\n')) if (line.trim()) tail.push(line);
          if (tail.length > TAIL_LINES) tail.splice(0, tail.length - TAIL_LINES);
        },
      });
    }
    child.on('message', (message: PrimaryMessage, handle?: HeldSocket['handle']) => onMessage(id, message, handle));
    let exited = false;
    const exit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (exited) return;
      exited = true;
      children.delete(id);
      dispatch({ type: 'primary.exited', id, code, signal, planned: planned.has(id) });
    };
    child.once('error', (error) => {
      tail.push(`cannot start ${node ?? process.execPath}: ${error.message}`);
      if (child.pid === undefined) exit(null, null);
    });
    child.once('exit', (code, signal) => {
      // Its last stderr lines (why it failed) arrive with the pipe's end.
      if (!child.stderr || child.stderr.readableEnded) exit(code, signal);
      else {
        child.stderr.once('end', () => exit(code, signal));
        setTimeout(() => exit(code, signal), 250).unref();
      }
    });
    if (child.pid !== undefined) dispatch({ type: 'primary.spawned', id });
  }

  function onMessage(id: PrimaryId, message: PrimaryMessage, handle?: HeldSocket['handle']): void {
    if (!message || typeof message !== 'object') return;
    switch (message.zd) {
      case 'socket':
        // Held from now on; a socket already held for the key is the one it came from.
        if (handle && !held.has(message.key)) held.set(message.key, { key: message.key, handle });
        else handle?.close();
        return;
      case 'socket-closed': {
        // An ephemeral port the primary let go of: a later primary must not be handed it.
        held.get(message.key)?.handle.close();
        held.delete(message.key);
        return;
      }
      case 'lend': {
        // A copy of a socket it holds: the primary closed its own to stop accepting for a while.
        const socket = held.get(message.key);
        const child = children.get(id);
        if (child?.connected) child.send({ zd: 'lent', requestId: message.requestId } satisfies KeeperMessage, socket?.handle as never, undefined, () => {});
        return;
      }
      case 'release-ports':
        dispatch({ type: 'ports.release', id, requestId: message.requestId });
        return;
      case 'ready':
        dispatch({ type: 'primary.ready', id });
        return;
      case 'exiting':
        planned.add(id);
        return;
      case 'upgrade':
        askedBy.set(message.requestId, id);
        dispatch({
          type: 'upgrade.requested',
          request: { requestId: message.requestId, node: message.node, timeoutMs: message.timeoutMs },
        });
        return;
      case 'status':
        send(id, { zd: 'status', requestId: message.requestId, keeper: { pid: process.pid, state, sockets: [...held.keys()] } });
        return;
    }
  }

  function run(effect: KeeperEffect): void {
    switch (effect.type) {
      case 'spawn':
        return spawnPrimary(effect.id, effect.node);
      case 'signal': {
        // Said over IPC: a primary ignores the signals it gets itself (a signal to every process
        // of the instance, such as systemd's KillMode=control-group, must count once). One whose
        // channel is gone gets the real thing.
        const child = children.get(effect.id);
        if (!child || child.exitCode !== null) return;
        if (child.connected) send(effect.id, { zd: 'signal', signal: effect.signal });
        else child.kill(effect.signal as NodeJS.Signals);
        return;
      }
      case 'retire':
        return send(effect.id, { zd: 'retire' });
      case 'promote':
        return send(effect.id, { zd: 'promote' });
      case 'kill': {
        const child = children.get(effect.id);
        if (!child?.pid) return;
        // Its own process group: the primary and the workers it forked.
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
        return;
      }
      case 'timer':
        // Held: a restart's backoff may be all that keeps the keeper alive (its primary crashed).
        setTimeout(() => dispatch(effect.event), effect.ms);
        return;
      case 'reply': {
        const asker = askedBy.get(effect.requestId);
        askedBy.delete(effect.requestId);
        const stderr = !effect.ok && effect.id !== undefined ? (tails.get(effect.id) ?? []).slice(-QUOTED_LINES).join('\n') : '';
        if (asker !== undefined) send(asker, { zd: 'upgrade-result', requestId: effect.requestId, ok: effect.ok, message: effect.message, stderr, ...(effect.code ? { code: effect.code } : {}) });
        return;
      }
      case 'close-sockets':
        for (const socket of held.values()) socket.handle.close();
        held.clear();
        return;
      case 'ports-released':
        return send(effect.id, { zd: 'ports-released', requestId: effect.requestId });
      case 'log':
        return log(effect.level, effect.code, effect.message, effect.fields);
      case 'exit':
        for (const socket of held.values()) socket.handle.close();
        process.exitCode = effect.code;
        // Nothing else keeps it alive once the children are gone and the timers unref'd; what
        // the primaries wrote last is read and taken by the instance's reader first.
        void Promise.all([stdout.flush(), stderr.flush()]).then(() => process.exit(effect.code));
        return;
    }
  }

  for (const signal of SIGNALS) process.on(signal, () => dispatch({ type: 'signal', signal }));
  dispatch({ type: 'keeper.start' });
}

/**
 * systemd's socket activation, for the keeper (sd_listen_fds(3)); the variables are removed. A bad
 * LISTEN_FDS is one line and exit 2, before anything starts.
 */
function takeSystemdFds(): { fds: number[]; names: string[] } {
  const env = process.env;
  const raw = env.LISTEN_FDS;
  const forUs = env.LISTEN_PID === undefined || Number(env.LISTEN_PID) === process.pid;
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (raw === undefined || !forUs) return { fds: [], names: [] };
  try {
    const fds = listenFds(raw);
    return { fds, names: fds.map((fd, i) => names[i] || `fd${fd}`) };
  } catch (error) {
    process.stderr.write(`zd: ${(error as Error).message} [ZD_E_LISTEN_FDS]\n`);
    process.exit(2);
  }
}
