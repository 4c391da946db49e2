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

/** libuv's UV_TCP_REUSEPORT bind flag, which net passes on to uv_tcp_bind from Node 22.12 / 23.1. */
export const UV_TCP_REUSEPORT = 2;

/**
 * Why this process cannot bind SO_REUSEPORT sockets (--sched reuseport), or null if it can: an
 * older Node ignores the flag (every bind after the first would fail), and only Linux spreads a
 * port's connections over its SO_REUSEPORT sockets.
 */
export function reusePortUnsupported(platform: string = process.platform, version: string = process.versions.node): string | null {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const nodeOk = major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
  if (platform !== 'linux') return `SO_REUSEPORT load balancing is Linux's (this is ${platform})`;
  if (!nodeOk) return `it needs Node ≥ 22.12 (this is Node ${version})`;
  return null;
}
