// The primary's side of the keeper (src/keeper/): present when `zd run` started this primary
// under a keeper (ZD_KEEPER_PID). It hands up every listening socket the primary binds, says when
// every worker is ready and when it exits by its own decision, forwards `zd upgrade` and carries
// back the answer, and hears `retire` (a newer primary serves: stop gracefully) and `promote`
// (this one is now the instance: take the control socket).
import type { Runtime } from './runtime.ts';
import type { Logger } from './logger.ts';
import { inherit, type InheritedSocket } from './inherited.ts';
import { KEEPER_ENV, type KeeperMessage, type PrimaryMessage } from '../keeper/protocol.ts';

export interface UpgradeAnswer {
  ok: boolean;
  message: string;
  stderr: string;
  /** ZD_E_UPGRADE_REFUSED (it never started) or ZD_E_UPGRADE_ABORTED, when not ok. */
  code?: string;
}

export interface KeeperLink {
  keeperPid: number;
  /** Started by `zd upgrade` beside a serving primary: promoted later, or never. */
  candidate: boolean;
  /** Sockets handed down: the keeper's (by key) and systemd's (by address). */
  inherited: InheritedSocket[];
  /** A listening socket this primary bound: the keeper holds it from now on. */
  bound(key: string, handle: unknown): void;
  /** A fresh copy of a socket the keeper holds under `key` (null if it holds none, or does not answer in 1 s). */
  borrow(key: string, got: (handle: unknown) => void): void;
  /** A socket this primary bound is closed for good (an ephemeral port): the keeper lets go of it too. */
  released(key: string): void;
  /**
   * A stop: no worker of this instance will serve the ports again. The keeper closes its copies
   * of the sockets zd bound, unless a newer primary serves them (an upgrade); `done` once it
   * answered, or after RELEASE_ANSWER_MS.
   */
  releasePorts(done: () => void): void;
  /** Whether the keeper handed down a socket for a worker's listen of this port. */
  holds(port: number): boolean;
  /** The handle of a socket the keeper handed down under `key` (health, metrics), taken once. */
  take(key: string): unknown;
  /** Asks the keeper for an upgrade; the answer arrives when it ends (or at once, refused). */
  upgrade(node: string | null, timeoutMs: number): Promise<UpgradeAnswer>;
  /** The keeper's own view, for `zd status`. */
  status(): Promise<{ pid: number; state: unknown; sockets: string[] } | null>;
  /** Tells the keeper this exit is a decision, not a crash; calls back once the message is out. */
  exiting(code: number, done: () => void): void;
  /** Whether a newer primary took over (its control socket and pid file are not ours to remove). */
  readonly retired: boolean;
  /** The primary's signals, as the keeper passes them on (the primary's own are ignored). */
  onSignal(signal: NodeJS.Signals, handler: () => void): () => void;
  /** zd's logger, once there is one. */
  useLogger(logger: Logger): void;
  /**
   * Wires the runtime: ready reports; retire → `onRetire` (what serves beside the workers stops
   * answering: the newer primary answers) and a graceful stop; promote → `onPromote`.
   */
  attach(runtime: Runtime, hooks: { onPromote: () => void; onRetire: () => void }): void;
}

export function keeperLink(env: NodeJS.ProcessEnv): KeeperLink | null {
  let logger: Logger | null = null;
  const pid = Number(env[KEEPER_ENV.keeper]);
  if (!pid || typeof process.send !== 'function') return null;
  const inherited = [
    ...parseList<{ fd: number; key: string }>(env[KEEPER_ENV.inherited]).map((s) => byKey(inherit(s.fd, s.key), s.key)),
    ...parseList<{ fd: number; name: string }>(env[KEEPER_ENV.systemdFds]).map((s) => inherit(s.fd, s.name)),
  ];
  const candidate = env[KEEPER_ENV.candidate] === '1';
  for (const name of Object.values(KEEPER_ENV)) delete env[name];

  const send = (message: PrimaryMessage, handle?: unknown, done?: () => void) => {
    if (!process.connected) return done?.();
    process.send!(message, handle as never, undefined, () => done?.());
  };
  // Requests to the keeper and their answers, by request id: each answered once, by the keeper or,
  // where it has one, by its deadline's fallback.
  const waiting = new Map<string, (answer: unknown) => void>();
  let nextRequest = 0;
  const ask = <T>(message: (requestId: string) => PrimaryMessage, deadline: { ms: number; fallback: T } | null): Promise<T> => {
    const requestId = `${process.pid}-${nextRequest++}`;
    return new Promise<T>((resolve) => {
      const timer = deadline && setTimeout(() => answer(requestId, deadline.fallback), deadline.ms);
      waiting.set(requestId, (value) => {
        if (timer) clearTimeout(timer);
        resolve(value as T);
      });
      send(message(requestId));
    });
  };
  /** Whether anyone still waited for it (a late answer finds nobody). */
  const answer = (requestId: string, value: unknown): boolean => {
    const resolve = waiting.get(requestId);
    waiting.delete(requestId);
    resolve?.(value);
    return resolve !== undefined;
  };
  let retired = false;
  let runtime: Runtime | null = null;
  let hooks = { onPromote: () => {}, onRetire: () => {} };
  const signalHandlers = new Map<string, Set<() => void>>();
  // The keeper hears every signal meant for the instance and passes each on once. One that reaches
  // this primary directly (a signal to all of the instance's processes, a `kill` of the primary's
  // group) is the same signal again: ignored, as the workers ignore theirs, rather than counted
  // twice (a second SIGTERM forces).
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2'] as const) process.on(signal, () => {});

  process.on('message', (message: KeeperMessage, handle?: unknown) => {
    if (!message || typeof message !== 'object' || !('zd' in message)) return;
    switch (message.zd) {
      case 'lent':
        // A copy that comes too late is nobody's: closed, or it would hold the socket open.
        if (!answer(message.requestId, handle ?? null)) (handle as { close?: () => void } | undefined)?.close?.();
        return;
      case 'signal':
        for (const handler of signalHandlers.get(message.signal) ?? []) handler();
        return;
      case 'retire':
        retired = true;
        logger?.info({ code: 'ZD_RETIRING' }, 'a newer primary serves now (zd upgrade): this one stops, draining its workers');
        hooks.onRetire();
        runtime?.dispatch({ type: 'control.stop' });
        return;
      case 'promote':
        hooks.onPromote();
        return;
      case 'upgrade-result':
        answer(message.requestId, { ok: message.ok, message: message.message, stderr: message.stderr, ...(message.code ? { code: message.code } : {}) });
        return;
      case 'ports-released':
        answer(message.requestId, undefined);
        return;
      case 'status':
        answer(message.requestId, message.keeper);
        return;
    }
  });
  // The keeper is gone (SIGKILLed): nothing holds the pid the world knows any more, and nobody
  // would restart or stop this primary. It goes at once, as a primary that is killed does; its
  // workers, seeing their channel close, follow.
  process.once('disconnect', () => {
    const why = `the keeper (pid ${pid}) is gone: this primary exits now`;
    if (logger) logger.error({ code: 'ZD_KEEPER_GONE', keeperPid: pid }, why);
    else process.stderr.write(`zd: ${why} [ZD_KEEPER_GONE]\n`);
    process.exit(1);
  });

  return {
    keeperPid: pid,
    candidate,
    inherited,
    get retired() {
      return retired;
    },
    bound: (key, handle) => send({ zd: 'socket', key }, handle),
    released: (key) => send({ zd: 'socket-closed', key }),
    borrow(key, got) {
      void ask<unknown>((requestId) => ({ zd: 'lend', requestId, key }), { ms: ANSWER_MS, fallback: null }).then(got);
    },
    releasePorts(done) {
      void ask<void>((requestId) => ({ zd: 'release-ports', requestId }), { ms: ANSWER_MS, fallback: undefined }).then(done);
    },
    holds: (port) => inherited.some((s) => s.port === port),
    take(key) {
      const socket = inherited.find((s) => !s.taken && s.name === key);
      if (!socket) return undefined;
      socket.taken = true;
      return socket.handle;
    },
    onSignal(signal, handler) {
      let set = signalHandlers.get(signal);
      if (!set) signalHandlers.set(signal, (set = new Set()));
      set.add(handler);
      return () => set.delete(handler);
    },
    useLogger(l) {
      logger = l;
    },
    // The keeper answers an upgrade when it ends, under the upgrade's own deadline.
    upgrade: (node, timeoutMs) => ask<UpgradeAnswer>((requestId) => ({ zd: 'upgrade', requestId, node, timeoutMs }), null),
    status: () => ask<{ pid: number; state: unknown; sockets: string[] } | null>((requestId) => ({ zd: 'status', requestId }), { ms: ANSWER_MS, fallback: null }),
    exiting(code, done) {
      const timer = setTimeout(done, 500);
      send({ zd: 'exiting', code }, undefined, () => {
        clearTimeout(timer);
        done();
      });
    },
    attach(r, h) {
      runtime = r;
      hooks = h;
      let announced = false;
      r.subscribe((_state, _event, effects) => {
        if (announced) return;
        if (effects.some((e) => e.type === 'log' && e.code === 'ZD_READY')) {
          announced = true;
          send({ zd: 'ready' });
        }
      });
    },
  };
}

/**
 * How long a request to the keeper (its status, a copy of a socket, closing the ports at a stop:
 * the core's own deadline for that is longer) waits for its answer.
 */
const ANSWER_MS = 1000;

/** A socket a previous primary bound serves the listen it was bound for: the same key. */
function byKey(socket: InheritedSocket, key: string): InheritedSocket {
  return { ...socket, serves: (_query, queryKey) => queryKey === key };
}

function parseList<T>(text: string | undefined): T[] {
  if (!text) return [];
  try {
    const value = JSON.parse(text) as unknown;
    return Array.isArray(value) ? (value as T[]) : [];
  } catch {
    return [];
  }
}
