// @ts-check
// HTTP/2 drains like HTTP/1.1. A client holds one session and sends every request on it, so a
// closed listener alone changes nothing: its clients would stay on the old code until they hang up
// or zd's deadline kills the worker (and their streams in flight). HTTP/2 has the safe way HTTP/1.1
// lacks: GOAWAY names the last stream the server will answer, the streams up to it finish, and the
// client opens its next session (on a new worker) and retries the rest, which were never processed.
// `session.close()` is exactly that. So when a server of `http2.createServer` or
// `createSecureServer` closes — zd drains the worker, or the app closes it — each of its sessions
// gets GOAWAY; one idle or done closes at once, and a session that arrives after the close (a
// connection already accepted) gets GOAWAY as soon as it opens. Node 20's Http2Server#close()
// does none of this: it waits for the clients to leave.
'use strict';

const HTTP2_SERVERS = new Set(['Http2Server', 'Http2SecureServer']);

/**
 * node:http2 exports neither server class, so they are known by name, on the prototype chain (a
 * framework may subclass them). Neither node:http2 nor a TLS context is loaded to ask.
 * @param {import('node:net').Server} server
 */
function isHttp2Server(server) {
  // Cheap test first: only HTTP/2 servers have updateSettings().
  if (typeof (/** @type {any} */ (server).updateSettings) !== 'function') return false;
  for (let proto = Object.getPrototypeOf(server); proto !== null; proto = Object.getPrototypeOf(proto)) {
    if (HTTP2_SERVERS.has(proto.constructor?.name)) return true;
  }
  return false;
}

/**
 * @typedef {object} DrainHooks
 * @property {(server: import('node:net').Server) => void} begin the server started closing
 * @property {(server: import('node:net').Server) => void} end it closed and holds no session
 */

/** @param {import('node:net').Server} server @param {DrainHooks} hooks */
function trackHttp2(server, hooks) {
  /** @type {Set<import('node:http2').Http2Session>} */
  const sessions = new Set();
  let closing = false;
  server.prependListener('session', (/** @type {import('node:http2').Http2Session} */ session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (closing) goAway(session);
  });

  const originalClose = server.close;
  /** @param {((err?: Error) => void) | undefined} [callback] */
  server.close = function close(callback) {
    if (closing) return originalClose.call(server, callback);
    closing = true;
    hooks.begin(server);
    for (const session of sessions) goAway(session);
    const closed = (/** @type {Error | undefined} */ error) => {
      hooks.end(server);
      callback?.(error);
    };
    originalClose.call(server, closed);
    return server;
  };
}

/** GOAWAY: streams already begun finish, the client takes its next ones elsewhere. @param {import('node:http2').Http2Session} session */
function goAway(session) {
  if (session.closed || session.destroyed) return;
  session.close();
}

module.exports = { isHttp2Server, trackHttp2 };
