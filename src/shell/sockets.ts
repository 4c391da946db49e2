// zd owns the listening sockets (issue 13); this is the primary's half (the worker's is
// src/worker/listen.cjs).
//
// A worker's listen() of a TCP address or a Unix path arrives here as a query (cluster's own, from
// the one seam cluster has). The first binds the address (or takes a socket zd inherited for it:
// systemd's, see inherited.ts); every later listen of the same address, by any worker of any
// generation, shares it. A socket for a fixed port stays zd's until zd stops: a worker crashing,
// a rollout, a crash loop never close it, so the port is never refused while zd runs. One for an
// ephemeral port (port 0) closes once the last worker that listened on it closes its server, as
// under node:cluster, and a later listen(0) gets a new port.
//
// Where a connection goes is the core's decision (src/core/routing.ts): `route()` says which
// workers may receive new connections, and a connection goes to one of those that also listen on
// its socket (round robin, or --sticky's client-IP hash by slot). With none, it waits (bounded in
// number and time) for one.
//
// Hand-over is exact: Node passes descriptors to a process one at a time (the next waits for the
// receipt of the last), so the receipts (NODE_HANDLE_ACK) and refusals (NODE_HANDLE_NACK: the
// worker could not take the descriptor, at its fd limit) of a worker arrive in the order of what
// was sent to it, and `sent` matches each to its connection (or to the listening socket handed to
// it under --sched none). The primary keeps its copy of a connection until the receipt: a
// connection refused, sent back by a worker whose server closed, or left with a worker that died
// first goes to another worker, never again to one that refused it, and is reset (with a code,
// counted) only when nobody can take it in time. node:cluster's round robin forgets a connection
// handed to a worker that is then SIGKILLed: no answer, no reset, and a leaked fd.
//
// With --sched none the listening socket itself is handed to every worker and the kernel spreads
// the connections, as cluster's SCHED_NONE does; zd keeps its own copy, so the port stays bound.
//
// With --sched reuseport (issue 22) each slot has a listening socket of its own on the address,
// bound with SO_REUSEPORT, and the kernel spreads new connections over the slots' sockets. A
// worker accepts straight from the sockets zd gives it, and zd gives them by the core's routing
// (connection-policy.ts: a slot's socket to its routable workers, an orphaned slot's to another
// routable worker): a cold, warming, draining or aborted worker takes none, as under rr. zd and the
// keeper hold every slot's socket until zd stops; a replacement takes over its slot's socket, a
// worker only closes its own copy, so a reload or a crash never closes a socket and its queue
// (a closed SO_REUSEPORT socket resets what waits in its accept queue: nginx ticket #1300).
import { getSystemErrorName } from 'node:util';
import type { WorkerId } from '../core/events.ts';
import { assignSlotSockets, pickRoundRobin, pickSticky } from './connection-policy.ts';
import { createHandle, UV_TCP_REUSEPORT, type ListenQuery, type RawHandle } from './handles.ts';
import type { InheritedSocket } from './inherited.ts';

export type SendToWorker = (workerId: WorkerId, message: Record<string, unknown>, handle?: unknown) => boolean;

/** Why zd reset a connection it had accepted: each a stable code, counted in /metrics. */
export type ResetReason =
  /** It waited WAIT_FOR_WORKER_MS and no worker could take it. */
  | 'ZD_CONN_NO_WORKER'
  /** More than MAX_WAITING connections were waiting on its port already. */
  | 'ZD_CONN_OVERFLOW'
  /** zd stopped with it accepted and no worker left to serve it. */
  | 'ZD_CONN_STOPPED';

export interface SocketStats {
  /** accept(2) failures (EMFILE, ENFILE, ENOMEM…), by errno name. */
  acceptErrors: Record<string, number>;
  /** Accepted connections zd reset, by reason. */
  resets: Record<ResetReason, number>;
  /** Descriptors a worker could not take (NODE_HANDLE_NACK) or a send that failed: re-routed. */
  refused: number;
  /** Connections a worker sent back (its server had closed): re-routed. */
  returned: number;
  /** Connections handed to a worker. */
  handedOver: number;
  /** Times zd stopped accepting on a socket because too many connections waited. */
  pauses: number;
}

export interface SocketsOptions {
  /** Whose connections: zd's round robin ('rr'), the kernel's over one shared socket ('none'), or over one socket per slot ('reuseport'). */
  sched: 'rr' | 'none' | 'reuseport';
  /** --sched reuseport: the slot a worker serves (its socket is that slot's). */
  slotOf?: (workerId: WorkerId) => number | null;
  /** --sticky PORT: connections to this port go by client IP. */
  stickyPort: number | null;
  /** Sockets zd was given (systemd's LISTEN_FDS): a listen of the same address takes one. */
  inherited?: InheritedSocket[];
  /** A socket zd bound itself (not one it was given): the keeper holds it from now on. */
  onBound?: (key: string, handle: RawHandle) => void;
  /** A socket zd bound is closed for good (an ephemeral port no worker listens on): the keeper lets go of it too. */
  onReleased?: (key: string) => void;
  /** Over the worker's IPC channel, as an internal (`NODE_`) message; false if the channel is closed. */
  send: SendToWorker;
  /** A connection could not be handed over or closed: reported, never thrown. */
  onError: (what: string, error: Error) => void;
  /** A line about connections (one per burst and code): accept errors, resets. */
  onReport?: (code: string, message: string, fields: Record<string, unknown>) => void;
  /** A fresh copy of a socket another process holds under `key` (the keeper lends it), or null. */
  borrow?: (key: string, got: (handle: RawHandle | null) => void) => void;
  /** Accepted connections that may wait per port (MAX_WAITING). */
  maxWaiting?: number;
}

/** How long an accepted connection may wait for a worker to take it before it is reset. */
export const WAIT_FOR_WORKER_MS = 5000;
/**
 * Accepted connections waiting for a worker, per port. Past it zd stops accepting there (the
 * kernel's own backlog, 511 by default, queues the rest, as for any busy server) until half of
 * them are taken; where it cannot stop (no keeper holds a copy), a new one is reset instead.
 */
export const MAX_WAITING = 1024;
/** Connections handed to one worker and not yet confirmed (node:cluster's round robin: 1). */
const IN_FLIGHT_PER_WORKER = 1;
/** Loop turns a closing socket layer waits for one that accepted nothing. */
const CLOSE_TURNS = 50;
/** One line per code per this long; the lines in between are counted in the next one. */
const REPORT_EVERY_MS = 1000;

interface Connection {
  handle: RawHandle;
  listener: Listener;
  since: number;
  /** Workers that refused it or sent it back: it never goes to them again. */
  refusedBy: WorkerId[] | null;
}

interface Listener {
  key: string;
  query: ListenQuery;
  /** The listening socket (its libuv handle), once bound; null once closed. */
  handle: RawHandle | null;
  sockname: Record<string, unknown> | undefined;
  /** Workers whose server listens on it, ascending. */
  listening: WorkerId[];
  /** Of those, the routable ones (the round robin's order). */
  candidates: WorkerId[];
  last: WorkerId | null;
  /** Accepted, waiting for a worker with room. */
  waiting: Connection[];
  /** tls session ticket keys: the first worker's, for all. */
  data: unknown;
  /** Listen queries answered once bound. */
  binding: Array<(errno: number) => void> | null;
  /** Given to zd, not bound by it. */
  inherited: InheritedSocket | null;
  /** The keeper holds a copy under this key: this process may close its own and borrow it back. */
  heldElsewhere: boolean;
  /** This process stopped accepting on it (too many waiting), until they are taken. */
  paused: boolean;
  resuming: boolean;
  /** --sched reuseport (TCP, not a socket zd was given): each slot's socket, by slot; else null. */
  slots: Map<number, SlotSocket> | null;
}

/** --sched reuseport: one slot's SO_REUSEPORT socket on a listener's address. */
interface SlotSocket {
  slot: number;
  /** The listener's key and `#slot`: the keeper holds it under this name. */
  key: string;
  handle: RawHandle;
  /** The workers told to accept on it (each has its own copy), in the order they were told. */
  acceptors: WorkerId[];
}

/** A descriptor sent to a worker, awaiting its receipt: a connection, or (null) a listening socket. */
type Pending = Connection | null;

export class Sockets {
  private readonly listeners = new Map<string, Listener>();
  /** Sent to each worker, not yet acknowledged, oldest first (Node passes descriptors in order). */
  private readonly sent = new Map<WorkerId, Pending[]>();
  private routable = new Set<WorkerId>();
  private slots: Array<WorkerId | null> = [];
  private sweep: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly lastReport = new Map<string, { at: number; count: number }>();
  readonly stats: SocketStats = {
    acceptErrors: {},
    resets: { ZD_CONN_NO_WORKER: 0, ZD_CONN_OVERFLOW: 0, ZD_CONN_STOPPED: 0 },
    refused: 0,
    returned: 0,
    handedOver: 0,
    pauses: 0,
  };
  private readonly maxWaiting: number;
  private acceptedCount = 0;

  constructor(private readonly options: SocketsOptions) {
    this.maxWaiting = options.maxWaiting ?? MAX_WAITING;
  }

  /** Connections accepted and waiting for a worker, on every port. */
  get waiting(): number {
    let n = 0;
    for (const listener of this.listeners.values()) n += listener.waiting.length;
    return n;
  }

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
      case 'acceptError': {
        // --sched reuseport: the worker's accept(2) on a slot's socket failed (EMFILE…).
        const listener = this.listeners.get(String(message.key));
        if (listener) this.acceptFailed(listener, Number(message.errno));
        break;
      }
    }
  }

  /** The core's routing (a `route` effect): only these workers get new connections from now on. */
  route(workers: readonly WorkerId[], slots: ReadonlyArray<WorkerId | null> = []): void {
    this.routable = new Set(workers);
    this.slots = [...slots];
    for (const listener of this.listeners.values()) {
      this.updateCandidates(listener);
      this.flush(listener);
    }
  }

  /**
   * The worker is gone (its channel closed, or it exited): what it had not confirmed taking goes
   * to another worker, or is reset.
   */
  workerGone(workerId: WorkerId): void {
    for (const listener of this.listeners.values()) {
      removeFrom(listener.listening, workerId);
      removeFrom(listener.candidates, workerId);
      // Its copies of the slots' sockets went with it: another worker takes its slot's queue.
      for (const socket of listener.slots?.values() ?? []) removeFrom(socket.acceptors, workerId);
      this.assign(listener);
    }
    const lost = this.sent.get(workerId) ?? [];
    this.sent.delete(workerId);
    for (const conn of lost) if (conn) this.reroute(conn, workerId);
  }

  /** Node's receipt (NODE_HANDLE_ACK): the oldest descriptor sent to this worker is in its hands. */
  delivered(workerId: WorkerId): void {
    const conn = this.shift(workerId);
    if (conn === undefined) return;
    conn?.handle.close(); // ours; the worker has its own now
    this.flushAll();
  }

  /**
   * Node's refusal (NODE_HANDLE_NACK): the oldest descriptor sent to this worker did not reach it
   * (its process is at its descriptor limit). Node does not send a raw handle again: the
   * connection goes to another worker.
   */
  refused(workerId: WorkerId): void {
    const conn = this.shift(workerId);
    if (conn === undefined) return;
    this.stats.refused += 1;
    if (conn === null) {
      this.options.onError('hand over a listening socket', new Error(`worker ${workerId} could not take it (NODE_HANDLE_NACK)`));
      return;
    }
    this.reroute(conn, workerId);
    this.flushAll();
  }

  /**
   * Nothing new is accepted here: zd stops, or a newer primary took over. The port closes unless
   * another process holds it too (the keeper, systemd: a socket zd was given keeps its queue for
   * the next instance). Connections already accepted go to a routable worker, room or not; only
   * with none (a stop before any worker was ready) are they reset.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    for (const listener of this.listeners.values()) {
      listener.handle?.close();
      listener.handle = null;
      // --sched reuseport: every worker stops accepting too (their copies keep the sockets
      // listening otherwise); the last copy closed closes the socket.
      for (const socket of listener.slots?.values() ?? []) {
        for (const id of socket.acceptors) this.direct(listener, socket, id, false);
        socket.acceptors = [];
        socket.handle.close();
      }
      const waiting = listener.waiting;
      listener.waiting = [];
      for (const conn of waiting) this.place(conn);
    }
    for (const socket of this.options.inherited ?? []) if (!socket.taken) socket.close();
  }

  /**
   * close(), at a moment when this process has just accepted everything the kernel had queued.
   * Closing a listening socket resets the connections in its accept queue that nobody accepted
   * yet: closing from an I/O callback could catch ones whose readiness is reported in the same
   * poll, and a busy moment can have more queued. So: one loop turn at a time (an immediate runs
   * after the poll phase that accepts), until a turn accepted nothing, at most CLOSE_TURNS.
   */
  closeWhenQuiet(done: () => void): void {
    let turns = 0;
    let seen = this.acceptedCount;
    const turn = () => {
      if (this.closed) return done();
      if (this.acceptedCount === seen || ++turns >= CLOSE_TURNS) {
        this.close();
        return done();
      }
      seen = this.acceptedCount;
      setImmediate(turn);
    };
    seen = -1; // at least one turn: let the poll phase in progress accept what it reports
    setImmediate(turn);
  }

  private listen(workerId: WorkerId, id: number, query: ListenQuery): void {
    const key = `${query.address}:${query.port}:${query.addressType}:${query.index}`;
    let listener = this.listeners.get(key);
    if (!listener) {
      listener = { key, query, handle: null, sockname: undefined, listening: [], candidates: [], last: null, waiting: [], data: query.data, binding: [], inherited: null, heldElsewhere: false, paused: false, resuming: false, slots: null };
      this.listeners.set(key, listener);
      this.bind(listener);
    }
    const l = listener;
    const answer = (errno: number) => {
      // --sched reuseport: the worker's slot's own socket, bound now if this slot has none yet.
      const socket = errno === 0 && l.slots ? this.slotSocket(l, this.options.slotOf?.(workerId) ?? 0) : null;
      if (typeof socket === 'number') errno = socket;
      if (errno) {
        this.options.send(workerId, { act: 'listened', id, errno, data: l.data });
        return;
      }
      if (l.slots) {
        // A stand-in, as under rr: which sockets it accepts on is zd's to say (assign()). With it,
        // a copy of its slot's socket for the worker to listen() on once and close at once: an
        // SO_REUSEPORT bind never fails, its listen does (another process has the port:
        // EADDRINUSE, in the app, as without zd), and from then on the kernel queues connections
        // on it for the acceptor zd names.
        const slotSocket = socket as SlotSocket;
        if (!this.options.send(workerId, { act: 'listened', id, key, sockname: l.sockname, data: l.data, direct: true }, slotSocket.handle)) return;
        this.pending(workerId).push(null); // its receipt is this socket's, not a connection's
        this.addWorker(l, workerId);
        return;
      }
      const shared = this.options.sched === 'none' ? l.handle : undefined;
      if (!this.options.send(workerId, { act: 'listened', id, key, sockname: l.sockname, data: l.data }, shared)) return;
      if (shared) this.pending(workerId).push(null); // its receipt is this socket's, not a connection's
      this.addWorker(l, workerId);
    };
    if (l.binding) l.binding.push(answer);
    else answer(l.handle || l.slots ? 0 : -22 /* EINVAL */);
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
    if (this.options.sched === 'reuseport' && query.port >= 0 && !inherited) {
      // Sockets per slot, bound as workers of each slot listen (slotSocket); none for the address.
      // Every slot's socket an earlier primary left is taken now, whatever this one's worker count:
      // the kernel steers connections to each of them, so each needs an acceptor (assign()).
      listener.slots = new Map();
      listener.heldElsewhere = this.options.onBound !== undefined;
      for (const socket of this.options.inherited ?? []) {
        const slot = socket.name.startsWith(`${listener.key}#`) ? Number(socket.name.slice(listener.key.length + 1)) : NaN;
        if (socket.taken || !Number.isInteger(slot)) continue;
        socket.taken = true;
        this.addSlotSocket(listener, slot, socket.name, socket.handle);
      }
      return void process.nextTick(done, 0);
    }
    const handle = inherited ? inherited.handle : createServerHandle(query);
    if (typeof handle === 'number') return void process.nextTick(done, handle);
    if (this.options.sched !== 'none') {
      // node:cluster's RoundRobinHandle (and --sched reuseport's, for a socket zd was given), without a net.Server around the handle: a connection
      // costs no net.Socket here.
      handle.onconnection = (err, connection) => {
        if (err === 0) this.accepted(listener, connection);
        else this.acceptFailed(listener, err);
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
    // The keeper holds what this primary binds, and what an earlier primary bound (handed down
    // under its key); systemd's sockets it holds as bare descriptors, which it cannot lend.
    listener.heldElsewhere = inherited ? inherited.name === listener.key : this.options.onBound !== undefined;
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
    // A slot's socket (`key#slot`) is taken by its name only (slotSocket).
    const i = sockets.findIndex((s) => !s.taken && !s.name.includes('#') && s.serves(query, key));
    if (i < 0) return null;
    sockets[i]!.taken = true;
    return sockets[i]!;
  }

  private addWorker(listener: Listener, workerId: WorkerId): void {
    if (listener.listening.includes(workerId)) return;
    listener.listening.push(workerId);
    listener.listening.sort((a, b) => a - b);
    this.updateCandidates(listener);
    this.flush(listener);
  }

  private updateCandidates(listener: Listener): void {
    listener.candidates = listener.listening.filter((id) => this.routable.has(id));
    this.assign(listener);
  }

  /**
   * --sched reuseport: slot `slot`'s socket on the listener's address. Bound with SO_REUSEPORT on
   * the address's port (the first one's, for port 0) the first time a worker of the slot listens
   * (unless an earlier primary left it: bind()); then held by zd (and the keeper) until zd stops,
   * whatever becomes of the slot. A negative errno if it cannot be.
   */
  private slotSocket(listener: Listener, slot: number): SlotSocket | number {
    const known = listener.slots!.get(slot);
    if (known) return known;
    const key = `${listener.key}#${slot}`;
    const { query } = listener;
    const port = Number(listener.sockname?.port ?? query.port);
    const handle = createHandle(query.address, port, query.addressType, undefined, query.flags | UV_TCP_REUSEPORT);
    if (typeof handle === 'number') return handle;
    // libuv keeps a bind's EADDRINUSE for the listen; getsockname says it now. A socket handed on
    // unbound would be bound by its first listen to a port of the kernel's choosing.
    const bound = handle.getsockname ? handle.getsockname({}) : 0;
    if (bound) {
      handle.close();
      return bound;
    }
    this.options.onBound?.(key, handle);
    return this.addSlotSocket(listener, slot, key, handle);
  }

  private addSlotSocket(listener: Listener, slot: number, key: string, handle: RawHandle): SlotSocket {
    // The address's port as bound (port 0: the first socket's), for the next slot's bind.
    if (!listener.sockname && handle.getsockname) {
      const out: Record<string, unknown> = {};
      if (handle.getsockname(out) === 0) listener.sockname = out;
    }
    const socket: SlotSocket = { slot, key, handle, acceptors: [] };
    listener.slots!.set(slot, socket);
    return socket;
  }

  /**
   * --sched reuseport: tells the workers which slots' sockets to accept on, as the routing and the
   * listening workers now say (connection-policy.ts). A worker told to stop closes its copy only:
   * what the kernel queued there waits for the socket's next acceptor.
   */
  private assign(listener: Listener): void {
    if (!listener.slots || this.closed) return;
    const wanted = assignSlotSockets([...listener.slots.keys()], listener.candidates, (id) => this.options.slotOf?.(id) ?? null);
    for (const socket of listener.slots.values()) {
      const want = wanted.get(socket.slot) ?? [];
      // The new acceptors first: the socket is never left without one that the routing allows.
      const added = want.filter((id) => !socket.acceptors.includes(id) && this.direct(listener, socket, id, true));
      for (const id of socket.acceptors) if (!want.includes(id)) this.direct(listener, socket, id, false);
      socket.acceptors = [...socket.acceptors.filter((id) => want.includes(id)), ...added];
    }
  }

  /** Tells a worker to accept on a slot's socket (with a copy of it) or to close its copy; false if its channel is closed. */
  private direct(listener: Listener, socket: SlotSocket, workerId: WorkerId, on: boolean): boolean {
    let sent = false;
    try {
      sent = this.options.send(workerId, { act: 'direct', key: listener.key, socket: socket.key, on }, on ? socket.handle : undefined);
    } catch (error) {
      this.options.onError('hand over a slot socket', error as Error);
    }
    if (sent && on) this.pending(workerId).push(null); // its receipt is this socket's, not a connection's
    return sent;
  }

  /** The worker closed its server on this socket. An ephemeral port no worker listens on is let go. */
  private unlisten(workerId: WorkerId, key: string): void {
    const listener = this.listeners.get(key);
    if (!listener) return;
    removeFrom(listener.listening, workerId);
    removeFrom(listener.candidates, workerId);
    // Its server closed its copies of the slots' sockets with it.
    for (const socket of listener.slots?.values() ?? []) removeFrom(socket.acceptors, workerId);
    this.assign(listener);
    if (listener.query.port !== 0 || listener.listening.length > 0 || listener.inherited || listener.binding) return;
    // As node:cluster's handle: the next listen(0) binds a port of its own. What waits here (a
    // connection accepted just before) goes to whoever still listens elsewhere: nobody.
    this.listeners.delete(key);
    listener.handle?.close();
    listener.handle = null;
    for (const conn of listener.waiting) this.resetConn(conn, 'ZD_CONN_NO_WORKER');
    listener.waiting = [];
    if (!listener.slots) this.options.onReleased?.(key);
    for (const socket of listener.slots?.values() ?? []) {
      socket.handle.close();
      this.options.onReleased?.(socket.key);
    }
  }

  private accepted(listener: Listener, handle: RawHandle): void {
    this.acceptedCount += 1;
    if (this.closed) return this.resetConn({ handle, listener, since: Date.now(), refusedBy: null }, 'ZD_CONN_STOPPED');
    const conn: Connection = { handle, listener, since: Date.now(), refusedBy: null };
    // This one is accepted already: it waits (it is the last); only where zd cannot stop accepting
    // is one past the bound reset.
    if (listener.waiting.length >= this.maxWaiting && !this.pause(listener)) return this.resetConn(conn, 'ZD_CONN_OVERFLOW');
    this.place(conn);
  }

  private acceptFailed(listener: Listener, errno: number): void {
    const name = errnoName(errno);
    this.stats.acceptErrors[name] = (this.stats.acceptErrors[name] ?? 0) + 1;
    this.report('ZD_ACCEPT_ERROR', `accepting a connection on ${describe(listener)} failed: ${name}`, { errno: name, socket: listener.key });
  }

  /** A connection a worker could not take, or lost with it: to another worker, never back to this one. */
  private reroute(conn: Connection, from: WorkerId): void {
    (conn.refusedBy ??= []).push(from);
    this.place(conn);
  }

  /** Hands a connection to a routable worker with room, or keeps it waiting (bounded). */
  private place(conn: Connection): void {
    const { listener } = conn;
    // A listener let go of (its ephemeral port closed) has nobody to serve its connections.
    if (this.listeners.get(listener.key) !== listener) return this.resetConn(conn, 'ZD_CONN_NO_WORKER');
    let workerId = this.pick(conn, true);
    // Stopped: nothing more will come, so room does not matter (the core closes the ports while
    // its workers still serve). Never a worker outside the routable set: a cold or draining one
    // would not serve it either.
    if (workerId === null && this.closed) workerId = this.pick(conn, false);
    if (workerId === null) {
      if (this.closed) return this.resetConn(conn, 'ZD_CONN_STOPPED');
      listener.waiting.push(conn);
      this.armSweep();
      return;
    }
    this.handOver(workerId, conn);
  }

  private handOver(workerId: WorkerId, conn: Connection): void {
    this.pending(workerId).push(conn);
    conn.listener.last = workerId;
    let sent = false;
    try {
      sent = this.options.send(workerId, { act: 'conn', key: conn.listener.key }, conn.handle);
    } catch (error) {
      this.options.onError('hand over a connection', error as Error);
    }
    if (sent) {
      this.stats.handedOver += 1;
      return;
    }
    // Its channel is closed: it is leaving, and takes nothing more.
    this.sent.get(workerId)?.pop();
    for (const listener of this.listeners.values()) removeFrom(listener.candidates, workerId);
    this.stats.refused += 1;
    this.reroute(conn, workerId);
  }

  /** A connection a worker got after its server closed: sent back, it goes to another worker. */
  private returned(workerId: WorkerId, key: string, handle: RawHandle): void {
    const listener = this.listeners.get(key);
    this.stats.returned += 1;
    if (!listener) return void reset(handle);
    removeFrom(listener.listening, workerId);
    removeFrom(listener.candidates, workerId);
    this.reroute({ handle, listener, since: Date.now(), refusedBy: null }, workerId);
  }

  /** A routable worker listening on the connection's socket (with room, if `room`), or null. */
  private pick(conn: Connection, room: boolean): WorkerId | null {
    const { listener } = conn;
    const open = listener.candidates.filter((id) => !conn.refusedBy?.includes(id) && (!room || (this.sent.get(id)?.length ?? 0) < IN_FLIGHT_PER_WORKER));
    if (open.length === 0) return null;
    if (this.options.stickyPort !== null && listener.query.port === this.options.stickyPort) {
      const peer: Record<string, unknown> = {};
      conn.handle.getpeername?.(peer);
      // By slot among all candidates: a client waits for its own worker's room, as it would for
      // its own process, rather than move (Socket.IO's polling needs one process).
      const slots = this.slots.filter((id): id is WorkerId => id !== null);
      const candidates = listener.candidates.filter((id) => !conn.refusedBy?.includes(id));
      const id = pickSticky(String(peer.address ?? ''), slots, candidates);
      return id !== null && open.includes(id) ? id : null;
    }
    return pickRoundRobin(listener.last, open);
  }

  private flushAll(): void {
    for (const listener of this.listeners.values()) if (listener.waiting.length > 0) this.flush(listener);
  }

  private flush(listener: Listener): void {
    if (listener.waiting.length > 0) {
      const sticky = this.options.stickyPort !== null && listener.query.port === this.options.stickyPort;
      const still: Connection[] = [];
      const waiting = listener.waiting;
      for (let i = 0; i < waiting.length; i++) {
        const conn = waiting[i]!;
        const workerId = this.pick(conn, true);
        if (workerId !== null) {
          this.handOver(workerId, conn);
          continue;
        }
        still.push(conn);
        // In order: once one finds no room, later ones would not either; but a --sticky client,
        // or one some workers refused, may still have its own worker free.
        if (!sticky && conn.refusedBy === null) {
          for (let j = i + 1; j < waiting.length; j++) still.push(waiting[j]!);
          break;
        }
      }
      listener.waiting = still;
    }
    if (listener.paused && listener.waiting.length <= this.maxWaiting / 2) this.resume(listener);
  }

  /**
   * Too many accepted connections wait: this process stops accepting on the socket (closes its
   * copy), so that the kernel's backlog holds the rest, as it would for a busy server; the keeper's
   * copy keeps the socket and its queue. Only where the keeper holds one: otherwise closing would
   * close the socket, and the newest connection is reset instead.
   */
  private pause(listener: Listener): boolean {
    if (listener.paused) return true;
    if (!this.options.borrow || !listener.heldElsewhere || !listener.handle) return false;
    listener.handle.close();
    listener.handle = null;
    listener.paused = true;
    this.stats.pauses += 1;
    this.report('ZD_ACCEPT_PAUSED', `${listener.waiting.length} connections on ${describe(listener)} wait for a worker: zd stops accepting there until they are taken (the kernel's backlog holds the rest)`, { socket: listener.key, waiting: listener.waiting.length });
    return true;
  }

  /** Enough of the waiting connections were taken: accept again, on a copy the keeper lends. */
  private resume(listener: Listener): void {
    if (listener.resuming || this.closed) return;
    listener.resuming = true;
    this.options.borrow!(listener.key, (handle) => {
      listener.resuming = false;
      const current = this.listeners.get(listener.key) === listener;
      if (!handle || this.closed || !current || !listener.paused) {
        handle?.close();
        // No copy (the keeper did not answer): said, and tried again shortly, rather than never
        // accepting again in silence.
        if (!handle && current && listener.paused && !this.closed) {
          this.report('ZD_ACCEPT_RESUME_FAILED', `cannot accept on ${describe(listener)} again: the keeper lent no copy of the socket; retrying`, { socket: listener.key });
          setTimeout(() => this.resume(listener), 100).unref();
        }
        return;
      }
      handle.onconnection = (err, connection) => {
        if (err === 0) this.accepted(listener, connection);
        else this.acceptFailed(listener, err);
      };
      const err = handle.listen!(listener.query.backlog || 511);
      if (err) {
        handle.close();
        this.options.onError('accept again', new Error(`listen on a lent copy of ${describe(listener)} failed: ${errnoName(err)}`));
        setTimeout(() => this.resume(listener), 100).unref();
        return;
      }
      listener.handle = handle;
      listener.paused = false;
    });
  }

  private pending(workerId: WorkerId): Pending[] {
    let queue = this.sent.get(workerId);
    if (!queue) this.sent.set(workerId, (queue = []));
    return queue;
  }

  /** The oldest descriptor sent to the worker (undefined: none is pending). */
  private shift(workerId: WorkerId): Pending | undefined {
    const queue = this.sent.get(workerId);
    if (!queue || queue.length === 0) return undefined;
    const first = queue.shift()!;
    if (queue.length === 0) this.sent.delete(workerId);
    return first;
  }

  private resetConn(conn: Connection, reason: ResetReason): void {
    reset(conn.handle);
    this.stats.resets[reason] += 1;
    const why = {
      ZD_CONN_NO_WORKER: `no worker could take it within ${WAIT_FOR_WORKER_MS}ms`,
      ZD_CONN_OVERFLOW: `${this.maxWaiting} connections were already waiting for a worker`,
      ZD_CONN_STOPPED: 'zd stopped with no worker left to serve it',
    }[reason];
    this.report(reason, `reset a connection on ${describe(conn.listener)}: ${why}`, { socket: conn.listener.key });
  }

  /** One line per code per REPORT_EVERY_MS; the ones in between are counted in the next. */
  private report(code: string, message: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    const last = this.lastReport.get(code);
    if (last && now - last.at < REPORT_EVERY_MS) {
      last.count += 1;
      return;
    }
    const more = last?.count ?? 0;
    this.lastReport.set(code, { at: now, count: 0 });
    this.options.onReport?.(code, more > 0 ? `${message} (and ${more} more since the last such line)` : message, { ...fields, since: more });
  }

  /** Connections waiting past their deadline are reset. */
  private armSweep(): void {
    if (this.sweep) return;
    this.sweep = setInterval(() => {
      const now = Date.now();
      let any = false;
      for (const listener of this.listeners.values()) {
        listener.waiting = listener.waiting.filter((conn) => {
          if (now - conn.since < WAIT_FOR_WORKER_MS) return true;
          this.resetConn(conn, 'ZD_CONN_NO_WORKER');
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

function describe(listener: Listener): string {
  const { address, port } = listener.query;
  return port < 0 ? String(address) : `${address ?? '*'}:${String(listener.sockname?.port ?? port)}`;
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(errno);
  } catch {
    return `errno ${errno}`;
  }
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

export type { ListenQuery, RawHandle };
