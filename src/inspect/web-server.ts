// `zd inspect --web`: a local page that draws the machines and lights up the live states, pushed
// by server-sent events from the control stream.
//
// It listens on 127.0.0.1 only and serves two fixed routes, `/` and `/events`; everything else is
// a 404, and no path, query or header ever names a file to read or code to run. A request whose
// Host is not this server's own address is refused, so a web page that rebinds its DNS name to
// 127.0.0.1 cannot read the stream either.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Instance } from '../control/client.ts';
import { machineToDot, renderSvg } from '../diagram/index.ts';
import { MACHINES } from '../diagram/machines.ts';
import { ZdError } from '../errors.ts';
import { onInterrupt, type LiveEnd } from './live.ts';
import { followInspectStream } from './stream.ts';
import { renderPage } from './web-page.ts';
import { applyMessage, EMPTY_VIEW, rolloutDisplay, type InspectView } from './view.ts';

/** A page that stops reading is dropped rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
const MAX_CLIENTS = 32;
const HEARTBEAT_MS = 15_000;
const FIRST_SNAPSHOT_TIMEOUT_MS = 5000;

export interface WebOptions {
  instance: Instance;
  port: number;
  /** Told the URL once the server listens. */
  onListening: (url: string) => void;
}

const HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export function plain(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...HEADERS, 'content-type': 'text/plain; charset=utf-8', ...extra });
  res.end(`${text}\n`);
}

/**
 * The checks every request to an inspector's server passes (the live one's and the replay's): its
 * own Host, one of its fixed routes, GET or HEAD. Returns the route, or null once it has answered.
 */
export function admit(req: IncomingMessage, res: ServerResponse, port: number, routes: readonly string[]): string | null {
  if (req.headers.host !== `127.0.0.1:${port}` && req.headers.host !== `localhost:${port}`) {
    plain(res, 403, 'zd inspect answers only to http://127.0.0.1:' + port + '/');
    return null;
  }
  const path = (req.url ?? '/').split('?')[0]!;
  if (!routes.includes(path)) {
    plain(res, 404, 'not found');
    return null;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    plain(res, 405, 'method not allowed', { allow: 'GET, HEAD' });
    return null;
  }
  return path;
}

/** The page, with a policy that lets only its own script and style run. */
export function sendPage(req: IncomingMessage, res: ServerResponse, page: string, nonce: string): void {
  res.writeHead(200, {
    ...HEADERS,
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  });
  res.end(req.method === 'HEAD' ? undefined : page);
}

/** What the page receives on every change: the view, with the rollout as a machine state. */
export function payload(view: InspectView) {
  return {
    hello: view.hello,
    status: view.status,
    rollout: view.status ? rolloutDisplay(view.status, view.progress) : null,
    recent: view.recent,
    steps: view.steps,
    at: view.at,
  };
}

export async function runWeb(options: WebOptions): Promise<LiveEnd> {
  const { instance } = options;
  const nonce = randomBytes(16).toString('base64');
  const page = renderPage({
    nonce,
    workerSvg: await renderSvg(machineToDot(MACHINES.worker)),
    rolloutSvg: await renderSvg(machineToDot(MACHINES.rollout)),
  });

  const clients = new Set<ServerResponse>();
  const send = (event: string, data: unknown) => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of clients) {
      if (res.writableLength > MAX_BUFFERED_BYTES) res.destroy();
      else res.write(frame);
    }
  };

  let view = EMPTY_VIEW;
  let snapshotSeen!: () => void;
  const snapshot = new Promise<void>((resolve) => (snapshotSeen = resolve));
  const stream = followInspectStream(instance, (message) => {
    view = applyMessage(view, message);
    if (message.type === 'snapshot') snapshotSeen();
    if (message.type !== 'hello') send('view', payload(view));
  });
  let interrupted = false;
  const stop = () => {
    interrupted = true;
    stream.close();
  };
  const stopListening = onInterrupt(stop);

  let port = options.port;
  const server = createServer((req, res) => handle(req, res));
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = admit(req, res, port, ['/', '/events']);
    if (path === null) return;
    if (path === '/') {
      sendPage(req, res, page, nonce);
      return;
    }
    if (clients.size >= MAX_CLIENTS) {
      plain(res, 503, `at most ${MAX_CLIENTS} pages at once`);
      return;
    }
    res.writeHead(200, { ...HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    clients.add(res);
    res.on('close', () => clients.delete(res));
    res.write(`retry: 1000\nevent: view\ndata: ${JSON.stringify(payload(view))}\n\n`);
  };
  const heartbeat = setInterval(() => {
    for (const res of clients) res.write(': ping\n\n');
  }, HEARTBEAT_MS);

  try {
    const first = await Promise.race([
      snapshot.then(() => 'snapshot' as const),
      stream.ended.then(() => 'ended' as const),
      new Promise<'timeout'>((resolve) => setTimeout(resolve, FIRST_SNAPSHOT_TIMEOUT_MS, 'timeout').unref()),
    ]);
    if (first === 'timeout') throw new ZdError('ZD_E_TIMEOUT', `'${instance.name}' sent no snapshot within ${FIRST_SNAPSHOT_TIMEOUT_MS}ms`, 1);
    if (first === 'ended') return interrupted ? 'interrupted' : 'ended';
    port = await listenLocal(server, options.port);
    options.onListening(`http://127.0.0.1:${port}/`);
    await stream.ended;
    const name = view.hello?.name ?? instance.name;
    send('end', { message: interrupted ? 'zd inspect stopped' : `zd: '${name}' stopped: the control stream closed` });
    return interrupted ? 'interrupted' : 'ended';
  } finally {
    stream.close();
    stopListening();
    clearInterval(heartbeat);
    for (const res of clients) res.end();
    server.close();
    server.closeAllConnections();
  }
}

/** Listens on 127.0.0.1 only (the page is for this machine), or fails with one line; the port taken. */
export async function listenLocal(server: import('node:http').Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new ZdError('ZD_E_INSPECT_SERVER', `cannot listen on 127.0.0.1:${port}: ${error.code === 'EADDRINUSE' ? 'the port is in use' : error.message}`, 1)),
    );
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}
