// zd run --sticky PORT: the primary owns PORT and hands every connection to the worker its client
// IP hashes to (Socket.IO long-polling needs a client's requests to reach one process). A client
// keeps its slot across reloads; while its slot has no ready worker, the next ready slot serves.
import { createServer, type Server, type Socket } from 'node:net';
import { getWorker, isReady } from '../core/queries.ts';
import type { PrimaryState } from '../core/state.ts';
import type { Env } from './env.ts';
import type { Logger } from './logger.ts';

/** How long a connection may wait for a ready worker (at start, or with every slot down). */
const WAIT_FOR_WORKER_MS = 5000;

/** FNV-1a: a stable, cheap hash of the client address. */
export function hashAddress(address: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < address.length; i++) {
    hash ^= address.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The worker that serves a client: its slot's, else the next slot's that is ready. Pure. */
export function pickWorker(state: PrimaryState | undefined, address: string): number | null {
  // Before the runtime starts there is no state, and no worker: the connection waits.
  if (!state || (state.phase !== 'running' && state.phase !== 'starting')) return null;
  const n = state.slots.length;
  const start = hashAddress(address) % n;
  for (let k = 0; k < n; k++) {
    const id = state.slots[(start + k) % n]!.worker;
    const entry = getWorker(state, id);
    if (entry && isReady(entry) && entry.machine.context.connected) return entry.id;
  }
  return null;
}

export function startStickyRouter(options: {
  port: number;
  state: () => PrimaryState | undefined;
  env: Env;
  logger: Logger;
}): Promise<{ close(): void; retry(): void }> {
  const waiting = new Set<{ socket: Socket; since: number }>();
  const route = (socket: Socket): boolean => {
    const workerId = pickWorker(options.state(), socket.remoteAddress ?? '');
    if (workerId === null) return false;
    if (!options.env.sendHandle(workerId, { type: 'zd:sticky-conn' }, socket)) return false;
    return true;
  };
  const server: Server = createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    if (route(socket)) return;
    waiting.add({ socket, since: Date.now() });
  });
  // Connections that arrived with no worker ready try again as the state changes, up to a deadline.
  const retry = () => {
    for (const item of [...waiting]) {
      if (item.socket.destroyed) waiting.delete(item);
      else if (route(item.socket)) waiting.delete(item);
      else if (Date.now() - item.since > WAIT_FOR_WORKER_MS) {
        waiting.delete(item);
        item.socket.destroy();
      }
    }
  };
  const sweep = setInterval(retry, 100);
  sweep.unref();
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new Error(`cannot listen on port ${options.port} for --sticky: ${error.code ?? error.message}`)));
    server.listen(options.port, () =>
      resolve({
        retry,
        close: () => {
          clearInterval(sweep);
          for (const item of waiting) item.socket.destroy();
          server.close();
        },
      }),
    );
  });
}
