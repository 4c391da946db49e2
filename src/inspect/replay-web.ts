// `zd inspect --replay FILE --web`: the inspector's page over a journal. Three fixed routes on
// 127.0.0.1, checked as the live page's are (admit): `/`, `/timeline` (what the page draws and
// scrubs) and `/view?i=N` (what the inspector shows at step N). It ends on Ctrl-C.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { machineToDot, renderSvg } from '../diagram/index.ts';
import { MACHINES } from '../diagram/machines.ts';
import { onInterrupt } from './live.ts';
import type { ReplaySource } from './replay-source.ts';
import { renderPage } from './web-page.ts';
import { admit, listenLocal, payload, plain, sendPage } from './web-server.ts';

export interface ReplayWebOptions {
  source: ReplaySource;
  port: number;
  /** The step the page opens at. */
  start: number;
  onListening: (url: string) => void;
}

function json(req: IncomingMessage, res: ServerResponse, body: string): void {
  res.writeHead(200, { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'content-type': 'application/json; charset=utf-8' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export async function runReplayWeb(options: ReplayWebOptions): Promise<void> {
  const { source } = options;
  const nonce = randomBytes(16).toString('base64');
  const page = renderPage({
    nonce,
    workerSvg: await renderSvg(machineToDot(MACHINES.worker)),
    rolloutSvg: await renderSvg(machineToDot(MACHINES.rollout)),
    replay: true,
  });
  const timeline = JSON.stringify({ ...source.timeline(), start: options.start });

  let port = options.port;
  const server = createServer((req, res) => {
    const path = admit(req, res, port, ['/', '/timeline', '/view']);
    if (path === '/') sendPage(req, res, page, nonce);
    else if (path === '/timeline') json(req, res, timeline);
    else if (path === '/view') {
      const i = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams.get('i') ?? '';
      if (!/^\d{1,9}$/.test(i) || Number(i) >= source.count) {
        plain(res, 400, `i must be a step from 0 to ${source.count - 1}`);
        return;
      }
      const index = Number(i);
      const p = source.positions[index]!;
      json(req, res, JSON.stringify({ ...payload(source.view(index)), position: index, n: p.n, t: p.t, event: p.eventData, transitions: p.transitions }));
    }
  });
  port = await listenLocal(server, options.port);
  options.onListening(`http://127.0.0.1:${port}/`);
  await new Promise<void>((resolve) => {
    const stop = onInterrupt(() => {
      stop();
      resolve();
    });
  });
  server.close();
  server.closeAllConnections();
}
