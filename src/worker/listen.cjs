// @ts-check
// zd owns the listening sockets (issue 13); this is the worker's half (the primary's is
// src/shell/sockets.ts).
//
// node:cluster turns a worker's listen() into `cluster._getServer(server, query, cb)`, answered by
// the primary with either a listening handle (SCHED_NONE) or nothing, and then connections one by
// one (round robin, handled by a stand-in handle). zd takes that one seam and answers it itself:
// the query (already normalised and resolved by net, exactly as cluster gets it) goes to zd's
// primary, which binds the address once (or takes a socket it inherited: systemd's, or the one the
// previous primary held across `zd upgrade`) and hands over accepted connections. The app keeps an
// ordinary server: `address()`, 'listening', 'connection', close(), maxConnections and 'drop' are
// net's own code, run on the stand-in handle as they are on cluster's.
//
// Under --sched reuseport the answer is a stand-in too, and zd then gives the worker slots'
// SO_REUSEPORT sockets to accept on (`direct` messages) and takes them back as the core's routing
// changes: the kernel hands it connections with no hop through the primary, and its server never
// knows the difference.
//
// What zd does not take over, and leaves to node:cluster unchanged: UDP (dgram), `exclusive: true`
// (the app binds in the worker, on purpose) and listen({ fd }) (a descriptor of the worker's own).
//
// Messages are `{ cmd: 'NODE_ZD', … }`: Node delivers a `NODE_`-prefixed cmd as 'internalMessage',
// so neither the app's process.on('message') nor zd's own message handling sees a message per
// connection.
'use strict';

const cluster = /** @type {any} */ (require('node:cluster'));
const path = require('node:path');

const CMD = 'NODE_ZD';
// The longest setInterval: it only keeps the event loop alive, as a bound socket would.
const TIMEOUT_MAX = 2 ** 31 - 1;

/**
 * @typedef {{ onconnection?: (err: number, handle: any) => void, close(): void, listen(backlog?: number): number,
 *   ref(): void, unref(): void, getsockname?: (out: object) => number, server: import('node:net').Server, open: boolean,
 *   backlog: number, refed: boolean, direct: Map<string, any> }} StandIn
 */

/** @type {Map<string, StandIn>} the stand-in handles of this worker's zd-owned servers, by key */
const standIns = new Map();
/** --sched none: servers listening on the shared socket itself, closed like the others at a drain. */
const shared = new Set();
/**
 * Open listens per address, as cluster's: the n-th listen of port 0 shares the n-th port. An index
 * is freed when its server closes (or its listen fails), and the count starts again once none is
 * open, so close() then listen() on the same address takes the same socket, and listen(0) after
 * the last close gets a new port.
 * @type {Map<string, { next: number, open: Set<number> }>}
 */
const indexes = new Map();

/** @param {string} indexKey */
function takeIndex(indexKey) {
  let set = indexes.get(indexKey);
  if (!set) indexes.set(indexKey, (set = { next: 0, open: new Set() }));
  const index = set.next++;
  set.open.add(index);
  return index;
}

/** @param {string} indexKey @param {number} index */
function freeIndex(indexKey, index) {
  const set = indexes.get(indexKey);
  if (!set) return;
  set.open.delete(index);
  if (set.open.size === 0) indexes.delete(indexKey);
}
/** @type {Map<number, (reply: any, handle: any) => void>} */
const replies = new Map();
let nextRequest = 0;

/** @param {object} message @param {any} [handle] */
function send(message, handle) {
  if (!process.connected || !process.send) return false;
  try {
    process.send({ cmd: CMD, ...message }, handle);
    return true;
  } catch {
    return false; // the channel closed under us: the primary re-routes what it sent
  }
}

/** @param {any} options */
function ownedByZd(options) {
  // dgram asks with addressType 'udp4'/'udp6'; net with 4, 6 or -1 (a path).
  if (typeof options.addressType !== 'number') return false;
  if (typeof options.fd === 'number' && options.fd >= 0) return false;
  return Boolean(process.send);
}

function install() {
  // zd's primary says it speaks this (ZD_SOCKETS=1); under any other cluster primary the bootstrap
  // leaves listen() to node:cluster. Not passed on to what the app itself starts.
  const zdPrimary = process.env.ZD_SOCKETS === '1';
  delete process.env.ZD_SOCKETS;
  const clusterGetServer = cluster._getServer;
  if (!zdPrimary || typeof clusterGetServer !== 'function') return; // not a zd worker
  /** @param {any} obj @param {any} options @param {(err: number, handle: any) => void} cb */
  cluster._getServer = function getServer(obj, options, cb) {
    if (!ownedByZd(options)) return clusterGetServer.call(this, obj, options, cb);
    let address = options.address;
    if (options.port < 0 && typeof address === 'string') address = path.resolve(address);
    const indexKey = `${address}:${options.port}:${options.addressType}`;
    const index = takeIndex(indexKey);
    const id = nextRequest++;
    const query = {
      address: address ?? null,
      port: options.port,
      addressType: options.addressType,
      flags: options.flags ?? 0,
      backlog: options.backlog,
      readableAll: Boolean(options.readableAll),
      writableAll: Boolean(options.writableAll),
      index,
      // tls.Server's session ticket keys, shared by every worker as cluster shares them.
      data: typeof obj._getServerData === 'function' ? obj._getServerData() : null,
    };
    replies.set(id, (reply, handle) => {
      if (typeof obj._setServerData === 'function' && reply.data) obj._setServerData(reply.data);
      if (reply.errno) {
        freeIndex(indexKey, index);
        return cb(reply.errno, null);
      }
      // --sched reuseport: the slot's socket, to listen() on once (its listen, not its bind, says
      // whether the port is free) and close at once, before this turn could accept anything: zd
      // says later which sockets this worker accepts on (onDirect).
      if (reply.direct && handle) {
        const err = handle.listen(options.backlog || 511);
        handle.close();
        if (err) {
          freeIndex(indexKey, index);
          send({ act: 'close', key: reply.key });
          return cb(err, null);
        }
      } else if (handle) {
        // --sched none: the listening socket itself; every worker accepts on it, the kernel balances.
        shared.add(obj);
        obj.once('close', () => {
          shared.delete(obj);
          freeIndex(indexKey, index);
          send({ act: 'close', key: reply.key });
        });
        return cb(0, handle);
      }
      cb(0, standIn(reply.key, reply.sockname, obj, () => freeIndex(indexKey, index)));
    });
    if (!send({ act: 'listen', id, query })) {
      freeIndex(indexKey, index);
      replies.delete(id);
      process.nextTick(cb, -32 /* EPIPE */, null);
      return;
    }
    obj.once('listening', () => {
      const bound = obj.address();
      const port = bound && typeof bound === 'object' ? bound.port : options.port;
      // What readiness compares: the address as asked for, the port as bound.
      send({ act: 'listening', address: `${address ?? ''}:${port}` });
    });
  };

  process.on('internalMessage', (/** @type {any} */ message, /** @type {any} */ handle) => {
    if (!message || message.cmd !== CMD) return;
    if (message.act === 'conn') return onConnection(message, handle);
    if (message.act === 'direct') return onDirect(message, handle);
    if (message.act === 'listened') {
      const reply = replies.get(message.id);
      replies.delete(message.id);
      reply?.(message, handle);
    }
  });

  // zd's drain disconnects the worker; cluster then closes the servers it knows, and these are
  // zd's to close (their 'close' waits for the connections, as the bootstrap's drain expects).
  process.once('disconnect', () => {
    for (const handle of [...standIns.values()]) handle.server.close();
    for (const server of [...shared]) server.close();
  });
}

/**
 * The stand-in for a zd-owned listening socket (cluster's round-robin "faux handle"): net calls
 * listen(), close() and getsockname() on it, and zd's connections enter through its onconnection.
 * @param {string} key @param {object | undefined} sockname @param {import('node:net').Server} server
 * @param {() => void} freed its listen index is free again
 * @returns {StandIn}
 */
function standIn(key, sockname, server, freed) {
  /** @type {NodeJS.Timeout | null} */
  let keepAlive = null;
  /** @type {StandIn} */
  const handle = {
    server,
    open: true,
    backlog: 511,
    refed: true,
    direct: new Map(),
    listen(backlog) {
      // As net passes it (a number, or 511 for none): for the slots' sockets zd gives later.
      if (typeof backlog === 'number' && backlog > 0) handle.backlog = backlog;
      return 0;
    },
    ref() {
      handle.refed = true;
      keepAlive ??= setInterval(() => {}, TIMEOUT_MAX);
      for (const socket of handle.direct.values()) socket.ref?.();
    },
    unref() {
      handle.refed = false;
      if (keepAlive) clearInterval(keepAlive);
      keepAlive = null;
      for (const socket of handle.direct.values()) socket.unref?.();
    },
    close() {
      if (!handle.open) return;
      handle.open = false;
      handle.unref();
      standIns.delete(key);
      // --sched reuseport: this worker's copies only; zd holds the sockets and their queues.
      for (const socket of handle.direct.values()) socket.close();
      handle.direct.clear();
      freed();
      // Connections already on their way are answered "not taken" (onConnection) and go elsewhere.
      send({ act: 'close', key });
    },
  };
  if (sockname) handle.getsockname = (out) => (Object.assign(out, sockname), 0);
  handle.ref();
  standIns.set(key, handle);
  return handle;
}

/**
 * --sched reuseport: zd gives this worker a slot's SO_REUSEPORT socket to accept on (`on`, with
 * its copy of the socket), or takes it back (this copy is closed; the queue stays in zd's). The
 * connections it accepts enter the app's server as zd's handed-over ones do, through the stand-in.
 * @param {{ key: string, socket: string, on: boolean }} message @param {any} socket
 */
function onDirect(message, socket) {
  const handle = standIns.get(message.key);
  if (!message.on) {
    handle?.direct.get(message.socket)?.close();
    handle?.direct.delete(message.socket);
    return;
  }
  if (!socket) return;
  // Its server closed meanwhile, or zd sent one it holds already: this copy is not needed.
  if (!handle?.open || handle.direct.has(message.socket)) return socket.close();
  socket.onconnection = (/** @type {number} */ err, /** @type {any} */ connection) => {
    // An accept that failed (EMFILE…) is zd's to report, as when zd accepts: the app's server
    // would otherwise get an 'error' for a socket it never opened.
    if (err) return void send({ act: 'acceptError', key: message.key, errno: err });
    if (handle.open && handle.onconnection) return handle.onconnection(0, connection);
    connection.close();
  };
  const err = socket.listen(handle.backlog);
  if (err) {
    socket.close();
    return void send({ act: 'acceptError', key: message.key, errno: err });
  }
  if (!handle.refed) socket.unref?.();
  handle.direct.set(message.socket, socket);
}

/** @param {{ key: string }} message @param {any} connection */
function onConnection(message, connection) {
  if (!connection) return;
  const handle = standIns.get(message.key);
  if (handle?.open && handle.onconnection) return handle.onconnection(0, connection);
  // Its server closed as the connection was on its way: back to zd, unread, for another worker.
  if (!process.connected || !process.send) return connection.close();
  try {
    process.send({ cmd: CMD, act: 'back', key: message.key }, connection, undefined, () => connection.close());
  } catch {
    connection.close();
  }
}

module.exports = { install };
