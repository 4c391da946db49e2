// The libuv handles zd's sockets are made of, as net and node:cluster use them, and what a worker's
// listen asks for: shared by the socket owner (sockets.ts) and the sockets zd is given (inherited.ts).
import net from 'node:net';

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
  /** The n-th open listen of this address in the worker: the n-th socket (port 0 gets one per index). */
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

/** net's own: binds (TCP: `::` else `0.0.0.0` for no address; a path), or opens a descriptor. */
export const createHandle = (net as unknown as { _createServerHandle: (...args: unknown[]) => RawHandle | number })._createServerHandle;
export type { RawHandle };
