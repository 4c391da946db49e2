// zd owns the listening sockets (issue 13); this is the primary's half (the worker's is
// src/worker/listen.cjs).
//
// A worker's listen() of a TCP address or a Unix path arrives here as a query (cluster's own, from
// the one seam cluster has). The first binds the address (or takes a socket zd inherited for it:
// systemd's, see inherited.ts); every later listen of the same address, by any worker of any
// generation, shares it. The socket stays zd's until zd stops: a worker crashing, a rollout, a
// crash loop never close it, so the port is never refused while zd runs.
//
// Connections (round robin, or --sticky's client-IP hash, as node:cluster's RoundRobinHandle does
// them) are handed over one at a time per worker, and the primary keeps its copy of each until
// the worker has it: Node's own receipt for a passed descriptor (NODE_HANDLE_ACK, which the
// worker's IPC layer sends before anything can read from it) says so, at no cost of a message of
// zd's. A worker that dies first never read from it: the connection goes to another worker, or is
// reset at once if none is left, and its descriptor is closed either way. One that arrives after
// the worker's server closed comes back (`back`) and goes elsewhere. That is the difference from
// node:cluster, whose round robin forgets a connection handed to a worker that is then
// SIGKILLed: no answer, no reset, and a leaked fd.
//
// With --sched none the listening socket itself is handed to every worker and the kernel spreads
// the connections, as cluster's SCHED_NONE does; zd keeps its own copy, so the port stays bound.
import net from 'node:net';
import type { WorkerId } from '../core/events.ts';
import { pickRoundRobin, pickSticky } from './connection-policy.ts';
import type { InheritedSocket } from './inherited.ts';

/** What node:cluster's worker asks for, as the worker's listen.cjs forwards it. */
export interface ListenQuery {
  address: string | null;
  port: number;
  addressType: number;
  flags: number;
  /** As net passes it: a number, or `false`/absent for the default. */
  backlog?: number | false;
  readableAll: boolean;
  writableAll: boolean;
  /** The n-th listen of this address in the worker: the n-th socket (port 0 gets one per index). */
  index: number;
  data: unknown;
}

/** libuv's handles, as net uses them (not part of Node's public API; node:cluster relies on them). */
interface RawHandle {
  close(callback?: () => void): void;
  reset?(callback?: () => void): number;
  getsockname?(out: Record<string, unknown>): number;
  getpeername?(out: Record<string, unknown>): number;
  onconnection?: (err: number, handle: RawHandle) => void;
  listen?(backlog: number): number;
  fchmod?(mode: number): number;
}

export type SendToWorker = (workerId: WorkerId, message: Record<string, unknown>, handle?: unknown) => boolean;

export interface SocketsOptions {
  /** Whose connections: zd's round robin ('rr'), or the kernel's over one shared socket ('none'). */
  sched: 'rr' | 'none';
  /** --sticky PORT: connections to this port go by client IP. */
  stickyPort: number | null;
  /** Each slot's current worker, in slot order (--sticky keeps a client on its slot). */
  slots: () => readonly WorkerId[];
  /** Sockets zd was given (systemd's LISTEN_FDS): a listen of the same address takes one. */
  inherited?: InheritedSocket[];
  /** A socket zd bound itself (not one it was given): the keeper holds it from now on. */
  onBound?: (key: string, handle: RawHandle) => void;
  /** Over the worker's IPC channel, as an internal (`NODE_`) message; false if the channel is closed. */
  send: SendToWorker;
  /** A connection could not be handed over or closed: reported, never thrown. */
  onError: (what: string, error: Error) => void;
}

/** How long a connection may wait for a worker when none listens (at start, during a crash loop). */
export const WAIT_FOR_WORKER_MS = 5000;
/** Connections handed to one worker and not yet confirmed (node:cluster's round robin: 1). */
const IN_FLIGHT_PER_WORKER = 1;

interface Connection {
  handle: RawHandle;
  listener: Listener;
  since: number;
}

interface Listener {
  key: string;
  query: ListenQuery;
  /** The listening socket (its libuv handle), once bound. */
  handle: RawHandle | null;
  sockname: Record<string, unknown> | undefined;
  /** Workers listening on it, ascending (the round robin's order). */
  workers: WorkerId[];
  last: WorkerId | null;
  /** Accepted, waiting for a worker with room. */
  waiting: Connection[];
  /** tls session ticket keys: the first worker's, for all. */
  data: unknown;
  /** Listen queries answered once bound. */
  binding: Array<(errno: number) => void> | null;
  /** Given to zd, not bound by it. */
  inherited: InheritedSocket | null;
}

export class Sockets {
  private readonly listeners = new Map<string, Listener>();
  /** Handed to each worker, not yet received, oldest first (Node passes descriptors in order). */
  private readonly inFlight = new Map<WorkerId, Connection[]>();
  private sweep: NodeJS.Timeout | null = null;
  private closed = false;
  /** zd is stopping: the sockets close once no worker listens on any of them. */
  private draining = false;

  constructor(private readonly options: SocketsOptions) {}

  /** A worker's internal message (`{ cmd: 'NODE_ZD', act }`), other than its 'listening' report. */
  onMessage(workerId: WorkerId, message: { act?: unknown; [k: string]: unknown }, handle?: unknown): void {
    switch (message.act) {
      case 'listen':
        this.listen(workerId, Number(message.id), message.query as ListenQuery);
        break;
      case 'back':
        if (handle) this.returned(workerId, String(message.key), handle as RawHandle);
        break;
      case 'close':
        this.unlisten(workerId, String(message.key));
        break;
    }
  }

  /** zd stops sending this worker connections (it drains); what is on its way it still answers. */
  stopRouting(workerId: WorkerId): void {
    for (const listener of this.listeners.values()) removeFrom(listener.workers, workerId);
    this.closeIdle();
  }

  /**
   * zd is stopping. Its workers serve on until they are told to drain (--shutdown-delay keeps them
   * serving while a load balancer takes the instance out), so the ports close once no worker
   * listens on them any more, as node:cluster's did: from then on a connection is refused, which a
   * client or load balancer retries elsewhere, rather than accepted for nobody.
   */
  stopping(): void {
    this.draining = true;
    this.closeIdle();
  }

  private closeIdle(): void {
    if (!this.draining || this.closed) return;
    if ([...this.listeners.values()].every((l) => l.workers.length === 0)) this.close();
  }

  /**
   * The worker is gone (its channel closed, or it exited): what it had not confirmed taking goes
   * to another worker, or is reset at once.
   */
  workerGone(workerId: WorkerId): void {
    this.stopRouting(workerId);
    const lost = this.inFlight.get(workerId) ?? [];
    this.inFlight.delete(workerId);
    for (const conn of lost) this.route(conn, true);
  }

  /**
   * Node's receipt (NODE_HANDLE_ACK) from this worker: the oldest descriptor handed to it is in its
   * hands, and ours is closed. Receipts for other descriptors (the listening socket, --sched none)
   * find nothing here.
   */
  delivered(workerId: WorkerId): void {
    const queue = this.inFlight.get(workerId);
    const conn = queue?.shift();
    if (!conn) return;
    if (queue!.length === 0) this.inFlight.delete(workerId);
    conn.handle.close();
    for (const listener of this.listeners.values()) if (listener.waiting.length > 0) this.flush(listener);
  }

  /**
   * zd stops (or a newer primary took over): nothing new is accepted here, and the port closes
   * unless another process holds it too (the keeper, systemd). Connections already accepted go to
   * a worker still listening, room or not; only with none left are they reset.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    for (const listener of this.listeners.values()) {
      listener.handle?.close();
      listener.handle = null;
      for (const conn of listener.waiting) {
        const workerId = this.options.stickyPort === listener.query.port ? this.pick(listener, conn.handle) : null;
        const to = workerId ?? listener.workers[0];
        if (to === undefined) reset(conn.handle);
        else this.handOver(to, conn);
      }
      listener.waiting = [];
    }
    for (const socket of this.options.inherited ?? []) socket.close();
  }

  private listen(workerId: WorkerId, id: number, query: ListenQuery): void {
    const key = `${query.address}:${query.port}:${query.addressType}:${query.index}`;
    let listener = this.listeners.get(key);
    if (!listener) {
      listener = { key, query, handle: null, sockname: undefined, workers: [], last: null, waiting: [], data: query.data, binding: [], inherited: null };
      this.listeners.set(key, listener);
      this.bind(listener);
    }
    const l = listener;
    const answer = (errno: number) => {
      if (errno) {
        this.options.send(workerId, { act: 'listened', id, errno, data: l.data });
        return;
      }
      const shared = this.options.sched === 'none' ? l.handle : undefined;
      if (this.options.send(workerId, { act: 'listened', id, key, sockname: l.sockname, data: l.data }, shared)) this.addWorker(l, workerId);
    };
    if (l.binding) l.binding.push(answer);
    else answer(l.handle ? 0 : -22 /* EINVAL */);
  }

  private bind(listener: Listener): void {
    const done = (errno: number) => {
      const waiting = listener.binding ?? [];
      listener.binding = null;
      // A failed bind is forgotten: the next listen (a respawn, once the port is free) tries again.
      if (errno) this.listeners.delete(listener.key);
      for (const answer of waiting) answer(errno);
    };
    const { query } = listener;
    const inherited = this.takeInherited(query, listener.key);
    const handle = inherited ? inherited.handle : createServerHandle(query);
    if (typeof handle === 'number') return void process.nextTick(done, handle);
    if (this.options.sched === 'rr') {
      // node:cluster's RoundRobinHandle, without a net.Server around the handle: a connection
      // costs no net.Socket here.
      handle.onconnection = (err, connection) => {
        if (err === 0) this.accepted(listener, connection);
      };
      // As net: no backlog given (net passes `false` then) is 511.
      const err = handle.listen!(query.backlog || 511);
      if (err) {
        if (!inherited) handle.close();
        return void process.nextTick(done, err);
      }
    }
    // As net does for listen({ path, readableAll, writableAll }).
    const mode = (query.readableAll ? 0o444 : 0) | (query.writableAll ? 0o222 : 0);
    if (mode && !inherited && handle.fchmod) handle.fchmod(mode);
    listener.inherited = inherited;
    this.adopt(listener, handle);
    if (!inherited) this.options.onBound?.(listener.key, handle);
    process.nextTick(done, 0);
  }

  private adopt(listener: Listener, handle: RawHandle): void {
    listener.handle = handle;
    if (handle.getsockname) {
      const out: Record<string, unknown> = {};
      if (handle.getsockname(out) === 0) listener.sockname = out;
    }
  }

  private takeInherited(query: ListenQuery, key: string): InheritedSocket | null {
    const sockets = this.options.inherited ?? [];
    const i = sockets.findIndex((s) => !s.taken && s.serves(query, key));
    if (i < 0) return null;
    sockets[i]!.taken = true;
    return sockets[i]!;
  }

  private addWorker(listener: Listener, workerId: WorkerId): void {
    if (this.options.sched === 'none' || listener.workers.includes(workerId)) return;
    listener.workers.push(workerId);
    listener.workers.sort((a, b) => a - b);
    this.flush(listener);
  }

  private unlisten(workerId: WorkerId, key: string): void {
    const listener = this.listeners.get(key);
    if (listener) removeFrom(listener.workers, workerId);
    this.closeIdle();
  }

  private accepted(listener: Listener, handle: RawHandle): void {
    if (this.closed) return reset(handle);
    this.route({ handle, listener, since: Date.now() }, false);
  }

  /**
   * Hands a connection to a worker with room, or keeps it waiting. `orphaned`: its worker died
   * before taking it; with no worker left it is reset now rather than kept.
   */
  private route(conn: Connection, orphaned: boolean): void {
    const { listener } = conn;
    const workerId = this.pick(listener, conn.handle) ?? (this.closed ? (listener.workers[0] ?? null) : null);
    if (workerId === null) {
      if (this.closed || (orphaned && listener.workers.length === 0)) return reset(conn.handle);
      listener.waiting.push(conn);
      this.armSweep();
      return;
    }
    this.handOver(workerId, conn);
  }

  private handOver(workerId: WorkerId, conn: Connection): void {
    const queue = this.inFlight.get(workerId);
    if (queue) queue.push(conn);
    else this.inFlight.set(workerId, [conn]);
    conn.listener.last = workerId;
    let sent = false;
    try {
      sent = this.options.send(workerId, { act: 'conn', key: conn.listener.key }, conn.handle);
    } catch (error) {
      this.options.onError('hand over a connection', error as Error);
    }
    if (!sent) {
      // Its channel is closed: it is leaving, and takes nothing more.
      this.inFlight.get(workerId)?.pop();
      removeFrom(conn.listener.workers, workerId);
      this.route(conn, true);
    }
  }

  /** A connection a worker got after its server closed: sent back, it goes to another worker. */
  private returned(workerId: WorkerId, key: string, handle: RawHandle): void {
    const listener = this.listeners.get(key);
    if (!listener) return reset(handle);
    removeFrom(listener.workers, workerId);
    this.route({ handle, listener, since: Date.now() }, false);
  }

  private pick(listener: Listener, handle: RawHandle): WorkerId | null {
    const room = listener.workers.filter((id) => (this.inFlight.get(id)?.length ?? 0) < IN_FLIGHT_PER_WORKER);
    if (room.length === 0) return null;
    if (this.options.stickyPort !== null && listener.query.port === this.options.stickyPort) {
      const peer: Record<string, unknown> = {};
      handle.getpeername?.(peer);
      // By slot among all listening workers: a client waits for its own worker's room, as it
      // would for its own process, rather than move (Socket.IO's polling needs one process).
      const id = pickSticky(String(peer.address ?? ''), this.options.slots(), listener.workers);
      return id !== null && room.includes(id) ? id : null;
    }
    return pickRoundRobin(listener.last, room);
  }

  private flush(listener: Listener): void {
    while (listener.waiting.length > 0) {
      const conn = listener.waiting[0]!;
      const workerId = this.pick(listener, conn.handle);
      if (workerId === null) {
        // --sticky: the head waits for its own worker; the others may have room elsewhere.
        if (this.options.stickyPort !== null && listener.query.port === this.options.stickyPort) this.flushSticky(listener);
        return;
      }
      listener.waiting.shift();
      this.handOver(workerId, conn);
    }
  }

  private flushSticky(listener: Listener): void {
    const still: Connection[] = [];
    for (const conn of listener.waiting) {
      const workerId = this.pick(listener, conn.handle);
      if (workerId === null) still.push(conn);
      else this.handOver(workerId, conn);
    }
    listener.waiting = still;
  }

  /** Connections waiting with no worker listening at all are reset past the deadline. */
  private armSweep(): void {
    if (this.sweep) return;
    this.sweep = setInterval(() => {
      const now = Date.now();
      let any = false;
      for (const listener of this.listeners.values()) {
        if (listener.workers.length > 0) {
          any ||= listener.waiting.length > 0;
          continue;
        }
        listener.waiting = listener.waiting.filter((conn) => {
          if (now - conn.since < WAIT_FOR_WORKER_MS) return true;
          reset(conn.handle);
          return false;
        });
        any ||= listener.waiting.length > 0;
      }
      if (!any && this.sweep) {
        clearInterval(this.sweep);
        this.sweep = null;
      }
    }, 100);
    this.sweep.unref();
  }
}

function removeFrom(list: WorkerId[], id: WorkerId): void {
  const i = list.indexOf(id);
  if (i >= 0) list.splice(i, 1);
}

/** Closed with a TCP reset where the handle can (the client sees ECONNRESET at once, not a hang). */
function reset(handle: RawHandle): void {
  if (typeof handle.reset === 'function' && handle.reset() === 0) return;
  handle.close();
}

/** A bound socket, as net and node:cluster make one (a negative errno if it cannot be). */
function createServerHandle(query: ListenQuery): RawHandle | number {
  return createHandle(query.address, query.port, query.addressType, undefined, query.flags);
}

/** net's own: binds (TCP: `::` else `0.0.0.0` for no address; a path), or opens a descriptor. */
export const createHandle = (net as unknown as { _createServerHandle: (...args: unknown[]) => RawHandle | number })._createServerHandle;
export type { RawHandle };
