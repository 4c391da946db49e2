// /livez and /readyz for orchestrators: live while the primary's loop runs; ready while at least
// one worker serves and no stop has begun. /readyz fails from the moment SIGTERM arrives, before
// any worker drains, so a load balancer stops sending first (see --shutdown-delay).
import { createServer, type Server } from 'node:http';
import { readyCount } from '../core/queries.ts';
import type { Runtime } from '../shell/runtime.ts';

export interface OpsServer {
  port: number;
  /** Stops accepting; requests in flight are still answered. */
  close(): void;
  /** Settles once every connection is done (after close()). */
  readonly drained: Promise<void>;
}

export function readiness(runtime: Runtime): { ready: boolean; reason: string } {
  const state = runtime.snapshot;
  if (state.phase === 'stopping' || state.phase === 'exited') return { ready: false, reason: 'stopping' };
  const ready = readyCount(state);
  if (ready === 0) return { ready: false, reason: state.phase === 'starting' ? 'starting: no worker ready yet' : 'no worker ready' };
  return { ready: true, reason: `${ready}/${state.config.workers} workers ready` };
}

export function startHealthServer(options: {
  host: string;
  port: number;
  runtime: Runtime;
  held?: HeldSockets | null;
  /** A newer primary serves (zd upgrade): a probe this one still answers says ready, as the instance is. */
  handedOver?: () => boolean;
}): Promise<OpsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const { ready, reason } = options.handedOver?.() ? { ready: true, reason: 'a newer primary serves (zd upgrade)' } : readiness(options.runtime);
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${reason}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: /livez, /readyz\n');
  });
  return listen(server, options.host, options.port, 'health', options.held);
}

/**
 * Listening sockets that outlive this primary (the keeper's, src/shell/keeper-link.ts): under
 * `zd upgrade` the old and the new primary serve health and metrics on the same socket, so that
 * neither a probe nor a scrape is ever refused.
 */
export interface HeldSockets {
  /** The socket held under this key, if any (taken once). */
  take(key: string): unknown;
  /** A socket this primary bound: held from now on. */
  bound(key: string, handle: unknown): void;
}

/** Binds (or takes the held socket), or fails with one line saying which port and why. */
export function listen(server: Server, host: string, port: number, what: string, held?: HeldSockets | null): Promise<OpsServer> {
  const key = `${what}:${host}:${port}`;
  const handle = held?.take(key);
  // One request per connection: probes and scrapes are seconds apart, and an idle kept-alive
  // connection is one a client could be writing on when this primary closes it (zd upgrade).
  server.prependListener('request', (_req, res) => {
    res.shouldKeepAlive = false;
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(Object.assign(new Error(`cannot serve ${what} on ${host}:${port}: ${error.code ?? error.message}`), { code: error.code })));
    const drained = new Promise<void>((resolve) => server.once('close', () => resolve()));
    const onListening = () => {
      if (!handle) held?.bound(key, (server as unknown as { _handle: unknown })._handle);
      const address = server.address();
      resolve({
        port: typeof address === 'object' && address ? address.port : port,
        close: () => {
          // Requests in flight are answered (each then closes its connection); nothing else is open.
          server.close();
          server.closeIdleConnections?.();
        },
        drained,
      });
    };
    if (handle) server.listen(handle as never, onListening);
    else server.listen(port, host, onListening);
  });
}
