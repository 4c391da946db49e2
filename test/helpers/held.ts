// Which worker held which connection when it died, read from the kernel or said by the app, and
// whether a failed request was on one of them: the only death that excuses a failed request is
// the death of the worker that held its connection (issue #21). Used by the chaos suite and the
// process property.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { ConnectionId } from './http.ts';

/**
 * A worker that died and the connections it held then, by their client port: a request on one of
 * them may fail, and no other request is excused by this death.
 */
export interface Death {
  pid: number;
  /** From when requests on its connections could fail (the kill, the crash, the block). */
  from: number;
  /** When `ports` was read: the connections it held at its end. */
  heldAt: number;
  ports: Set<number>;
}

/**
 * How late the client may see a connection that the server side already holds: the connect is
 * noticed on this process's busy event loop. Sound because Linux hands out a client's ephemeral
 * ports to one destination moving forward through its range, so a port comes back only after
 * thousands of connections, not within a second.
 */
const CONNECT_NOTICED_MS = 1000;

/** The request on `connection`, failed at `failedAt`, was on a connection one of `deaths` held. */
export function heldByDead(connection: ConnectionId | null, failedAt: number, deaths: Death[]): boolean {
  return connection !== null && deaths.some((d) => d.ports.has(connection.port) && connection.at <= d.heldAt + CONNECT_NOTICED_MS && failedAt >= d.from);
}

/**
 * The client ports of the TCP connections to `appPort` that `pid` holds now, read from the kernel:
 * its descriptors (/proc/PID/fd) matched by inode against its network namespace's sockets.
 */
export function heldPorts(pid: number, appPort: number): Set<number> {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return new Set(); // gone: it holds nothing
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9]!)) continue;
      const local = parseInt(f[1]!.split(':')[1]!, 16);
      const remote = parseInt(f[2]!.split(':')[1]!, 16);
      if (local === appPort && remote !== 0) ports.add(remote);
    }
  }
  return ports;
}

/** The process's state letter from /proc (R, S, T, Z, …), or null once it is gone. */
function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/**
 * SIGKILLs a worker, knowing exactly which connections it held: SIGSTOP first, and once the
 * kernel says it is stopped (it can take no descriptor any more: a connection zd hands it then
 * waits unread in its IPC channel, and is zd's to give to another worker), read its connections,
 * then SIGKILL.
 */
export function killHolding(pid: number, appPort: number): Death {
  const from = Date.now();
  process.kill(pid, 'SIGSTOP');
  for (const until = Date.now() + 2000; Date.now() < until; ) {
    const state = procState(pid);
    if (state === null || state === 'T' || state === 't' || state === 'Z') break;
  }
  const ports = heldPorts(pid, appPort);
  const heldAt = Date.now();
  process.kill(pid, 'SIGKILL');
  return { pid, from, heldAt, ports };
}

/** The client ports a fixture app says it held when it ended: `… holding 50412,50418` on its output (none: `holding -`). */
export function portsSaid(line: string): Set<number> {
  const m = / holding ([\d,]+|-)$/.exec(line);
  if (!m) throw new Error(`no 'holding' list in ${JSON.stringify(line)}`);
  return new Set(m[1] === '-' ? [] : m[1]!.split(',').map(Number));
}
