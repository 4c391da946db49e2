// Listening sockets zd is given rather than binds: systemd's socket activation (sd_listen_fds(3):
// LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; the sockets are fds 3, 4, …), and the same contract
// between zd's keeper and each primary it starts (upgrade.ts). A worker's listen of the same
// address takes one (sockets.ts); zd binds nothing it was given.
//
// Which listen a socket serves:
// - TCP: the same port, on the socket's address or on any address (`listen(8080)` takes a socket
//   bound to 127.0.0.1:8080 or to [::]:8080); an app asking for a specific address other than the
//   socket's gets its own bind;
// - a Unix socket: the path the app listens on must be the socket's name (`FileDescriptorName=` in
//   the .socket unit), since a Unix socket cannot say its own path through Node's handles.
import { listenFds } from './listen-fds.ts';
import { createHandle, type ListenQuery, type RawHandle } from './handles.ts';

export interface InheritedSocket {
  fd: number;
  name: string;
  handle: RawHandle;
  /** TCP: where it is bound. */
  address: string | null;
  port: number | null;
  taken: boolean;
  /** Whether a worker's listen (as cluster asked, and zd's key for it) takes this socket. */
  serves(query: ListenQuery, key: string): boolean;
  close(): void;
}

const WILDCARD = new Set(['', '::', '0.0.0.0', null]);

/**
 * The sockets in LISTEN_FDS when LISTEN_PID is this process; the variables are then removed, so
 * that workers (which inherit the environment) do not take them for theirs. A malformed value is
 * an error, not a silent bind of zd's own.
 */
export function takeListenFds(env: NodeJS.ProcessEnv, pid: number): InheritedSocket[] {
  const raw = env.LISTEN_FDS;
  if (raw === undefined) return [];
  const forUs = env.LISTEN_PID === undefined || Number(env.LISTEN_PID) === pid;
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (!forUs) return [];
  return listenFds(raw).map((fd, i) => inherit(fd, names[i] || `fd${fd}`));
}

/** Wraps fd `fd` (a listening socket) in a handle; throws with the fd named if it is not one. */
export function inherit(fd: number, name: string): InheritedSocket {
  const handle = createHandle(null, 0, undefined, fd, 0);
  if (typeof handle === 'number') throw new Error(`inherited fd ${fd} (${name}) is not a socket zd can listen on (errno ${handle})`);
  const out: Record<string, unknown> = {};
  const tcp = typeof handle.getsockname === 'function' && handle.getsockname(out) === 0;
  const address = tcp ? String(out.address) : null;
  const port = tcp ? Number(out.port) : null;
  return {
    fd,
    name,
    handle,
    address,
    port,
    taken: false,
    serves(query) {
      if (port === null) return query.port < 0 && query.address === name;
      if (query.port !== port) return false;
      return WILDCARD.has(query.address) || query.address === address;
    },
    close: () => handle.close(),
  };
}
